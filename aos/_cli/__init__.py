"""The command line of aos: ``du``, ``find`` and ``tree`` over the async face, on any event loop."""

from __future__ import annotations

import argparse
import functools
from collections.abc import Sequence

from aos._cli import du, find, tree
from aos._cli._common import guarded, raw_names_on_stdout, run_on_loop


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
    args = build_parser().parse_args(argv)
    raw_names_on_stdout()
    return guarded(lambda: run_on_loop(functools.partial(args.run, args), args.loop))
