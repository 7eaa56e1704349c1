"""Helpers shared by the directory-iteration tests."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import anyio

from aos._async._offload import QUERY, call

T = TypeVar("T")


async def off_loop(fn: Callable[..., T], *args: Any) -> T:
    """Run a blocking reference computation on a worker thread."""
    return await call(QUERY, None, fn, *args)


def count_fds_under(path: Path) -> int:
    """How many open fds of this process point at ``path`` or below it."""
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        count += target == str(path) or target.startswith(f"{path}/")
    return count


async def fds_under(path: Path) -> int:
    """:func:`count_fds_under`, listed off the event loop."""
    return await off_loop(count_fds_under, path)


async def wait_for_no_fds_under(path: Path) -> None:
    """Abandoned worker calls close their fds when they return: give them up to 5 s, then
    assert none is left under ``path``."""
    for _ in range(500):
        if not await fds_under(path):
            break
        await anyio.sleep(0.01)
    assert await fds_under(path) == 0
