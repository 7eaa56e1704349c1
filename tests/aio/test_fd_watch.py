"""asyncio and uvloop watch the pidfds of child waits through one epoll of the channel's own
(:mod:`aos._async._fd_watch`): not one ``add_reader`` per child, kept open for a cancelled task's
cleanup, and a forked child closes only its copy. (Trio waits with its own ``wait_readable``.)
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import threading
from typing import Any

import pytest

import aos
from aos._async import _completions
from aos._async._fd_watch import FdWatch
from tests.aio._helpers import end_a_loop_in_a_cleanup, loop_factories, run_child

ENV = dict(os.environ)
TRUE = ["/bin/true"]


async def exit_status_of(argv: list[str]) -> int:
    """Spawn ``argv`` and wait for it with aos; its wait status."""
    pid = await aos.posix_spawn(argv[0], argv, ENV)
    waited, status = await aos.waitpid(pid, 0)
    assert waited == pid
    return status


def current_watch() -> FdWatch | None:
    """The fd watch of the running loop's channel (``None`` until a child wait opened it)."""
    channel = _completions.current()
    assert isinstance(channel, _completions.AsyncioChannel)
    return channel._fd_watch


def cat_on_a_pipe() -> tuple[int, int]:
    """A child (``cat``) that exits once the returned write end of its stdin is closed: (pid, w)."""
    r, w = os.pipe()
    try:
        actions = [
            (os.POSIX_SPAWN_DUP2, r, 0),
            (os.POSIX_SPAWN_OPEN, 1, "/dev/null", os.O_WRONLY, 0),
        ]
        pid = os.posix_spawnp("cat", ["cat"], ENV, file_actions=actions)
    except BaseException:
        os.close(w)
        raise
    finally:
        os.close(r)
    return pid, w


async def wait_for_cat(pid: int, w: int, *, yields: int = 2) -> tuple[int, int]:
    """Wait for ``cat_on_a_pipe``'s child, letting it exit only once the wait watches it: the
    pipe closes ``yields`` loop iterations after the wait began (it may yield once first, at a
    checkpoint before it looks at the child)."""
    loop = asyncio.get_running_loop()

    def close_later(yields: int) -> None:
        if yields > 1:
            loop.call_soon(close_later, yields - 1)
        else:
            os.close(w)

    loop.call_soon(close_later, yields)  # runs once this task waits
    async with asyncio.timeout(20):  # (no task of its own: the wait starts first)
        return await aos.waitpid(pid, 0)


@pytest.mark.parametrize("loop_class", loop_factories())
def test_child_waits_add_no_reader_each(loop_class: Any) -> None:
    readers: list[int] = []

    class Counting(loop_class):  # type: ignore[misc]
        def add_reader(self, fd: Any, callback: Any, *args: Any) -> None:
            readers.append(fd)
            super().add_reader(fd, callback, *args)

    async def main() -> tuple[list[int], FdWatch]:
        pid, w = cat_on_a_pipe()
        assert await wait_for_cat(pid, w) == (pid, 0)  # opens the channel and its watch
        first = list(readers)
        statuses = [await exit_status_of(TRUE) for _ in range(5)]
        assert statuses == [0] * 5
        watch = current_watch()
        assert watch is not None
        return first, watch

    with asyncio.Runner(loop_factory=Counting) as runner:
        first, watch = runner.run(main())
    assert first
    assert readers == first
    assert watch._epoll.closed  # closed with the channel, at the loop's end


@pytest.mark.parametrize("loop_class", loop_factories())
def test_a_cancelled_tasks_cleanup_still_waits_for_its_child(loop_class: Any) -> None:
    """asyncio.run cancels the channel's guard and the task at once; when the guard closes the
    watch, the loop itself goes on watching the cleanup's pidfd."""
    statuses: list[tuple[int, int]] = []
    pid, w = cat_on_a_pipe()

    async def cleanup() -> None:
        statuses.append(await wait_for_cat(pid, w))

    try:
        end_a_loop_in_a_cleanup(loop_class, cleanup)
    finally:
        if not statuses:  # failed: let the child go and reap it
            with contextlib.suppress(OSError):
                os.close(w)
            os.waitpid(pid, 0)
    assert statuses == [(pid, 0)]


@pytest.mark.parametrize("loop_class", loop_factories())
def test_the_loops_end_does_not_wait_for_a_wait_nobody_awaits(loop_class: Any) -> None:
    """A task's cleanup starts a wait in a task of its own, which the loop's end does not wait
    for: the channel's guard does not wait for it either (the child lives on)."""
    pid, w = cat_on_a_pipe()

    async def cleanup() -> None:
        asyncio.get_running_loop().create_task(aos.waitpid(pid, 0))

    ended = threading.Event()

    def run() -> None:
        end_a_loop_in_a_cleanup(loop_class, cleanup)
        ended.set()

    thread = threading.Thread(target=run)
    thread.start()
    try:
        assert ended.wait(20), "the loop's end waited for the child"
    finally:
        os.close(w)
        thread.join(20)
        with contextlib.suppress(ChildProcessError):  # (reaped by the wait if it ran on)
            os.waitpid(pid, 0)
        gc.collect()  # the destroyed task's coroutine closes its pidfd


@pytest.mark.parametrize("loop_class", loop_factories())
def test_the_watch_of_a_loop_closed_without_shutdown_is_closed_by_the_next_loop(
    loop_class: Any,
) -> None:
    pid, w = cat_on_a_pipe()
    loop = loop_class()

    async def start_a_wait() -> FdWatch:
        loop.create_task(aos.waitpid(pid, 0))
        for _ in range(2000):  # until the wait is registered in the watch
            watch = current_watch()
            if watch is not None and watch._waiters:
                return watch
            await asyncio.sleep(0.01)
        raise AssertionError("the wait never reached the watch")

    try:
        watch = loop.run_until_complete(start_a_wait())
        loop.close()  # the wait stays pending, the channel open
        assert not watch._epoll.closed
        with asyncio.Runner(loop_factory=loop_class) as runner:
            runner.run(aos.stat("/"))  # the next loop's channel closes those of closed loops
        assert watch._epoll.closed
    finally:
        if not loop.is_closed():
            loop.close()
        os.close(w)
        os.waitpid(pid, 0)
        gc.collect()  # the destroyed task's coroutine closes its pidfd


@pytest.mark.parametrize("loop_module", ["asyncio", "uvloop"])
def test_a_pidfd_the_loop_cannot_watch_is_waited_for_by_a_worker(loop_module: str) -> None:
    """With one fd left, the pidfd takes it and the watch's epoll finds none (EMFILE)."""
    pytest.importorskip(loop_module)
    run_child(f"""
import asyncio, os, resource
import {loop_module}
import aos
from tests.aio.test_fd_watch import cat_on_a_pipe, current_watch, wait_for_cat

async def main():
    await aos.stat("/")  # the channel, its eventfd and a worker exist
    pid, w = cat_on_a_pipe()
    fillers = [os.open("/dev/null", os.O_RDONLY)]  # fill every free fd number below the top
    while fillers[-1] < max(int(n) for n in os.listdir("/proc/self/fd")) - 1:
        fillers.append(os.open("/dev/null", os.O_RDONLY))
    free = os.open("/dev/null", os.O_RDONLY)
    os.close(free)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (free + 1, hard))  # one fd left: free
    try:  # (w, closed before the pidfd is watched, would free an fd for the watch)
        assert await wait_for_cat(pid, w) == (pid, 0)
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    assert current_watch() is None  # never opened: a worker waited
    for fd in fillers:
        os.close(fd)

with asyncio.Runner(loop_factory={loop_module}.new_event_loop) as runner:
    runner.run(main())
""")


@pytest.mark.parametrize("loop_module", ["asyncio", "uvloop"])
def test_a_forked_child_closes_its_copy_and_the_parent_goes_on(loop_module: str) -> None:
    pytest.importorskip(loop_module)
    run_child(f"""
import asyncio, os, signal
import {loop_module}
import aos
from tests.aio.test_fd_watch import cat_on_a_pipe, current_watch, wait_for_cat

async def main():
    pid, w = cat_on_a_pipe()
    assert await wait_for_cat(pid, w) == (pid, 0)  # the watch is open now
    watch = current_watch()
    pid = os.fork()
    if pid == 0:
        signal.alarm(30)  # a hung child must not outlive a failed test
        os._exit(0 if watch._epoll.closed else 1)  # closed here (and nothing else changed)
    assert not watch._epoll.closed
    waited, status = await asyncio.wait_for(aos.waitpid(pid, 0), 20)
    assert waited == pid
    assert os.waitstatus_to_exitcode(status) == 0, "the child's watch was left open"
    # The parent's loop still watches its epoll (a child that unregistered it from the loop's
    # epoll instance, which it shares, would leave the waits above and here hanging).
    child, w = cat_on_a_pipe()
    assert await wait_for_cat(child, w) == (child, 0)
    assert watch is current_watch()

with asyncio.Runner(loop_factory={loop_module}.new_event_loop) as runner:
    runner.run(main())
""")
