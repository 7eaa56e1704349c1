"""``fork()`` while aos calls are in flight leaves a child that can use aos under a fresh loop."""

from __future__ import annotations

import os
import signal
import sys
import traceback
import warnings
from pathlib import Path
from typing import Any

import anyio
import pytest

import aos
from tests.aio._helpers import run_child

IN_FLIGHT = 40
"""Calls running (or queued) in the parent's engine at the moment of the fork."""


async def use_aos(tmp: Path) -> None:
    """What the child does: files, a directory listing, a walk, a grandchild and its wait."""
    path = tmp / f"child-{os.getpid()}"
    fd = await aos.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        assert await aos.write(fd, b"from the child") == 14
    finally:
        await aos.close(fd)
    assert (await aos.stat(path)).st_size == 14
    async with aos.scandir(tmp) as it:
        assert path.name in [entry.name async for entry in it]
    assert [top async for top, _, _ in aos.walk(tmp)] == [str(tmp)]
    async with anyio.create_task_group() as tg:  # the engine serves many calls at once
        for _ in range(IN_FLIGHT):
            tg.start_soon(aos.stat, path)
    pid = await aos.posix_spawn(sys.executable, [sys.executable, "-c", "pass"], dict(os.environ))
    _, status = await aos.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0


def fork_child(backend: tuple[str, dict[str, Any]], tmp: Path) -> int:
    """In a worker thread: fork; the child runs :func:`use_aos` under a fresh loop and exits
    0 on success, 1 with the traceback in ``tmp/error`` on failure, 2 on a timeout."""
    with warnings.catch_warnings():  # 3.12+ warns that forking a threaded process is risky
        warnings.simplefilter("ignore", DeprecationWarning)
        pid = os.fork()
    if pid:
        return pid
    code = 1
    try:
        # The parent's loop left its wake-up fd set (trio's, or asyncio's): a fresh loop in a
        # fresh program would find none, and trio warns when it finds one.
        signal.set_wakeup_fd(-1)

        async def main() -> None:
            with anyio.fail_after(20):
                await use_aos(tmp)

        anyio.run(main, backend=backend[0], backend_options=backend[1])
        code = 0
    except TimeoutError:
        code = 2
    except BaseException:
        traceback.print_exc()
        with open(tmp / "error", "w") as f:
            f.write(traceback.format_exc())
    finally:
        os._exit(code)


def child_error(tmp: Path) -> str:
    """The traceback the child left, if any."""
    error_file = tmp / "error"
    return error_file.read_text() if error_file.exists() else ""


@pytest.fixture
def a_file(tmp_path: Path) -> Path:
    (tmp_path / "file").write_bytes(b"x")
    return tmp_path / "file"


@pytest.mark.anyio
async def test_fork_while_calls_are_in_flight(
    tmp_path: Path, a_file: Path, anyio_backend: tuple[str, dict[str, Any]]
) -> None:
    stop = anyio.Event()

    async def keep_busy() -> None:
        while not stop.is_set():
            await aos.stat(a_file)

    async with anyio.create_task_group() as tg:
        for _ in range(IN_FLIGHT):
            tg.start_soon(keep_busy)
        await anyio.sleep(0.01)
        pid = await anyio.to_thread.run_sync(fork_child, anyio_backend, tmp_path)
        try:
            with anyio.fail_after(30):
                _, status = await aos.waitpid(pid, 0)
        except TimeoutError:
            os.kill(pid, 9)
            await aos.waitpid(pid, 0)
            raise
        finally:
            stop.set()
    error = await anyio.to_thread.run_sync(child_error, tmp_path)
    assert os.waitstatus_to_exitcode(status) == 0, error or "the child timed out"


HELD_AT_FORK = """
import asyncio, os, signal, sys, threading, traceback, warnings
import trio, uvloop
import aos
from aos._async import _completions, _loop_end

taken, done = threading.Event(), threading.Event()

def hold() -> None:  # a thread in the middle of opening or closing a loop's channel
    with _completions._channels_lock, _loop_end._resource_warnings_raised():
        taken.set()
        done.wait()

# 3.12+ warns that forking a threaded process is risky (no catch_warnings here: it would
# put back the holder's filters in the child when it ends)
warnings.simplefilter("ignore", DeprecationWarning)
holder = threading.Thread(target=hold)
holder.start()
taken.wait()
pid = os.fork()
if pid == 0:
    signal.alarm(20)  # (a child that hangs dies of SIGALRM)
    code = 1
    try:  # (a failure's traceback goes to stderr, then the child exits 1)
        warnings.warn("not an error here", ResourceWarning)  # (the filters are put back)
        expected = os.listdir(".")
        assert asyncio.run(aos.listdir(".")) == expected  # opens a channel, closes it
        assert uvloop.run(aos.listdir(".")) == expected
        assert trio.run(aos.listdir, ".") == expected
        code = 0
    except BaseException:
        traceback.print_exc()
    finally:
        os._exit(code)
done.set()
holder.join()
_, status = os.waitpid(pid, 0)
sys.exit(os.waitstatus_to_exitcode(status))
"""


def test_a_lock_held_by_another_thread_at_the_fork_is_free_in_the_child() -> None:
    """A thread that held aos's channel table or warning-filter lock at the fork is not in the
    child: the child's loops open and close their channels all the same, and the warning
    filters that thread had changed are put back."""
    run_child(HELD_AT_FORK)


QUEUED_AT_FORK = """
import os, threading, warnings
from aos._async._workers import Job, Pool

pool = Pool("forked", 1)
gate = threading.Event()
pool.submit(Job(gate.wait, (), {}, lambda job: None))  # the sole worker, busy
queued = Job(lambda: None, (), {}, lambda job: None)
pool.submit(queued)
with warnings.catch_warnings():  # 3.12+ warns that forking a threaded process is risky
    warnings.simplefilter("ignore", DeprecationWarning)
    pid = os.fork()
if pid == 0:
    pool.after_fork_in_child()
    ran = threading.Event()
    taken_back = pool.withdraw(queued)  # not the child's: its queue is empty
    pool.submit(Job(ran.set, (), {}, lambda job: None))
    os._exit(0 if not taken_back and ran.wait(10) else 1)
gate.set()
_, status = os.waitpid(pid, 0)
assert os.waitstatus_to_exitcode(status) == 0
"""


def test_a_job_queued_in_the_parent_is_not_the_childs_to_take_back() -> None:
    """Taken back in the child, a job the parent had queued set the child pool's count of
    waiting jobs to -1, and its next job woke no worker."""
    run_child(QUEUED_AT_FORK)
