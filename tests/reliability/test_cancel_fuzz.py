"""Cancellation fuzzing: random sets of concurrent calls of every policy, each cancelled at a
random point. Afterwards the fds, the stuck threads and the child table are back to where they
started, every child's status is still there for its parent, and every byte a write
acknowledged is in the file or pipe.

A call that ignores its cancel for good would hang the test: a watchdog unsticks such calls
after a few seconds (writes to / drains the pipe, kills the child) and fails the example.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import signal
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import anyio.lowlevel
import pytest
from hypothesis import HealthCheck, Phase, given, settings, strategies as st

import aos
from tests.reliability.conftest import Resources, leaks_after, run_on

EXAMPLES = 60
"""Hypothesis examples per backend (each runs up to 6 concurrent calls)."""

HANG = 3.0
"""Seconds after which a call that was cancelled but has not returned counts as hung."""

SLEEPER = "import time; time.sleep(60)"
CHUNK = 4096


@dataclass
class Pipe:
    """A pipe under test, with spare ends the watchdog uses to unstick a blocked call."""

    r: int
    w: int
    spare_r: int
    spare_w: int
    acked: list[bytes] = field(default_factory=list)
    drained: bytearray = field(default_factory=bytearray)


@dataclass
class Example:
    """What one example created, and what went wrong."""

    root: Path
    counter: itertools.count[int] = field(default_factory=itertools.count)
    acked: dict[Path, list[bytes]] = field(default_factory=dict)
    pipes: list[Pipe] = field(default_factory=list)
    children: list[int] = field(default_factory=list)
    reaped: set[int] = field(default_factory=set)
    failures: list[str] = field(default_factory=list)

    def chunk(self, tag: str) -> bytes:
        """Bytes found nowhere else in the example."""
        head = f"<{tag}:{next(self.counter)}>".encode()
        return (head * (CHUNK // len(head) + 1))[:CHUNK]


async def close_shielded(*fds: int) -> None:
    with anyio.CancelScope(shield=True):
        for fd in fds:
            await aos.close(fd)


async def spawn_sleeper() -> int:
    return await aos.posix_spawn(sys.executable, [sys.executable, "-c", SLEEPER], dict(os.environ))


@contextlib.asynccontextmanager
async def closing_iter(it: Any) -> AsyncIterator[Any]:
    """``aclose`` an async iterator that has one, as a caller leaving early should."""
    try:
        yield it
    finally:
        if hasattr(it, "aclose"):
            with anyio.CancelScope(shield=True):
                await it.aclose()


# One coroutine per kind of call. Each cleans up what it received, under a shield.


async def op_open(ex: Example) -> None:
    fd = await aos.open(ex.root / "data", os.O_RDWR | os.O_CREAT, 0o600)
    await close_shielded(fd)


async def op_read(ex: Example) -> None:
    fd = await aos.open(ex.root / "data", os.O_RDONLY)
    try:
        while await aos.read(fd, CHUNK):
            pass
    finally:
        await close_shielded(fd)


async def op_write(ex: Example) -> None:
    path = ex.root / f"written-{next(ex.counter)}"
    acked = ex.acked.setdefault(path, [])
    fd = await aos.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        for _ in range(16):
            data = ex.chunk(path.name)
            written = await aos.write(fd, data)
            acked.append(data[:written])
    finally:
        await close_shielded(fd)


async def op_scandir(ex: Example) -> None:
    async with aos.scandir(ex.root / "tree") as it:
        async for entry in it:
            entry.name  # noqa: B018


async def op_walk(ex: Example) -> None:
    async with closing_iter(aos.walk(ex.root / "tree")) as it:
        async for _ in it:
            pass


async def op_fwalk(ex: Example) -> None:
    async with closing_iter(aos.fwalk(ex.root / "tree")) as it:
        async for _, _, _, dirfd in it:
            await aos.fstat(dirfd)


async def op_spawn(ex: Example) -> None:
    pid = await spawn_sleeper()
    ex.children.append(pid)


async def op_waitid(ex: Example) -> None:
    with anyio.CancelScope(shield=True):
        pid = await spawn_sleeper()
    ex.children.append(pid)
    result = await aos.waitid(os.P_PID, pid, os.WEXITED)
    ex.reaped.add(pid)
    ex.failures.append(f"waitid returned for a sleeping child: {result}")


async def new_pipe(ex: Example) -> Pipe:
    r, w = await aos.pipe()
    with anyio.CancelScope(shield=True):
        pipe = Pipe(r, w, await aos.dup(r), await aos.dup(w))
    ex.pipes.append(pipe)
    return pipe


async def op_pipe_read(ex: Example) -> None:
    pipe = await new_pipe(ex)
    data = await aos.read(pipe.r, 100)  # nobody writes: only the cancel ends this
    ex.failures.append(f"read of an empty pipe returned {data!r}")


async def op_pipe_write(ex: Example) -> None:
    pipe = await new_pipe(ex)
    for _ in range(40):  # nobody reads: the writes block once the pipe buffer is full
        data = ex.chunk("pipe")
        written = await aos.write(pipe.w, data)
        pipe.acked.append(data[:written])


OPS: dict[str, Callable[[Example], Awaitable[None]]] = {
    "open": op_open,
    "read": op_read,
    "write": op_write,
    "scandir": op_scandir,
    "walk": op_walk,
    "fwalk": op_fwalk,
    "posix_spawn": op_spawn,
    "waitid": op_waitid,
    "pipe_read": op_pipe_read,
    "pipe_write": op_pipe_write,
}

cancel_points = st.one_of(
    st.just(("before", 0.0)),
    st.tuples(st.just("checkpoints"), st.integers(0, 40).map(float)),
    st.tuples(st.just("seconds"), st.floats(0, 0.02)),
)
steps = st.lists(st.tuples(st.sampled_from(sorted(OPS)), cancel_points), min_size=1, max_size=6)


async def cancel_at(scope: anyio.CancelScope, kind: str, value: float) -> None:
    if kind == "checkpoints":
        for _ in range(int(value)):
            await anyio.lowlevel.checkpoint()
    elif kind == "seconds":
        await anyio.sleep(value)
    scope.cancel()


async def run_step(ex: Example, name: str, kind: str, value: float) -> None:
    async with anyio.create_task_group() as tg:
        with anyio.CancelScope() as scope:
            if kind == "before":
                scope.cancel()
            else:
                tg.start_soon(cancel_at, scope, kind, value)
            await OPS[name](ex)


async def watchdog(ex: Example, running: list[str]) -> None:
    """Unstick calls that outlived their cancel by ``HANG`` seconds, and fail the example."""
    await anyio.sleep(HANG)
    ex.failures.append(f"calls still running {HANG} s after their cancel: {running}")
    for pid in ex.children:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    for pipe in ex.pipes:
        os.set_blocking(pipe.spare_w, False)
        os.set_blocking(pipe.spare_r, False)
        with contextlib.suppress(BlockingIOError):
            await anyio.to_thread.run_sync(os.write, pipe.spare_w, b"!")
        with contextlib.suppress(BlockingIOError):
            while True:
                pipe.drained += await anyio.to_thread.run_sync(os.read, pipe.spare_r, 65536)


async def run_example(ex: Example, plan: list[tuple[str, tuple[str, float]]]) -> None:
    running = [name for name, _ in plan]
    async with anyio.create_task_group() as outer:
        outer.start_soon(watchdog, ex, running)
        async with anyio.create_task_group() as tg:
            for name, (kind, value) in plan:
                tg.start_soon(run_step, ex, name, kind, value)
        outer.cancel_scope.cancel()
    with anyio.CancelScope(shield=True):
        await reap_children(ex)
        for pipe in ex.pipes:
            await drain_and_close(pipe)


async def reap_children(ex: Example) -> None:
    for pid in ex.children:
        if pid in ex.reaped:
            continue
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        try:
            _, status = await aos.waitpid(pid, 0)
        except ChildProcessError:
            ex.failures.append(f"the status of child {pid} was reaped by someone else")
            continue
        if os.waitstatus_to_exitcode(status) != -signal.SIGKILL:
            ex.failures.append(f"child {pid} ended with status {status}, not by our SIGKILL")


async def drain_and_close(pipe: Pipe) -> None:
    await aos.close(pipe.w)
    await aos.close(pipe.spare_w)
    while data := await aos.read(pipe.r, 65536):
        pipe.drained += data
    await aos.close(pipe.r)
    await aos.close(pipe.spare_r)


def missing_acked(content: bytes, acked: list[bytes]) -> list[bytes]:
    """The acknowledged chunks not found, in order, in ``content``."""
    missing, pos = [], 0
    for data in acked:
        found = content.find(data, pos)
        if found < 0:
            missing.append(data[:24])
        else:
            pos = found + len(data)
    return missing


@pytest.fixture
def fuzz_root(tmp_path: Path) -> Path:
    """A data file and a small tree (4 directories, 12 files) to read, scan and walk."""
    (tmp_path / "data").write_bytes(os.urandom(8 * CHUNK))
    for d in ("tree", "tree/a", "tree/a/b", "tree/c"):
        (tmp_path / d).mkdir()
        for i in range(3):
            (tmp_path / d / f"f{i}").write_text(d)
    return tmp_path


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    phases=[Phase.explicit, Phase.generate],  # no shrinking: a failure shows its first example
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(plan=steps)
def test_cancelled_calls_leave_nothing_behind(
    anyio_backend: tuple[str, dict[str, Any]],
    fuzz_root: Path,
    plan: list[tuple[str, tuple[str, float]]],
) -> None:
    before = Resources.now()
    ex = Example(fuzz_root)
    try:
        run_on(anyio_backend, lambda: run_example(ex, plan))
    finally:
        leaks = leaks_after(before, idle_threads=16 + len(plan))
    assert not ex.failures, ex.failures
    assert not leaks, leaks
    for path, acked in ex.acked.items():
        lost = missing_acked(path.read_bytes() if path.exists() else b"", acked)
        assert not lost, f"acknowledged writes missing from {path.name}: {lost}"
    for pipe in ex.pipes:
        lost = missing_acked(bytes(pipe.drained), pipe.acked)
        assert not lost, f"acknowledged writes missing from a pipe: {lost}"
