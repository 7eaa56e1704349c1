"""asyncio and uvloop watch the pidfds of child waits through one epoll of the channel's own
(:mod:`aos._async._fd_watch`): not one ``add_reader`` per child, kept open for a cancelled task's
cleanup, and a forked child closes only its copy. (Trio waits with its own ``wait_readable``.)
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from typing import Any

import pytest

import aos

ENV = dict(os.environ)
TRUE = ["/bin/true"]


def loop_classes() -> list[Any]:
    classes: list[Any] = [pytest.param(asyncio.SelectorEventLoop, id="asyncio")]
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is optional
        return classes
    return [*classes, pytest.param(uvloop.Loop, id="uvloop")]


async def exit_status_of(argv: list[str]) -> int:
    """Spawn ``argv`` and wait for it with aos; its wait status."""
    pid = await aos.posix_spawn(argv[0], argv, ENV)
    waited, status = await aos.waitpid(pid, 0)
    assert waited == pid
    return status


@pytest.mark.parametrize("loop_class", loop_classes())
def test_child_waits_add_no_reader_each(loop_class: Any) -> None:
    readers: list[int] = []

    class Counting(loop_class):  # type: ignore[misc]
        def add_reader(self, fd: Any, callback: Any, *args: Any) -> None:
            readers.append(fd)
            super().add_reader(fd, callback, *args)

    async def main() -> list[int]:
        assert await exit_status_of(TRUE) == 0  # opens the channel and its watch
        first = list(readers)
        statuses = [await exit_status_of(TRUE) for _ in range(5)]
        assert statuses == [0] * 5
        return first

    with asyncio.Runner(loop_factory=Counting) as runner:
        first = runner.run(main())
    assert first
    assert readers == first


@pytest.mark.parametrize("loop_class", loop_classes())
def test_a_cancelled_tasks_cleanup_still_waits_for_its_child(loop_class: Any) -> None:
    """asyncio.run cancels the channel's guard and the task at once; the guard keeps the watch
    open until the cleanup's wait is over."""
    statuses: list[int] = []

    async def owner(started: asyncio.Event) -> None:
        pid = await aos.posix_spawn(sys.executable, [sys.executable, "-c", "exit(3)"], ENV)
        try:
            started.set()
            await asyncio.sleep(3600)
        finally:
            waited, status = await aos.waitpid(pid, 0)
            assert waited == pid
            statuses.append(status)

    async def main() -> None:
        started = asyncio.Event()
        asyncio.get_running_loop().create_task(owner(started))
        await started.wait()

    with asyncio.Runner(loop_factory=loop_class) as runner:
        runner.run(main())  # its end cancels owner, whose cleanup waits for the child
    assert [os.waitstatus_to_exitcode(status) for status in statuses] == [3]


@pytest.mark.parametrize("loop_module", ["asyncio", "uvloop"])
def test_a_forked_child_closes_its_copy_and_the_parent_goes_on(loop_module: str) -> None:
    pytest.importorskip(loop_module)
    script = f"""
import asyncio, os, signal, sys
import {loop_module}
import aos
from aos._async import _completions

ENV = dict(os.environ)

async def status_of(argv):
    pid = await aos.posix_spawn(argv[0], argv, ENV)
    waited, status = await aos.waitpid(pid, 0)
    assert waited == pid
    return status

async def main():
    assert await status_of(["/bin/true"]) == 0  # the watch is open now
    watch = _completions.current()._fd_watch
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
    assert await asyncio.wait_for(status_of(["/bin/true"]), 20) == 0

loop = {"asyncio.new_event_loop" if loop_module == "asyncio" else "uvloop.new_event_loop"}
with asyncio.Runner(loop_factory=loop) as runner:
    runner.run(main())
"""
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=120)
    assert proc.returncode == 0, proc.stderr.decode()
