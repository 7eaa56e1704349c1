"""Load: 10,000 concurrent calls complete; 2,000 concurrent opens under an fd limit of 256 each
succeed or get EMFILE, nothing deadlocks, and the engine serves normally afterwards."""

from __future__ import annotations

import errno
import os
import resource
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
