"""``aos tree``: a directory drawn as an indented tree, like ``tree``."""

from __future__ import annotations

import argparse
import os
import stat
import sys
import unicodedata
from dataclasses import dataclass

import aos
from aos._async._scandir import DirEntry
from aos._cli._common import ErrorLog, Progress, add_common_options, at_least


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "tree",
        help="draw a directory as a tree, like tree",
        description="Draw each PATH as an indented tree, entries sorted by name, like tree.",
    )
    parser.add_argument("paths", nargs="*", default=["."], metavar="PATH")
    parser.add_argument("-a", "--all", action="store_true", help="show hidden entries too")
    parser.add_argument("-d", "--dirs-only", action="store_true", help="show directories only")
    parser.add_argument(
        "-L", "--level", type=at_least(1), metavar="N", help="descend at most N levels"
    )
    add_common_options(parser)
    parser.set_defaults(run=run)


@dataclass(slots=True)
class _Item:
    path: str
    name: str
    prefix: str  # what goes before the connector
    last: bool
    depth: int
    is_dir: bool
    link: str | None  # the target, for a symbolic link


async def run(args: argparse.Namespace) -> int:
    errors = ErrorLog("tree", "cannot open")
    directories = files = 0
    with Progress("tree:", args.progress) as progress:
        for top in args.paths:
            try:
                st = await aos.stat(top)
            except OSError as err:
                errors(err)
                continue
            if not stat.S_ISDIR(st.st_mode):  # tree's words, and it counts a file
                sys.stdout.write(f"{_printable(top)}  [error opening dir]\n")
                files += 1
                continue
            sys.stdout.write(_printable(top) + "\n")
            stack = await _children(top, "", 1, args, errors)
            directories += bool(stack)  # tree (2.x) counts a PATH that has entries to show
            while stack:
                item = stack.pop()
                progress.advance(item.path)
                connector = "└── " if item.last else "├── "
                shown = _printable(item.name)
                if item.link is not None:
                    shown += f" -> {_printable(item.link)}"
                sys.stdout.write(item.prefix + connector + shown + "\n")
                if not item.is_dir:
                    files += 1
                    continue
                directories += 1
                if item.link is None and (args.level is None or item.depth < args.level):
                    inner = item.prefix + ("    " if item.last else "│\u00a0\u00a0 ")
                    stack.extend(await _children(item.path, inner, item.depth + 1, args, errors))
    dirs_word = "directory" if directories == 1 else "directories"
    summary = f"\n{directories} {dirs_word}"
    if not args.dirs_only:
        summary += f", {files} {'file' if files == 1 else 'files'}"
    sys.stdout.write(summary + "\n")
    return errors.status


async def _children(
    directory: str, prefix: str, depth: int, args: argparse.Namespace, errors: ErrorLog
) -> list[_Item]:
    """The entries of ``directory`` to draw, sorted by name, in reverse (ready to pop in order)."""
    items: list[_Item] = []
    try:
        async with aos.scandir(directory) as entries:
            async for entry in entries:
                if not args.all and entry.name.startswith("."):
                    continue
                is_dir = _is_dir(entry)
                if args.dirs_only and not is_dir:
                    continue
                path = os.path.join(directory, entry.name)
                link = await _link_target(path) if entry.is_symlink() else None
                items.append(_Item(path, entry.name, prefix, False, depth, is_dir, link))
    except OSError as err:
        errors(err)
        return []
    items.sort(key=lambda item: os.fsencode(item.name))  # as tree sorts them in C.UTF-8
    if items:
        items[-1].last = True
    items.reverse()
    return items


def _printable(name: str) -> str:
    """``name`` as tree prints it: a control character, or a byte that is not UTF-8, as a
    backslash and three octal digits (``new\\012line``)."""
    if name.isprintable():
        return name
    return "".join(
        f"\\{ord(char) - 0xDC00:03o}"
        if 0xDC80 <= ord(char) <= 0xDCFF  # (a byte that is not UTF-8, as os.fsdecode keeps it)
        else f"\\{ord(char):03o}"
        if unicodedata.category(char) == "Cc"
        else char
        for char in name
    )


def _is_dir(entry: DirEntry[str]) -> bool:
    """Whether tree counts ``entry`` as a directory: a link to one is (but is not entered)."""
    try:
        return entry.is_dir()
    except OSError:  # a link that cannot be followed (a loop, no permission)
        return False


async def _link_target(path: str) -> str:
    """What a symbolic link points to, or tree's words when it cannot be read (removed since)."""
    try:
        return await aos.readlink(path)
    except OSError:
        return "[Error reading symbolic link information]"
