"""Load: 10,000 concurrent calls complete; 2,000 concurrent opens under an fd limit of 256 each
succeed or get EMFILE, nothing deadlocks, and the engine serves normally afterwards."""

from __future__ import annotations

import errno
import os
import resource
import subprocess
import sys
from pathlib import Path

import anyio
import pytest

import aos
from tests.conftest import open_fds
from tests.reliability.conftest import outcome

CALLS = 10_000
OPENS = 2_000
FD_LIMIT = 256
DEADLOCK = 60.0
"""Seconds after which a load test counts as deadlocked (it takes a few seconds at most)."""


@pytest.fixture
def a_file(tmp_path: Path) -> Path:
    path = tmp_path / "f"
    path.write_bytes(b"x")
    return path


@pytest.mark.anyio
async def test_ten_thousand_concurrent_calls_complete(a_file: Path) -> None:
    """Calls of the three policies, all in flight at once: stat (QUERY), chmod (MUTATE) and
    waitid on no child (WAIT), a third each; every one completes with the os result."""
    ino = (await anyio.to_thread.run_sync(os.stat, a_file)).st_ino
    counts = {"stat": 0, "chmod": 0, "waitid": 0}

    async def one(i: int) -> None:
        if i % 3 == 0:
            assert (await aos.stat(a_file)).st_ino == ino
            counts["stat"] += 1
        elif i % 3 == 1:
            await aos.chmod(a_file, 0o600)
            counts["chmod"] += 1
        else:
            with pytest.raises(ChildProcessError):
                await aos.waitid(os.P_ALL, 0, os.WEXITED | os.WNOHANG)
            counts["waitid"] += 1

    with anyio.fail_after(DEADLOCK):
        async with anyio.create_task_group() as tg:
            for i in range(CALLS):
                tg.start_soon(one, i)
    assert counts == {"stat": 3334, "chmod": 3333, "waitid": 3333}


@pytest.fixture
def fds_in_use() -> int:
    """How many fds the process holds before the test: the limit must leave room to open."""
    in_use = len(open_fds())
    assert in_use < FD_LIMIT // 2, f"{in_use} fds already open: too many for a limit of {FD_LIMIT}"
    return in_use


@pytest.mark.anyio
async def test_opens_beyond_the_fd_limit_get_emfile(a_file: Path, fds_in_use: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    fds: list[int] = []
    errors: list[OSError] = []

    async def one() -> None:
        try:
            fds.append(await aos.open(a_file, os.O_RDONLY))
        except OSError as error:
            errors.append(error)

    resource.setrlimit(resource.RLIMIT_NOFILE, (FD_LIMIT, hard))
    try:
        with anyio.fail_after(DEADLOCK):
            async with anyio.create_task_group() as tg:
                for _ in range(OPENS):
                    tg.start_soon(one)
            # What os itself raises at the limit, all fds of the test still held.
            reference = await anyio.to_thread.run_sync(outcome, os.open, a_file, os.O_RDONLY)
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
        with anyio.CancelScope(shield=True):
            for fd in fds:
                await aos.close(fd)
    if reference[0] == "ok":
        await anyio.to_thread.run_sync(os.close, reference[1])
        pytest.fail("os.open did not reach the limit either")

    assert len(fds) + len(errors) == OPENS
    assert 0 < len(fds) <= FD_LIMIT - fds_in_use
    assert errors, "no open got EMFILE"
    expected = reference[1]
    assert expected.errno == errno.EMFILE
    for error in errors:
        assert type(error) is type(expected)
        assert error.args == expected.args
        assert (error.errno, error.filename, str(error)) == (
            expected.errno,
            expected.filename,
            str(expected),
        )

    # The engine serves normally afterwards.
    with anyio.fail_after(DEADLOCK):
        fd = await aos.open(a_file, os.O_RDONLY)
        try:
            assert await aos.read(fd, 10) == b"x"
        finally:
            await aos.close(fd)
        assert (await aos.stat(a_file)).st_size == 1


AT_THE_LIMIT = """
import os, resource, sys, anyio, aos

async def main(place):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    held = []

    def use_every_fd():
        resource.setrlimit(resource.RLIMIT_NOFILE, (64, hard))
        try:
            while True:
                held.append(os.open("/dev/null", os.O_RDONLY))
        except OSError:
            pass

    def free_them():
        while held:
            os.close(held.pop())
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))

    use_every_fd()  # the first call opens the loop's channel (an eventfd): it cannot
    try:
        await aos.stat(place)
    except OSError as error:
        print("first call:", error.strerror)
    finally:
        free_them()
    assert (await aos.stat(place)).st_mode == os.stat(place).st_mode
    use_every_fd()  # overlapping calls that io_uring may run: the ring cannot open either
    try:
        async with anyio.create_task_group() as tg:
            for i in range(4):
                tg.start_soon(aos.mkdir, os.path.join(place, f"d{i}"))
    finally:
        free_them()
    print("made:", sorted(os.listdir(place)))

backend = sys.argv[2]
options = {"use_uvloop": True} if backend == "uvloop" else {}
anyio.run(main, sys.argv[1], backend="trio" if backend == "trio" else "asyncio",
          backend_options=options)
"""


@pytest.mark.parametrize("backend", ["asyncio", "uvloop", "trio"])
def test_at_the_fd_limit_calls_that_need_no_fd_still_work(tmp_path: Path, backend: str) -> None:
    """With every fd in use, the loop's first aos call cannot open its channel (an eventfd)
    and raises ``EMFILE``, cleanly: nothing half-made is left for the loop's end, and the next
    call works. Overlapping ``mkdir`` calls, which need no fd of their own, all succeed as
    ``os.mkdir`` does: the io_uring probe, out of fds too, leaves them to workers and is made
    again later (fresh interpreters: the suite's own probe and channels are done already)."""
    if backend != "asyncio":
        pytest.importorskip(backend)
    run = subprocess.run(
        [sys.executable, "-c", AT_THE_LIMIT, str(tmp_path), backend],
        capture_output=True,
        text=True,
        timeout=DEADLOCK,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    assert run.stderr == ""  # (a channel half made logged errors at the loop's end)
    assert run.stdout.splitlines() == [
        "first call: Too many open files",
        "made: ['d0', 'd1', 'd2', 'd3']",
    ]
