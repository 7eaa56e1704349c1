"""The command line of aos: ``du``, ``find`` and ``tree`` over the async face, on any event loop."""

from __future__ import annotations

import argparse
import functools
import sys
from collections.abc import Sequence
from typing import NoReturn

from aos._cli import du, find, tree
from aos._cli._common import exit_with, guarded, raw_names_on_stdout, run_on_loop


def build_parser() -> argparse.ArgumentParser:
    """The ``aos`` parser with one sub-command per module."""
    parser = argparse.ArgumentParser(
        prog="aos",
        description="Walk directory trees with aos, the async face of os, on asyncio, uvloop or trio.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in (du, find, tree):
        command.add_parser(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv`` (default: ``sys.argv[1:]``), run the command, return its exit status."""
    args = build_parser().parse_args(_glued(sys.argv[1:] if argv is None else argv))
    raw_names_on_stdout()
    return guarded(lambda: run_on_loop(functools.partial(args.run, args), args.loop))


def run() -> NoReturn:
    """The ``aos`` command (and ``python -m aos``): :func:`main` on ``sys.argv``, then the
    process ends with its status (see :func:`~aos._cli._common.exit_with`)."""
    exit_with(main())


def _glued(argv: Sequence[str]) -> list[str]:
    """``argv`` with each value that may begin with ``-`` joined to its option, as in
    ``--size=-1k`` or ``--name=-*``: argparse would take it for an option (only a bare number
    is let by)."""
    if not argv or argv[0] != "find":  # (find's options only)
        return list(argv)
    glued: list[str] = [argv[0]]
    rest = iter(argv[1:])
    for arg in rest:
        if arg == "--":
            glued += [arg, *rest]
        elif arg.startswith("--") and _abbreviates(arg, find.OPTIONS_WITH_DASHED_VALUES):
            value = next(rest, None)
            glued.append(arg if value is None else f"{arg}={value}")
        else:
            glued.append(arg)
    return glued


def _abbreviates(arg: str, options: tuple[str, ...]) -> bool:
    """Whether ``arg`` is one of ``options`` or the start of one only (argparse's abbreviation;
    one that other options share too is left for argparse to call ambiguous)."""
    return len([option for option in options if option.startswith(arg)]) == 1 and len(arg) > 2
