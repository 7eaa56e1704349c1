"""Helpers shared by the async tests: off-loop reference calls, fd counts, call routes."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import anyio
import pytest

from aos._async import _uring
from aos._async._completions import Channel
from aos._async._offload import QUERY, call, runs_on_ring

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


ROUTES = ("worker", "ring")


def routes_for(func: object) -> list[str]:
    """The routes a call can take here: a worker always, io_uring where the call and kernel can."""
    return list(ROUTES) if runs_on_ring(func) and _uring.available() else ["worker"]


def take_route(route: str, monkeypatch: pytest.MonkeyPatch) -> Callable[[], int]:
    """Send every ring-capable call to the ring (``"ring"``) or leave routing as it is.

    A lone call normally goes to a worker; ``"ring"`` makes every loop look busy. Returns a
    function that counts the operations pushed to a ring since, so a test can show the route
    was taken.
    """
    pushed = 0
    push = _uring.Ring.push

    def counting_push(self: _uring.Ring, *args: int) -> None:
        nonlocal pushed
        pushed += 1
        push(self, *args)

    monkeypatch.setattr(_uring.Ring, "push", counting_push)
    if route == "ring":
        monkeypatch.setattr(Channel, "_busy", lambda self: True)
    return lambda: pushed
