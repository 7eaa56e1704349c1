"""``aos du``: disk usage of each directory, as ``du`` counts it."""

from __future__ import annotations

import argparse
import os
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final

from aos._cli._common import ErrorLog, Progress, add_common_options, at_least, human_size
from aos._cli._scan import scan


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "du",
        help="disk usage of directories, like du",
        description="Summarise disk usage of each PATH, recursively for directories, like du. "
        "Hard links are counted once; symbolic links are not followed.",
        add_help=False,  # -h is --human-readable, as in du
    )
    parser.add_argument("--help", action="help", help="show this help message and exit")
    parser.add_argument("paths", nargs="*", default=["."], metavar="PATH")
    parser.add_argument(
        "-a", "--all", action="store_true", help="show files as well as directories"
    )
    parser.add_argument(
        "-s", "--summarize", action="store_true", help="show only a total for each PATH"
    )
    parser.add_argument(
        "-d", "--max-depth", type=at_least(0), metavar="N", help="show directories down to depth N"
    )
    parser.add_argument(
        "--apparent-size",
        action="store_true",
        help="count bytes in files (st_size), not blocks used",
    )
    # The units: as in du, the last one given wins (-b also counts apparent sizes, for good).
    parser.add_argument(
        "-B",
        "--block-size",
        dest="unit",
        type=_block_size,
        default=BlockSize(1024),
        metavar="SIZE",
        help="print sizes in units of SIZE bytes: a number and/or a unit, K M G T P E (of 1024) "
        "or KB MB GB ... (of 1000); a unit alone is printed after each size (default 1024)",
    )
    parser.add_argument(
        "-b",
        "--bytes",
        action=_Bytes,
        nargs=0,
        help="same as --apparent-size --block-size=1",
    )
    parser.add_argument(
        "-k", dest="unit", action="store_const", const=BlockSize(1024), help="like --block-size=1K"
    )
    parser.add_argument(
        "-m", dest="unit", action="store_const", const=BlockSize(1024**2), help="like -B 1M"
    )
    parser.add_argument(
        "-h",
        "--human-readable",
        dest="unit",
        action="store_const",
        const=HUMAN,
        help="print sizes like 1.5K, 23M, 2.0G",
    )
    add_common_options(parser)
    parser.set_defaults(run=run)


class _Bytes(argparse.Action):
    """``-b``: apparent sizes, in bytes (a later unit option changes the unit only)."""

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: object,
        option_string: str | None = None,
    ) -> None:
        namespace.apparent_size = True
        namespace.unit = BlockSize(1)


# -B SIZE as GNU du reads it: a number (octal after 0, hex after 0x) and/or a unit K M G T P E Z Y
# (k m g t too), of 1024 or, followed by B or D (KB, MB), of 1000; KiB, MiB are 1024 as well.
_BLOCK_SIZE = re.compile(
    r"\s*(\+?(?:0[xX][0-9a-fA-F]+|0[0-7]*|[1-9][0-9]*))?(?:([KkMmGgTtPEZY])(iB|B|D)?)?"
)
_POWERS = "KMGTPEZY"
_MAX_BLOCK_SIZE = 2**64 - 1  # du reads SIZE into a uintmax_t


@dataclass(frozen=True, slots=True)
class BlockSize:
    """du's unit of output: counts of ``size`` bytes, rounded up, each followed by ``suffix``."""

    size: int
    suffix: str = ""  # for a -B SIZE with no number: -B K prints 28K, -B KB 29kB

    def format(self, n: int) -> str:
        return f"{-(-n // self.size)}{self.suffix}"


HUMAN: Final = "human"
"""The unit of ``-h``: each size in its own, like 1.5K."""


def _block_size(text: str) -> BlockSize:
    match = _BLOCK_SIZE.fullmatch(text)
    if not match or not (match[1] or match[2]):
        raise argparse.ArgumentTypeError(f"invalid block size {text!r}")
    number, letter, tail = match[1], match[2] or "", match[3] or ""
    base = 1000 if tail in ("B", "D") else 1024
    power = _POWERS.index(letter.upper()) + 1 if letter else 0
    size = (_parse_number(number) if number else 1) * base**power
    if size == 0:
        raise argparse.ArgumentTypeError(f"invalid block size {text!r}")
    if size > _MAX_BLOCK_SIZE:
        raise argparse.ArgumentTypeError(f"block size {text!r} is too large")
    return BlockSize(size, "" if number else _unit_suffix(size, tail))


def _parse_number(digits: str) -> int:
    """A number as C's ``strtoumax`` reads it with base 0: hex after 0x, octal after 0."""
    digits = digits.lstrip("+")
    if digits[:2] in ("0x", "0X"):
        return int(digits, 16)
    return int(digits, 8) if digits.startswith("0") else int(digits)


def _unit_suffix(size: int, tail: str) -> str:
    """What du prints after each count for a -B with a unit and no number (GNU's ``human_SI``)."""
    base = 1000 if tail == "B" else 1024
    exponent = 0
    while base**exponent < size and exponent < len(_POWERS):
        exponent += 1
    letter = "" if not exponent else "k" if (base, exponent) == (1000, 1) else _POWERS[exponent - 1]
    if tail not in ("B", "iB"):
        return letter
    return letter + ("i" if base == 1024 and exponent else "") + "B"


async def run(args: argparse.Namespace) -> int:
    conflict = _conflict(args)
    if conflict:
        print(f"aos du: {conflict}\nTry 'aos du --help' for more information.", file=sys.stderr)
        return 1
    unit: BlockSize | str = args.unit
    max_depth = 0 if args.summarize else args.max_depth
    errors = ErrorLog("du", "cannot access")
    inodes = _Inodes(every=len(args.paths) > 1)

    def show(size: int, path: str) -> None:
        text = human_size(size) if isinstance(unit, str) else unit.format(size)
        sys.stdout.write(f"{text}\t{path}\n")

    with Progress("du:", args.progress) as progress:
        for top in map(_one_trailing_slash, args.paths):
            with errors.going_on():
                await _du_one(
                    top, args.apparent_size, max_depth, args.all, inodes, errors, progress, show
                )
    return errors.status


def _conflict(args: argparse.Namespace) -> str | None:
    """What du refuses in ``args`` (and -s with -d 0, which it warns about), or ``None``."""
    if args.summarize and args.all:
        return "cannot both summarize and show all entries"
    if args.summarize and args.max_depth is not None:
        if args.max_depth:
            return f"warning: summarizing conflicts with --max-depth={args.max_depth}"
        print("aos du: warning: summarizing is the same as using --max-depth=0", file=sys.stderr)
    return None


def _one_trailing_slash(path: str) -> str:
    """``path`` with two or more trailing slashes cut to one, as du prints it (``a//``: ``a/``;
    fts's rule: not in a path of 2 characters, so ``//`` stays)."""
    end = len(path)
    if end > 2 and path.endswith("/"):
        while end > 1 and path[end - 2] == "/":
            end -= 1
    return path[:end]


@dataclass(slots=True)
class _Inodes:
    """The inodes counted so far, over all PATHs, so that du counts each one once.

    Like du: directories and hard-linked files, and with ``every`` (more than one PATH) every
    inode, since a file given as a PATH may also be inside another PATH.
    """

    every: bool
    seen: set[tuple[int, int]] = field(default_factory=set)

    def first_visit(self, st: os.stat_result, is_dir: bool) -> bool:
        """Remember ``st``'s inode if du does; ``False`` if it was counted before."""
        if not (self.every or is_dir or st.st_nlink > 1):
            return True
        inode = (st.st_dev, st.st_ino)
        if inode in self.seen:
            return False
        self.seen.add(inode)
        return True


@dataclass(slots=True)
class _Open:
    """A directory the walk is still inside: its total so far."""

    path: str
    depth: int
    size: int


async def _du_one(
    top: str,
    apparent: bool,
    max_depth: int | None,
    all_files: bool,
    inodes: _Inodes,
    errors: ErrorLog,
    progress: Progress,
    show: Callable[[int, str], None],
) -> None:
    """Walk ``top`` and print as du does: in walk order, each directory once the walk leaves it."""
    inside: list[_Open] = []  # the directories from ``top`` down to where the walk is
    skipped: set[str] = set()  # directories met before, through another PATH: not counted again
    async for found in scan(top, want_stat=True, on_error=errors):
        st = found.st
        assert st is not None
        if found.parent in skipped or not inodes.first_visit(st, found.is_dir):
            if found.is_dir:
                skipped.add(found.path)
            continue
        size = st.st_size if apparent else st.st_blocks * 512
        progress.advance(found.path, size)
        _leave(inside, found.depth, max_depth, show)
        if found.is_dir:
            inside.append(_Open(found.path, found.depth, size))
        elif found.top:
            show(size, top)
        else:
            inside[-1].size += size
            if all_files and (max_depth is None or found.depth <= max_depth):
                show(size, found.path)
    _leave(inside, 0, max_depth, show)


def _leave(
    inside: list[_Open], depth: int, max_depth: int | None, show: Callable[[int, str], None]
) -> None:
    """Print the directories at ``depth`` or deeper, which the walk has left, adding each into its parent."""
    while inside and inside[-1].depth >= depth:
        done = inside.pop()
        if inside:
            inside[-1].size += done.size
        if max_depth is None or done.depth <= max_depth:
            show(done.size, done.path)
