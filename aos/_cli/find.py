"""``aos find``: the paths below a directory that match a name glob, a type and a size, as ``find`` picks them."""

from __future__ import annotations

import argparse
import os
import re
import stat
import sys
from collections.abc import Callable
from dataclasses import dataclass

from aos._cli._common import ErrorLog, Progress, add_common_options, at_least
from aos._cli._scan import Found, scan

_TYPES: dict[str, Callable[[int], bool]] = {
    "f": stat.S_ISREG,
    "d": stat.S_ISDIR,
    "l": stat.S_ISLNK,
    "p": stat.S_ISFIFO,
    "s": stat.S_ISSOCK,
    "b": stat.S_ISBLK,
    "c": stat.S_ISCHR,
}
_SIZE_UNITS = {"c": 1, "w": 2, "b": 512, "k": 1024, "M": 1024**2, "G": 1024**3}
OPTIONS_WITH_DASHED_VALUES = ("--size", "--name", "--iname")  # -1k, -*: see aos._cli._glued


@dataclass(frozen=True, slots=True)
class SizeTest:
    """``find -size [+-]N[cwbkMG]``: the size in units, rounded up, compared with N."""

    sign: str
    count: int
    unit: int

    def __call__(self, size: int) -> bool:
        units = -(-size // self.unit)
        if self.sign == "+":
            return units > self.count
        if self.sign == "-":
            return units < self.count
        return units == self.count


def _size_test(text: str) -> SizeTest:
    match = re.fullmatch(r"([+-]?)(\d+)([cwbkMG]?)", text)
    if not match:
        raise argparse.ArgumentTypeError(f"invalid size: {text!r} (like +10k, -1M, 512c)")
    return SizeTest(match[1], int(match[2]), _SIZE_UNITS[match[3] or "b"])


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "find",
        help="find files by name, type and size, like find",
        description="Print the paths under each PATH that pass every test given, like find "
        "(symbolic links are not followed; sizes round up to the unit, as find's -size does).",
    )
    parser.add_argument("paths", nargs="*", default=["."], metavar="PATH")
    parser.add_argument(
        "--name",
        action="append",
        metavar="GLOB",
        help="base name matches the shell pattern GLOB",
    )
    parser.add_argument(
        "--iname", action="append", metavar="GLOB", help="like --name, ignoring case"
    )
    parser.add_argument(
        "--type",
        action="append",
        metavar="TYPES",
        help="file type, one or more of f d l p s b c separated by commas (like find -type)",
    )
    parser.add_argument(
        "--size",
        type=_size_test,
        action="append",
        metavar="[+-]N[cwbkMG]",
        help="size in units (default b, 512 bytes), rounded up; +N more than N, -N less than N",
    )
    parser.add_argument(
        "--max-depth", type=at_least(0), metavar="N", help="descend at most N levels"
    )
    parser.add_argument(
        "--min-depth", type=at_least(0), default=0, metavar="N", help="print nothing above level N"
    )
    add_common_options(parser)
    parser.set_defaults(run=run)


def _matcher(args: argparse.Namespace) -> Callable[[Found], bool]:
    """Every test given, each as often as given: an entry passes if it passes them all."""
    tests: list[Callable[[Found], bool]] = []
    tests.extend(_name_test(glob, ignore_case=False) for glob in args.name or ())
    tests.extend(_name_test(glob, ignore_case=True) for glob in args.iname or ())
    tests.extend(_type_test(types) for types in args.type or ())
    tests.extend(_size_check(size_test) for size_test in args.size or ())
    return lambda found: all(test(found) for test in tests)


def _type_test(types: str) -> Callable[[Found], bool]:
    kinds = types.split(",")
    unknown = [k for k in kinds if k not in _TYPES]
    if unknown:
        raise ValueError(f"unknown type {unknown[0]!r} for --type (use f d l p s b c)")
    checks = [_TYPES[k] for k in kinds]
    return lambda found: any(check(_mode(found)) for check in checks)


def _name_test(pattern: str, *, ignore_case: bool) -> Callable[[Found], bool]:
    regex = _glob_regex(pattern, ignore_case=ignore_case)
    return lambda found: regex.fullmatch(found.name) is not None


def _glob_regex(pattern: str, *, ignore_case: bool = False) -> re.Pattern[str]:
    """``pattern`` as find's ``-name`` reads it (glibc's ``fnmatch``), as a regular expression.

    ``*`` and ``?``; ``[...]`` with ranges and ``[:digit:]``-style classes, negated by ``!`` or ``^``,
    a ``]`` first in it literal, never closed a literal ``[``; ``\\`` quotes the next character.
    """
    parts: list[str] = []
    i = 0
    while i < len(pattern):
        char = pattern[i]
        i += 1
        if char == "*":
            if parts[-1:] != [".*"]:  # one is enough
                parts.append(".*")
        elif char == "?":
            parts.append(".")
        elif char == "[" and (bracket := _bracket(pattern, i)) is not None:
            part, i = bracket
            parts.append(part)
        elif char == "\\" and i == len(pattern):
            parts.append("(?!)")  # a trailing backslash quotes nothing: fnmatch matches nothing
        else:
            literal, i = _quoted(pattern, i - 1)
            parts.append(re.escape(literal))
    return re.compile("".join(parts), re.DOTALL | (re.IGNORECASE if ignore_case else 0))


_CLASSES = {  # POSIX classes for [[:digit:]] (ASCII only), as regex class contents
    "alnum": "0-9A-Za-z",
    "alpha": "A-Za-z",
    "blank": r" \t",
    "cntrl": r"\x00-\x1f\x7f",
    "digit": "0-9",
    "graph": "!-~",
    "lower": "a-z",
    "print": " -~",
    "punct": r"!-/:-@\[-`{-~",
    "space": r" \t\n\r\f\v",
    "upper": "A-Z",
    "xdigit": "0-9A-Fa-f",
}
_CLASS = re.compile(r"\[:([a-z]+):\]")


def _bracket(pattern: str, start: int) -> tuple[str, int] | None:
    """The bracket expression opened before ``pattern[start]``, as a regex, and where it ends.

    ``None`` when no ``]`` closes it.
    """
    negate = pattern[start : start + 1] in ("!", "^")
    i = first = start + negate
    chars: list[str] = []  # single characters and ranges
    classes: list[str] = []  # [:name:] classes, each a regex
    while i < len(pattern):
        if pattern[i] == "]" and i > first:
            return _either(chars, classes, negate), i + 1
        if named := _CLASS.match(pattern, i):
            known = _CLASSES.get(named[1])
            classes.append("(?!)" if known is None else f"(?-i:[{known}])")  # not case-folded
            i = named.end()
            continue
        low, i = _quoted(pattern, i)
        if pattern[i : i + 1] == "-" and pattern[i + 1 : i + 2] not in ("", "]"):
            high, i = _quoted(pattern, i + 1)
            if low <= high:  # else an empty range
                chars.append(f"{re.escape(low)}-{re.escape(high)}")
        else:
            chars.append(re.escape(low))
    return None


def _either(chars: list[str], classes: list[str], negate: bool) -> str:
    """One character that is (or with ``negate``, is not) in ``chars`` or one of ``classes``."""
    choices = [f"[{''.join(chars)}]"] if chars else []
    either = "|".join(choices + classes) or "(?!)"
    return f"(?!{either})." if negate else f"(?:{either})"


def _quoted(pattern: str, i: int) -> tuple[str, int]:
    """The character at ``pattern[i]`` (the next one, if that is a backslash) and the index after it."""
    if pattern[i] == "\\" and i + 1 < len(pattern):
        return pattern[i + 1], i + 2
    return pattern[i], i + 1


def _size_check(test: SizeTest) -> Callable[[Found], bool]:
    return lambda found: test(_stat(found).st_size)


def _stat(found: Found) -> os.stat_result:
    assert found.st is not None
    return found.st


def _mode(found: Found) -> int:
    return _stat(found).st_mode


async def run(args: argparse.Namespace) -> int:
    try:
        matches = _matcher(args)
    except ValueError as err:
        print(f"aos find: {err}", file=sys.stderr)
        return 2
    errors = ErrorLog("find", "cannot access")
    want_stat = bool(args.type or args.size)  # a name alone is answered without a stat
    with Progress("find:", args.progress) as progress:
        for top in args.paths:
            with errors.going_on():
                async for found in scan(
                    top, want_stat=want_stat, on_error=errors, max_depth=args.max_depth
                ):
                    progress.advance(found.path)
                    if found.depth >= args.min_depth and matches(found):
                        sys.stdout.write(found.path + "\n")
    return errors.status
