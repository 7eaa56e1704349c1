"""The ``--loop`` option the examples share: run ``main`` on asyncio, uvloop or trio through anyio."""

from __future__ import annotations

import argparse
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import anyio

T = TypeVar("T")

LOOPS = ("asyncio", "uvloop", "trio")


def add_loop_option(parser: argparse.ArgumentParser) -> None:
    """Add ``--loop asyncio|uvloop|trio`` (default asyncio)."""
    parser.add_argument(
        "--loop", choices=LOOPS, default="asyncio", help="event loop (default: asyncio)"
    )


def run(main: Callable[..., Awaitable[T]], *args: Any, loop: str) -> T:
    """``anyio.run(main, *args)`` on the chosen loop."""
    if loop == "trio":
        return anyio.run(main, *args, backend="trio")
    return anyio.run(
        main, *args, backend="asyncio", backend_options={"use_uvloop": loop == "uvloop"}
    )
