"""The cancellation contract of DESIGN.md, per policy, with calls that really block.

- QUERY: a cancel returns while the syscall is still blocked (a read of an empty pipe).
- MUTATE: a cancel waits for the syscall (``open`` of a FIFO for writing blocks until a reader
  comes), and a resource the cancelled caller never receives is closed; a value (bytes read,
  a count written) is returned, and the cancel lands at the next checkpoint.
- Resource-creating calls cancelled at random points never leak an fd.
- WAIT: a cancel returns at once (``eventfd_read`` of an empty pipe, in a worker).

No test waits on the clock: "the syscall is in progress" is read from /proc/self/task/*/syscall,
and "the task had every chance to finish" is :func:`anyio.wait_all_tasks_blocked`.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import platform
import random
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

import anyio
import anyio.lowlevel
import pytest
from anyio.abc import TaskStatus

import aos
from aos import blocking
from aos._async._offload import MUTATE, QUERY, call, offload
from tests.aio._helpers import fill_pipe

T = TypeVar("T")

SYS_READ, SYS_OPENAT, SYS_SENDFILE, SYS_SPLICE = {
    "x86_64": (0, 257, 40, 275),
    "aarch64": (63, 56, 71, 76),
}.get(platform.machine(), (-1, -1, -1, -1))
SYSCALLS = {"sendfile": SYS_SENDFILE, "splice": SYS_SPLICE}
needs_known_syscalls = pytest.mark.skipif(
    SYS_READ < 0, reason="syscall numbers known for x86_64/aarch64"
)


async def in_worker(fn: Callable[..., T], *args: Any) -> T:
    """Sync test code off the event loop, on aos's own daemon workers."""
    return await call(MUTATE, None, fn, *args)


def fd_count() -> int:
    return len(os.listdir("/proc/self/fd"))


def some_thread_in(syscall: int, first_arg: int | None = None) -> bool:
    """Whether a thread of this process is blocked in ``syscall`` (optionally on that first arg)."""
    for tid in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{tid}/syscall") as f:
                fields = f.read().split()
        except OSError:
            continue
        if fields and fields[0] == str(syscall):
            if first_arg is None or int(fields[1], 16) == first_arg:
                return True
    return False


async def until_blocked_in(syscall: int, first_arg: int | None = None) -> None:
    while not await in_worker(some_thread_in, syscall, first_arg):  # noqa: ASYNC110 (polls /proc: no event to wait on)
        await anyio.sleep(0.001)


async def run_tracked(
    fn: Callable[[], Awaitable[T]], done: list[object], *, task_status: TaskStatus[None]
) -> None:
    """Run ``fn``, noting in ``done`` when it has returned or raised (cancellation included)."""
    task_status.started()
    try:
        done.append(await fn())
    except BaseException as e:
        done.append(e)
        raise


@needs_known_syscalls
@pytest.mark.anyio
async def test_query_cancel_returns_while_the_syscall_still_blocks() -> None:
    query_read = offload(blocking.read, QUERY)  # the QUERY policy on a read that truly blocks
    r, w = await aos.pipe()
    try:
        done: list[object] = []
        async with anyio.create_task_group() as tg:
            await tg.start(run_tracked, lambda: query_read(r, 1), done)
            await until_blocked_in(SYS_READ, r)
            tg.cancel_scope.cancel()
        assert len(done) == 1
        assert isinstance(done[0], anyio.get_cancelled_exc_class())
        assert await in_worker(some_thread_in, SYS_READ, r), "the read had to be still blocked"
    finally:
        await aos.write(w, b"x")  # lets the abandoned worker finish
        await until_not_blocked(SYS_READ, r)
        await aos.close(r)
        await aos.close(w)


async def until_not_blocked(syscall: int, first_arg: int) -> None:
    while await in_worker(some_thread_in, syscall, first_arg):  # noqa: ASYNC110 (polls /proc)
        await anyio.sleep(0.001)


@needs_known_syscalls
@pytest.mark.anyio
async def test_mutate_cancel_waits_for_the_syscall_and_releases_the_fd(tmp_path: Path) -> None:
    fifo = str(tmp_path / "fifo")
    await aos.mkfifo(fifo)
    before = await in_worker(fd_count)
    done: list[object] = []
    async with anyio.create_task_group() as tg:
        await tg.start(run_tracked, lambda: aos.open(fifo, os.O_WRONLY), done)
        await until_blocked_in(SYS_OPENAT)  # the writer's open waits for a reader
        tg.cancel_scope.cancel()
        with anyio.CancelScope(shield=True):
            await anyio.wait_all_tasks_blocked()
            assert done == [], "MUTATE returned before its syscall did"
            reader = await aos.open(fifo, os.O_RDONLY | os.O_NONBLOCK)  # unblocks the writer
    assert len(done) == 1
    assert isinstance(done[0], anyio.get_cancelled_exc_class())
    await aos.close(reader)
    assert await in_worker(fd_count) == before, "the fd opened for the cancelled caller leaked"


@contextlib.asynccontextmanager
async def sole_worker_held() -> AsyncIterator[threading.Event]:
    """The sole filesystem worker (see the ``one_worker`` fixture) kept busy until the gate it
    gives is set, or the block ends: calls made meanwhile wait in its queue."""
    started, gate = threading.Event(), threading.Event()

    def hold() -> None:
        started.set()
        gate.wait(10)

    async with anyio.create_task_group() as tg:
        tg.start_soon(in_worker, hold)
        try:
            await anyio.to_thread.run_sync(started.wait, 10)
            yield gate
        finally:
            gate.set()


def drain(pipe_r: int) -> bytes:
    """What a pipe holds now."""
    os.set_blocking(pipe_r, False)
    taken = bytearray()
    try:
        while chunk := os.read(pipe_r, 65536):
            taken += chunk
    except BlockingIOError:
        pass
    finally:
        os.set_blocking(pipe_r, True)
    return bytes(taken)


@needs_known_syscalls
@pytest.mark.anyio
@pytest.mark.parametrize("name", ["sendfile", "splice"])
async def test_a_cancelled_transfer_returns_its_count(
    name: str, tmp_path: Path, pipe: tuple[int, int]
) -> None:
    """A scope's cancel while ``sendfile`` or ``splice`` from a file waits for room in a pipe:
    the call runs on (``MUTATE``), and the caller gets its count (the file's offset moved:
    dropped, the count would leave it not knowing what went), then the cancel, at its next
    checkpoint, as anyio's and trio's ``to_thread`` do."""
    r, w = pipe
    path = tmp_path / "f"
    await in_worker(path.write_bytes, b"0123456789")
    fd = await aos.open(path, os.O_RDONLY)
    got: list[object] = []
    scope = anyio.CancelScope()

    async def caller() -> None:
        with scope:
            if name == "sendfile":
                got.append(await aos.sendfile(w, fd, None, 10))
            else:
                got.append(await aos.splice(fd, w, 10))
            await anyio.lowlevel.checkpoint()
            got.append("ran past the next checkpoint")

    try:
        await fill_pipe(w)
        async with anyio.create_task_group() as tg:
            tg.start_soon(caller)
            await until_blocked_in(SYSCALLS[name])
            scope.cancel()
            await anyio.wait_all_tasks_blocked()
            assert got == [], "MUTATE returned before its call did"
            piped = await in_worker(drain, r)  # room: the call writes and returns
        assert scope.cancelled_caught
        assert got == [10]
        assert os.lseek(fd, 0, os.SEEK_CUR) == 10
        piped += await in_worker(drain, r)
        assert piped.endswith(b"0123456789")
        assert set(piped[:-10]) == {ord("z")}  # (what fill_pipe writes)
    finally:
        await aos.close(fd)


@pytest.mark.anyio
@pytest.mark.parametrize("name", ["chmod", "write", "open", "close"])
async def test_a_call_cancelled_before_a_worker_took_it_is_taken_back(
    name: str, tmp_path: Path, one_worker: None
) -> None:
    """A scope's cancel while a call waits in the queue (the sole worker is busy): the call is
    taken back and the cancel raised at once, so the caller knows it never ran; but ``close``,
    which cleanup that forgot its shield relies on, runs all the same, then raises. (Calls with
    an io_uring form, ``mkdir`` say, do not queue behind a busy worker.)"""
    path = tmp_path / "f"
    await in_worker(path.write_bytes, b"0123456789")
    fd = await aos.open(path, os.O_RDWR)
    outcome: list[object] = []
    calls: dict[str, Callable[[], Awaitable[object]]] = {
        "chmod": lambda: aos.chmod(path, 0o600),
        "write": lambda: aos.write(fd, b"abcd"),
        "open": lambda: aos.open(tmp_path / "opened", os.O_CREAT | os.O_WRONLY),
        "close": lambda: aos.close(fd),
    }

    async def caller(scope: anyio.CancelScope) -> None:
        with scope:
            outcome.append(await calls[name]())
        outcome.append("cancelled" if scope.cancelled_caught else "returned")

    before = await in_worker(fd_count)
    mode = (await aos.stat(path)).st_mode
    try:
        async with sole_worker_held() as gate, anyio.create_task_group() as tg:
            scope = anyio.CancelScope()
            tg.start_soon(caller, scope)
            await anyio.wait_all_tasks_blocked()
            scope.cancel()
            await anyio.wait_all_tasks_blocked()
            if name == "close":
                assert outcome == [], "close returned before it ran"
            else:
                assert outcome == ["cancelled"], "the cancel waited for the busy worker"
            gate.set()
        assert outcome == ["cancelled"]
        if name == "close":
            with pytest.raises(OSError, match="Bad file descriptor"):
                os.fstat(fd)
            assert await in_worker(fd_count) == before - 1
            return
        assert await in_worker(os.listdir, tmp_path) == ["f"]
        assert (await aos.stat(path)).st_mode == mode
        assert await in_worker(path.read_bytes) == b"0123456789"
        assert os.lseek(fd, 0, os.SEEK_CUR) == 0
        assert await in_worker(fd_count) == before
    finally:
        if name != "close" or outcome != ["cancelled"]:
            with contextlib.suppress(OSError):
                os.close(fd)


@pytest.mark.anyio
async def test_a_native_cancel_of_a_queued_shielded_cleanup_lets_it_run(
    tmp_path: Path, one_worker: None, anyio_backend: tuple[str, object]
) -> None:
    """asyncio's own cancel (Ctrl-C's, a task group's) gets through anyio's shields: a queued
    call of a shielded cleanup is not taken back, it runs, then the cancel is raised."""
    if anyio_backend[0] == "trio":
        pytest.skip("a native asyncio cancel: trio's cancels are all its scopes'")
    path = tmp_path / "f"
    await in_worker(path.write_bytes, b"0123456789")

    async def cleanup() -> None:
        with anyio.CancelScope(shield=True):
            await aos.truncate(path, 0)

    async with sole_worker_held() as gate:
        task = asyncio.ensure_future(cleanup())
        await anyio.wait_all_tasks_blocked()
        task.cancel()
        await anyio.wait_all_tasks_blocked()
        assert not task.done(), "the queued cleanup was taken back"
        gate.set()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert await in_worker(path.read_bytes) == b""


@pytest.mark.anyio
async def test_a_call_made_when_cancelled_already_does_nothing(tmp_path: Path) -> None:
    """Every call is a checkpoint, as anyio's and trio's ``to_thread`` are: one made in a
    cancelled scope raises the cancel and runs nothing, whatever its policy or route (a
    worker, io_uring for overlapping calls, the loop for a pipe)."""
    (tmp_path / "victim").touch()
    fd = await aos.open(tmp_path / "file", os.O_WRONLY | os.O_CREAT)
    calls: list[Callable[[], Coroutine[Any, Any, object]]] = [
        lambda: aos.mkdir(tmp_path / "made"),
        lambda: aos.unlink(tmp_path / "victim"),
        lambda: aos.rename(tmp_path / "victim", tmp_path / "moved"),
        lambda: aos.symlink("victim", tmp_path / "link"),
        lambda: aos.write(fd, b"data"),
        lambda: aos.open(tmp_path / "opened", os.O_WRONLY | os.O_CREAT),
        lambda: aos.stat(tmp_path / "victim"),
    ]
    try:
        with anyio.CancelScope() as scope:
            scope.cancel()
            for one in calls:
                with pytest.raises(anyio.get_cancelled_exc_class()):
                    await one()
            async with anyio.create_task_group() as tg:  # overlapping: the ring's route
                for one in calls[:4]:
                    tg.start_soon(one)
    finally:
        await aos.close(fd)
    assert scope.cancelled_caught
    assert sorted(await aos.listdir(tmp_path)) == ["file", "victim"]
    assert (await aos.stat(tmp_path / "file")).st_size == 0


@pytest.mark.anyio
async def test_a_query_made_when_cancelled_already_raises_the_cancel(tmp_path: Path) -> None:
    """A query sent to a worker could return its value where the worker beat the loop's delivery
    of the cancel (asyncio, uvloop: up to 99 in 100 on uvloop)."""
    await aos.symlink("target", tmp_path / "link")
    queries: list[Callable[[], Coroutine[Any, Any, object]]] = [
        lambda: aos.listdir(tmp_path),
        lambda: aos.readlink(tmp_path / "link"),
        lambda: aos.access(tmp_path, os.F_OK),
        lambda: aos.path.realpath(tmp_path),
        lambda: aos.urandom(4),
    ]
    answered = []
    for query in queries:
        for _ in range(200):
            with anyio.CancelScope() as scope:
                scope.cancel()
                answered.append(await query())
            assert scope.cancelled_caught
    assert answered == []


@pytest.mark.anyio
async def test_close_made_when_cancelled_already_closes_then_raises(tmp_path: Path) -> None:
    """``close`` and ``closerange`` are the exception: cleanup that forgot its shield still
    frees its fds, then gets the cancel (every other call would not run)."""
    fds = [await aos.open(tmp_path / "f", os.O_RDONLY | os.O_CREAT) for _ in range(3)]
    with anyio.CancelScope() as scope:
        scope.cancel()
        with pytest.raises(anyio.get_cancelled_exc_class()):
            await aos.close(fds[0])
        with pytest.raises(anyio.get_cancelled_exc_class()):
            await aos.closerange(min(fds[1:]), max(fds[1:]) + 1)
    for fd in fds:
        with pytest.raises(OSError, match="Bad file descriptor"):
            await aos.fstat(fd)


@pytest.mark.anyio
async def test_a_call_made_by_a_task_cancelled_natively_does_nothing(
    tmp_path: Path, anyio_backend: tuple[str, object]
) -> None:
    """asyncio's own cancel (``Task.cancel``, as ``asyncio.timeout`` and Ctrl-C use) pending
    when a call is made: the same, nothing runs."""
    if anyio_backend[0] == "trio":
        pytest.skip("a native asyncio cancel: trio's cancels are its scopes' (tested above)")

    async def cancelled_by_itself() -> None:
        task = asyncio.current_task()
        assert task is not None
        task.cancel()
        await aos.mkdir(tmp_path / "made")

    with pytest.raises(asyncio.CancelledError):
        await asyncio.ensure_future(cancelled_by_itself())
    assert await aos.listdir(tmp_path) == []


@needs_known_syscalls
@pytest.mark.anyio
async def test_wait_cancel_returns_at_once(pipe: tuple[int, int]) -> None:
    """A ``WAIT`` call blocked in a worker: ``eventfd_read`` of a pipe, which ``os`` reads 8
    bytes of (an eventfd's own read waits on the loop instead: ``test_wait_lane.py``)."""
    r, w = pipe
    done: list[object] = []
    try:
        async with anyio.create_task_group() as tg:
            await tg.start(run_tracked, lambda: aos.eventfd_read(r), done)
            await until_blocked_in(SYS_READ, r)
            tg.cancel_scope.cancel()
        assert isinstance(done[0], anyio.get_cancelled_exc_class())
    finally:
        await aos.write(w, bytes(8))  # the abandoned read takes it and ends
        await until_not_blocked(SYS_READ, r)


Fds = int | tuple[int, ...]  # what a call that makes fds returns: one, or several (pipe)


def fds_of(result: Fds) -> tuple[int, ...]:
    return result if isinstance(result, tuple) else (result,)


async def cancelled_at_random_points(
    make: Callable[[], Awaitable[Fds]], rounds: int, rng: random.Random
) -> None:
    """Start ``make()``, cancel it after a random number of checkpoints, close what it returned."""
    for _ in range(rounds):
        got: list[Fds] = []

        async def attempt(got: list[Fds] = got) -> None:
            got.append(await make())

        async with anyio.create_task_group() as tg:
            tg.start_soon(attempt)
            for _ in range(rng.randrange(12)):
                await anyio.lowlevel.checkpoint()
            tg.cancel_scope.cancel()
        for result in got:  # the call won the race: the caller owns the result
            for fd in fds_of(result):
                await aos.close(fd)


async def dup2_onto_next(fd: int) -> tuple[int, ...]:
    """``dup2`` onto the caller's own ``fd + 1``: aos never closes a number the caller chose."""
    await aos.dup2(fd, fd + 1)
    return ()


RESOURCE_CALLS: dict[str, Callable[[str, int], Awaitable[Fds]]] = {
    "open": lambda path, fd: aos.open(path, os.O_RDONLY),
    "dup": lambda path, fd: aos.dup(fd),
    "dup2": lambda path, fd: dup2_onto_next(fd),
    "pipe": lambda path, fd: aos.pipe(),
    "pipe2": lambda path, fd: aos.pipe2(os.O_CLOEXEC),
    "openpty": lambda path, fd: aos.openpty(),
    "memfd_create": lambda path, fd: aos.memfd_create("aos-cancel"),
    "eventfd": lambda path, fd: aos.eventfd(0),
}


@pytest.mark.anyio
@pytest.mark.parametrize("name", sorted(RESOURCE_CALLS))
async def test_resource_calls_cancelled_anywhere_never_leak(name: str, tmp_path: Path) -> None:
    path = str(tmp_path / "f")
    fd = await aos.open(path, os.O_RDWR | os.O_CREAT)
    spare = await aos.dup(fd)  # dup2's target: fd + 1 must be ours
    try:
        if spare != fd + 1:
            pytest.skip("fd + 1 was taken; dup2's target must be an fd this test owns")
        before = await in_worker(fd_count)
        rounds = 1000 if name == "open" else 200
        await cancelled_at_random_points(
            lambda: RESOURCE_CALLS[name](path, fd), rounds, random.Random(name)
        )
        assert await in_worker(fd_count) == before
    finally:
        await aos.close(spare)
        await aos.close(fd)
