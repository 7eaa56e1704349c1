"""Helpers of the reliability suite: resource snapshots, settling, the async names of aos."""

from __future__ import annotations

import gc
import os
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import anyio

import aos
from tests.conftest import child_pids, open_fds

T = TypeVar("T")

# Kernel wait channels of a thread blocked on something that may never come: a pipe, a child,
# the other end of a FIFO, a terminal. A worker left there after its caller was cancelled leaks.
STUCK_WCHANS = frozenset(
    {"anon_pipe_read", "pipe_read", "anon_pipe_write", "pipe_write", "do_wait"}
    | {"wait_for_partner", "n_tty_read"}
)


def os_threads() -> set[int]:
    """The kernel thread ids of this process."""
    return {int(tid) for tid in os.listdir("/proc/self/task")}


_RUNNERS_OWN: frozenset[int] = frozenset(os_threads())
"""Threads of the test runner, there before any test (pytest-xdist's channel thread waits on its
pipe for good): never aos's."""


def stuck_threads() -> list[tuple[int, str]]:
    """Threads (other than the caller and the runner's own) blocked on a pipe, a child or a
    FIFO, with their wchan."""
    me = threading.get_native_id()
    stuck = []
    for tid in os_threads() - {me} - _RUNNERS_OWN:
        try:
            with open(f"/proc/self/task/{tid}/wchan") as f:
                wchan = f.read()
        except OSError:  # the thread ended meanwhile
            continue
        if wchan.strip() in STUCK_WCHANS:
            stuck.append((tid, wchan))
    return stuck


@dataclass(frozen=True)
class Resources:
    """What a process holds that aos could leak: fds, threads, children."""

    fds: frozenset[int]
    threads: int
    children: tuple[int, ...]

    @classmethod
    def now(cls) -> Resources:
        return cls(frozenset(open_fds()), len(os_threads()), tuple(child_pids()))


def leaks_after(before: Resources, *, idle_threads: int, timeout: float = 5.0) -> list[str]:
    """Wait until the process is back to ``before`` (plus at most ``idle_threads`` idle pool
    workers); return what is still wrong after ``timeout`` seconds, or ``[]``.

    Call it outside any event loop: it polls /proc with blocking calls.
    """
    deadline = time.monotonic() + timeout
    while True:
        now = Resources.now()
        problems = []
        extra_fds = now.fds - before.fds
        if extra_fds:
            gc.collect()
            extra_fds = frozenset(open_fds()) - before.fds
        if extra_fds:
            problems.append(f"fds left open: {sorted(extra_fds)} -> {_targets(extra_fds)}")
        new_children = set(now.children) - set(before.children)
        if new_children:
            problems.append(f"children left (running or unreaped): {sorted(new_children)}")
        stuck = stuck_threads()
        if stuck:
            problems.append(f"threads stuck in a wait: {stuck}")
        if now.threads > before.threads + idle_threads:
            problems.append(
                f"threads: {now.threads}, was {before.threads} (+{idle_threads} idle allowed)"
            )
        if not problems or time.monotonic() > deadline:
            return problems
        time.sleep(0.01)


def _targets(fds: frozenset[int]) -> list[str]:
    targets = []
    for fd in sorted(fds):
        try:
            targets.append(os.readlink(f"/proc/self/fd/{fd}"))
        except OSError:
            targets.append("?")
    return targets


def run_on(backend: tuple[str, dict[str, Any]], fn: Callable[[], Awaitable[T]]) -> T:
    """Run ``fn`` under a fresh event loop of the ``anyio_backend`` fixture's backend."""
    name, options = backend
    return anyio.run(fn, backend=name, backend_options=options)


def async_names() -> dict[str, Callable[..., Any]]:
    """Every public callable of :mod:`aos` that is an async face of a blocking call: the names
    whose aos object is not the very object of :mod:`aos.blocking` (coroutine functions made
    by ``offload`` and the hand-written async iterators such as ``scandir``)."""
    names = {}
    for name in dir(aos):
        if name.startswith("_") and name != "_exit":
            continue
        obj = getattr(aos, name)
        sync = getattr(aos.blocking, name, None)
        if callable(obj) and not isinstance(obj, type) and sync is not None and obj is not sync:
            names[name] = obj
    return names


def outcome(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> tuple[str, Any]:
    """``("ok", result)`` or ``("raised", exception)`` of a blocking call."""
    try:
        return "ok", fn(*args, **kwargs)
    except Exception as error:
        return "raised", error
