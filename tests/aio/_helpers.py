"""Helpers shared by the async tests: off-loop reference calls, fd counts, call routes."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

import anyio
import anyio.lowlevel
import anyio.to_thread
import pytest

import aos
from aos._async import _inline, _kernel_form, _uring
from aos._async._completions import Channel
from aos._async._offload import QUERY, answers_inline, call, runs_on_ring
from aos._async._workers import Job

T = TypeVar("T")


async def fill_pipe(w: int) -> int:
    """Fill the pipe of write end ``w`` through a non-blocking description of its own
    (non-blocking calls only, the flags of ``w`` untouched); how many bytes it took."""
    fd = os.open(f"/proc/self/fd/{w}", os.O_WRONLY | os.O_NONBLOCK)
    total = 0
    try:
        while True:
            total += os.write(fd, b"z" * 4096)
    except BlockingIOError:
        return total
    finally:
        os.close(fd)
        await anyio.lowlevel.checkpoint()


def native_cancel(scope: anyio.CancelScope) -> Callable[[], object]:
    """How to cancel the calling task as its own loop does: ``task.cancel()`` on asyncio (which
    an anyio shield does not hold back), the scope's cancel on trio (which has no other)."""
    try:
        task = asyncio.current_task()
    except RuntimeError:  # no asyncio loop runs: trio
        return scope.cancel
    assert task is not None
    return task.cancel


async def cancel_at(items: AsyncIterator[Any], k: int, scope: anyio.CancelScope) -> None:
    """Step through ``items``; at the ``k``-th, cancel ``scope`` and reach a checkpoint: the
    cancel lands in the loop's body, which leaves the iterator open (``k`` 0: never)."""
    seen = 0
    async for _ in items:
        seen += 1
        if seen == k:
            scope.cancel()
            await anyio.lowlevel.checkpoint()


async def off_loop(fn: Callable[..., T], *args: Any) -> T:
    """Run a blocking reference computation on a worker thread."""
    return await call(QUERY, None, fn, *args)


def fd_targets_under(path: Path) -> list[str]:
    """What the open fds of this process that point at ``path`` or below it point at."""
    targets = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target == str(path) or target.startswith(f"{path}/"):
            targets.append(target)
    return targets


def count_fds_under(path: Path) -> int:
    """How many open fds of this process point at ``path`` or below it."""
    return len(fd_targets_under(path))


async def fds_under(path: Path) -> int:
    """:func:`count_fds_under`, listed off the event loop."""
    return await off_loop(count_fds_under, path)


async def wait_for_no_fds_under(path: Path) -> None:
    """Abandoned worker calls close their fds when they return: give them up to 5 s, then
    fail if any is left under ``path``, saying which, and whether only garbage held them."""
    for _ in range(500):
        if not await fds_under(path):
            return
        await anyio.sleep(0.01)
    left = await off_loop(fd_targets_under, path)
    if left:
        gc.collect()
        after_gc = await off_loop(fd_targets_under, path)
        pytest.fail(f"fds left open under {path}: {left}; after gc.collect(): {after_gc}")


ROUTES = ("worker", "ring", "inline")


def routes_for(func: object) -> list[str]:
    """The routes a call can take here: a worker always; io_uring and an inline answer where
    the call has that form and the kernel offers it."""
    routes = ["worker"]
    if runs_on_ring(func) and _uring.available():
        routes.append("ring")
    if answers_inline(func) and _inline.enabled:
        routes.append("inline")
    return routes


def take_route(route: str, monkeypatch: pytest.MonkeyPatch) -> Callable[[], int]:
    """Make ring- and inline-capable calls take ``route``; return a count of those that did.

    ``"worker"``: no inline answers, and a lone call goes to a worker as usual (the count is of
    ring pushes and inline answers, so it must stay 0). ``"ring"``: no inline answers, and every
    loop looks busy, so calls go to the ring (the count is of ring pushes). ``"inline"``: inline
    answers where the kernel allows (the count is of inline answers, results and errors).
    """
    pushed = answered = 0
    push = _uring.Ring.push
    in_memory = _inline._in_memory
    filename_of = _kernel_form.filename_of

    def counting_push(self: _uring.Ring, *args: int) -> None:
        nonlocal pushed
        pushed += 1
        push(self, *args)

    def counting_in_memory(mount: int) -> bool:  # inline answers with the result if so
        nonlocal answered
        answer = in_memory(mount)
        answered += answer
        return answer

    def counting_filename_of(path: object) -> object:  # inline builds an error with it
        nonlocal answered
        answered += 1
        return filename_of(path)

    monkeypatch.setattr(_uring.Ring, "push", counting_push)
    monkeypatch.setattr(_inline, "_in_memory", counting_in_memory)
    monkeypatch.setattr(_inline, "filename_of", counting_filename_of)
    if route != "inline":
        monkeypatch.setattr(_inline, "enabled", False)
    if route == "ring":
        monkeypatch.setattr(Channel, "_busy", lambda self: True)
    counts = {"worker": lambda: pushed + answered, "ring": lambda: pushed}
    return counts.get(route, lambda: answered)


def error_facts(error: BaseException) -> tuple[object, ...]:
    """What must match between an aos error and an os error: type, errno, text, both names
    (with their types: os gives a ``pathlib`` path back as a string)."""
    assert isinstance(error, OSError), error
    names = (error.filename, error.filename2)
    return type(error), error.errno, error.strerror, names, tuple(type(n) for n in names)


async def os_error(
    fn: Callable[..., object], *args: Any, **kwargs: Any
) -> tuple[type[OSError], tuple[object, ...]]:
    """The type and :func:`error_facts` of what ``fn`` raises, called off the event loop."""

    def failing() -> tuple[type[OSError], tuple[object, ...]]:
        try:
            fn(*args, **kwargs)
        except OSError as error:
            return type(error), error_facts(error)
        raise AssertionError(f"{fn.__name__} did not fail")

    return await off_loop(failing)


@contextlib.contextmanager
def loop_not_woken(
    channel: Channel, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Callable[[int], Awaitable[None]]]:
    """In the block, the workers' finished jobs wait in ``channel`` without waking its loop;
    the function it gives waits (on anyio's own thread) until ``n`` more have finished."""
    finished = threading.Semaphore(0)
    finish = channel.finish

    def counting_finish(job: Job) -> None:
        finish(job)
        finished.release()

    async def until_finished(n: int) -> None:
        for _ in range(n):
            assert await anyio.to_thread.run_sync(finished.acquire, True, 10.0)

    with monkeypatch.context() as quiet:
        quiet.setattr(channel, "wake_loop", lambda: None)
        quiet.setattr(channel, "finish", counting_finish)
        yield until_finished


def loop_factories() -> list[Any]:
    """asyncio's loop class, and uvloop's where it is installed, for tests that make loops by
    hand (a class makes a loop when called, and can be subclassed)."""
    factories: list[Any] = [pytest.param(asyncio.SelectorEventLoop, id="asyncio")]
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is optional
        return factories
    return [*factories, pytest.param(uvloop.Loop, id="uvloop")]


def end_a_loop_in_a_cleanup(
    loop_factory: Callable[[], asyncio.AbstractEventLoop],
    cleanup: Callable[[], Awaitable[object]],
    *,
    open_channel_first: bool = True,
) -> None:
    """Run a loop whose end (``asyncio.Runner`` closing, as ``asyncio.run`` ends) cancels a
    task, whose cleanup then awaits ``cleanup()``. With ``open_channel_first``, the loop has
    its aos channel before, and the loop's end cancels that channel's guard too."""

    async def owner(started: asyncio.Event) -> None:
        try:
            started.set()
            await asyncio.sleep(3600)
        finally:
            await cleanup()

    async def main() -> None:
        if open_channel_first:
            await call(QUERY, None, os.getpid)
        started = asyncio.Event()
        asyncio.get_running_loop().create_task(owner(started))
        await started.wait()

    with asyncio.Runner(loop_factory=loop_factory) as runner:
        runner.run(main())


def until(predicate: Callable[[], object], timeout: float = 10.0) -> bool:
    """Poll ``predicate`` for up to ``timeout`` seconds, blocking (sync code or a worker
    thread only); whether it came true."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.005)
    return True


def run_child(script: str, *args: str, interpreter_flags: Sequence[str] = ()) -> str:
    """Run ``script`` in a Python child (limits, forks and signals stay there), with this
    checkout on its path so that it may import ``tests``; assert that it succeeded and return
    what it printed."""
    root = str(Path(__file__).resolve().parents[2])
    path = os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))
    command = [sys.executable, *interpreter_flags, "-c", script, *args]
    env = {**os.environ, "PYTHONPATH": path}
    done = subprocess.run(
        command, capture_output=True, text=True, timeout=120, env=env, check=False
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


DEADLOCK = 10.0  # seconds after which a wait counts as stuck (each takes milliseconds)


@contextlib.asynccontextmanager
async def unstuck_after_a_while(unstick: Callable[[], object]) -> AsyncIterator[None]:
    """If the block still runs after :data:`DEADLOCK` seconds, ``unstick`` (on anyio's own
    thread: aos's one worker may be the one held) frees the call it waits on, so that a test
    of code that holds the worker fails instead of hanging."""

    async def later() -> None:
        await anyio.sleep(DEADLOCK)
        await anyio.to_thread.run_sync(unstick)

    async with anyio.create_task_group() as guard:
        guard.start_soon(later)
        yield
        guard.cancel_scope.cancel()


async def answered_while_it_waits(
    waiting: Callable[[], Coroutine[Any, Any, T]], unstick: Callable[[], object]
) -> T:
    """Start ``waiting``; once it waits, the one filesystem worker is free (an ``aos.access``
    is answered first; see the ``one_worker`` fixture); then ``unstick`` lets it finish, and its
    result is returned."""
    results: list[T] = []
    order: list[str] = []

    async def calling() -> None:
        results.append(await waiting())
        order.append("call")

    async with unstuck_after_a_while(unstick), anyio.create_task_group() as tg:
        tg.start_soon(calling)
        await anyio.wait_all_tasks_blocked()
        assert await aos.access("/", os.F_OK)
        order.append("access")
        await anyio.to_thread.run_sync(unstick)
    assert order == ["access", "call"]  # (where the call held the worker: the other way round)
    return results[0]
