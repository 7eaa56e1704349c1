"""Calls that may wait for another party (a FIFO's other end, a lock, an eventfd's counter) hold
no worker that filesystem calls need, and give what ``os`` gives. (``splice`` and ``sendfile``:
``test_transfer.py``.)"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest

import aos
from aos._async._may_wait import open_waits
from tests.aio._helpers import DEADLOCK, answered_while_it_waits, error_facts, off_loop, os_error

pytestmark = pytest.mark.anyio

EVENTFD_MAX = 0xFFFFFFFFFFFFFFFE  # the largest value an eventfd's counter holds


@pytest.fixture
def fifo(tmp_path: Path) -> Path:
    path = tmp_path / "fifo"
    os.mkfifo(path)
    return path


@pytest.fixture
def eventfd() -> Iterator[int]:
    """A blocking eventfd whose counter is 0, closed after the test."""
    fd = os.eventfd(0)
    yield fd
    os.close(fd)


async def entries_of(path: Path) -> tuple[object, object]:
    """``path``'s entry in ``aos.scandir`` and in ``os.scandir`` (path-likes both)."""
    ours = [entry async for entry in aos.scandir(path.parent) if entry.name == path.name]
    theirs = await off_loop(lambda: [e for e in os.scandir(path.parent) if e.name == path.name])
    return ours[0], theirs[0]


@pytest.mark.parametrize(
    ("flags", "other_end", "given_as"),
    [
        (os.O_RDONLY, os.O_WRONLY, "str"),
        (os.O_WRONLY, os.O_RDONLY, "Path"),
        (os.O_RDONLY, os.O_WRONLY, "bytes"),
        (os.O_RDONLY, os.O_WRONLY, "aos.DirEntry"),
        (os.O_RDONLY, os.O_WRONLY, "os.DirEntry"),
        (os.O_RDWR | os.O_CLOEXEC, None, "str"),
    ],
    ids=["reader", "writer", "bytes", "aos.DirEntry", "os.DirEntry", "both-ends"],
)
async def test_an_open_of_a_fifo_holds_no_filesystem_worker(
    fifo: Path, flags: int, other_end: int | None, given_as: str, one_worker: None
) -> None:
    ours, theirs = await entries_of(fifo)
    path: Any = {
        "str": str(fifo),
        "Path": fifo,
        "bytes": os.fsencode(fifo),
        "aos.DirEntry": ours,
        "os.DirEntry": theirs,
    }[given_as]
    others: list[int] = []

    def open_other_end() -> None:
        assert other_end is not None
        others.append(opened_once_the_other_end_is_there(fifo, other_end))

    try:
        if other_end is None:  # O_RDWR never waits on Linux: it is the reader it waits for
            fd = await aos.open(path, flags)
        else:
            fd = await answered_while_it_waits(lambda: aos.open(path, flags), open_other_end)
        try:
            opened, named = await aos.fstat(fd), await aos.stat(fifo)
            assert (opened.st_dev, opened.st_ino) == (named.st_dev, named.st_ino)
            assert os.get_inheritable(fd) is False
            assert os.get_blocking(fd)
        finally:
            os.close(fd)
    finally:
        for other in others:
            os.close(other)


def opened_once_the_other_end_is_there(fifo: Path, flags: int) -> int:
    """``fifo`` opened with ``flags`` and ``O_NONBLOCK``; a writer is tried again until a reader
    has come (``ENXIO`` till then: the waiting reader's open may not have begun yet)."""
    deadline = time.monotonic() + DEADLOCK
    while True:
        try:
            return os.open(fifo, flags | os.O_NONBLOCK)
        except OSError as error:
            if error.errno != errno.ENXIO or time.monotonic() > deadline:
                raise
        time.sleep(0.001)


@pytest.mark.parametrize(
    "flags",
    [
        os.O_WRONLY | os.O_NONBLOCK,  # ENXIO: no reader
        os.O_RDONLY | os.O_NOFOLLOW,  # through a symlink: ELOOP
        os.O_RDONLY | os.O_DIRECTORY,  # ENOTDIR
        os.O_WRONLY | os.O_CREAT | os.O_EXCL,  # EEXIST
    ],
    ids=["ENXIO", "ELOOP", "ENOTDIR", "EEXIST"],
)
async def test_a_fifo_open_that_os_refuses_is_refused_alike(
    fifo: Path, tmp_path: Path, flags: int
) -> None:
    link = tmp_path / "link"
    await aos.symlink(fifo, link)
    expected = await os_error(os.open, link, flags)
    with pytest.raises(expected[0]) as raised:
        await aos.open(link, flags)
    assert (type(raised.value), error_facts(raised.value)) == expected


async def test_a_reader_of_a_fifo_opened_without_waiting_reads_what_is_written(
    fifo: Path,
) -> None:
    fd = await aos.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    try:
        writer = await aos.open(fifo, os.O_WRONLY)  # there is a reader: it does not wait
        await aos.write(writer, b"through")
        await aos.close(writer)
        assert await aos.read(fd, 100) == b"through"
    finally:
        await aos.close(fd)


async def test_a_memory_device_opens_as_os_opens_it() -> None:
    fd = await aos.open("/dev/null", os.O_RDWR)
    try:
        assert await aos.write(fd, b"gone") == 4
        assert await aos.read(fd, 10) == b""
    finally:
        await aos.close(fd)


@pytest.fixture
def pty_end() -> Iterator[str]:
    """The path of a pty's terminal end (``/dev/pts/N``), open while the test runs."""
    main_end, terminal_end = os.openpty()
    yield os.ttyname(terminal_end)
    os.close(main_end)
    os.close(terminal_end)


def test_only_opens_that_may_wait_for_good_go_to_the_wait_lane(
    fifo: Path, tmp_path: Path, pty_end: str
) -> None:
    waits = {
        (str(fifo), os.O_RDONLY): True,
        (str(fifo), os.O_WRONLY): True,
        (str(fifo), os.O_RDWR): False,  # it is the other end a FIFO's open waits for
        (str(fifo), os.O_RDONLY | os.O_NONBLOCK): False,
        ("/dev/null", os.O_RDWR): False,
        ("/dev/ptmx", os.O_RDWR): False,
        (pty_end, os.O_RDWR): False,
        (str(tmp_path), os.O_RDONLY): False,
    }
    serial_line = tmp_path / "ttyS0"
    with contextlib.suppress(PermissionError):  # (only root makes device nodes)
        os.mknod(serial_line, 0o600 | stat.S_IFCHR, os.makedev(4, 64))
        waits[str(serial_line), os.O_RDWR] = True  # it may wait for its carrier
    assert {case: open_waits(*case) for case in waits} == waits


@contextlib.asynccontextmanager
async def locked_by_another_process(
    path: Path, length: int = 0
) -> AsyncIterator[subprocess.Popen[bytes]]:
    """A child that holds a ``lockf`` lock on ``length`` bytes of ``path`` (0: all of it) until
    its stdin closes (POSIX record locks belong to a process: this one cannot wait on its own)."""

    def start() -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [
                sys.executable,
                "-c",
                "import os, sys\n"
                f"fd = os.open({str(path)!r}, os.O_RDWR)\n"
                f"os.lockf(fd, os.F_LOCK, {length})\n"
                "print('locked', flush=True)\n"
                "sys.stdin.read()\n",
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )

    holder = await off_loop(start)
    try:
        yield holder
    finally:
        holder.kill()
        await off_loop(holder.wait)
        assert holder.stdin is not None
        assert holder.stdout is not None
        holder.stdin.close()
        holder.stdout.close()


async def test_lockf_waiting_for_a_lock_holds_no_filesystem_worker(
    tmp_path: Path, one_worker: None
) -> None:
    path = tmp_path / "locked"
    await off_loop(path.write_bytes, b"")
    fd = await aos.open(path, os.O_RDWR)
    try:
        async with locked_by_another_process(path) as holder:
            assert holder.stdout is not None
            assert holder.stdin is not None
            assert await off_loop(holder.stdout.readline) == b"locked\n"
            stdin = holder.stdin
            await answered_while_it_waits(lambda: aos.lockf(fd, os.F_LOCK, 0), stdin.close)
            # Ours now: a test for the lock from another process would fail.
            tester = await anyio.run_process(
                [
                    sys.executable,
                    "-c",
                    f"import os; os.lockf(os.open({str(path)!r}, os.O_RDWR), os.F_TEST, 0)",
                ],
                check=False,
            )
            assert tester.returncode != 0
            assert b"PermissionError" in tester.stderr or b"BlockingIOError" in tester.stderr
    finally:
        await aos.close(fd)


def our_locks_on(fd: int) -> tuple[list[bytes], list[bytes]]:
    """This process's POSIX locks on ``fd``'s file, and its waits for one (``/proc/locks``)."""
    found = os.fstat(fd)
    file = f"{os.major(found.st_dev):02x}:{os.minor(found.st_dev):02x}:{found.st_ino}".encode()
    with open("/proc/locks", "rb") as locks:
        ours = [line for line in locks if str(os.getpid()).encode() in line.split()]
    ours = [line for line in ours if file in line.split()]
    return [line for line in ours if b"->" not in line], [line for line in ours if b"->" in line]


@pytest.mark.parametrize("held_before", [False, True], ids=["none-held", "one-held"])
async def test_a_cancelled_lockf_leaves_the_lock_as_it_found_it(
    tmp_path: Path, held_before: bool
) -> None:
    """A cancel lands while ``F_LOCK`` waits for another process's lock: the call runs on, takes
    the lock, and gives it back, so the caller holds no lock it does not know of. Where the
    process held a lock on the file already, the new one merged with it: it stays, and the call
    returns (the cancel lands at the next checkpoint), as a call with effects does."""
    path = tmp_path / "locked"
    returned = False
    await off_loop(path.write_bytes, b"0123456789")
    fd = await aos.open(path, os.O_RDWR)
    try:
        if held_before:
            await aos.lseek(fd, 8, os.SEEK_SET)
            await aos.lockf(fd, os.F_TLOCK, 2)  # bytes 8-9: the other process locks 0-7
        await aos.lseek(fd, 0, os.SEEK_SET)
        async with locked_by_another_process(path, length=8) as holder:
            assert holder.stdout is not None
            assert holder.stdin is not None
            assert await off_loop(holder.stdout.readline) == b"locked\n"
            with anyio.CancelScope() as scope:
                async with anyio.create_task_group() as tg:

                    async def cancel_once_it_waits() -> None:
                        while not (await off_loop(our_locks_on, fd))[1]:  # noqa: ASYNC110
                            await anyio.sleep(0.001)  # (the kernel's list, not an event)
                        scope.cancel()
                        with anyio.CancelScope(shield=True):  # (then the lock is free)
                            await off_loop(holder.stdin.close)  # type: ignore[union-attr]

                    tg.start_soon(cancel_once_it_waits)
                    await aos.lockf(fd, os.F_LOCK, 8)
                    returned = True  # (a lock held is the caller's: it is told so)
                    await anyio.lowlevel.checkpoint()
            assert scope.cancelled_caught
            assert returned is held_before
            held, waiting = await off_loop(our_locks_on, fd)
            assert not waiting
            assert len(held) == (1 if held_before else 0), held
    finally:
        await aos.close(fd)


async def test_eventfd_write_to_a_full_counter_holds_no_filesystem_worker(
    eventfd: int, one_worker: None
) -> None:
    os.eventfd_write(eventfd, EVENTFD_MAX - 1)
    await answered_while_it_waits(
        lambda: aos.eventfd_write(eventfd, 5), lambda: os.eventfd_read(eventfd)
    )
    assert os.eventfd_read(eventfd) == 5


async def test_eventfd_read_waits_on_the_loop(eventfd: int, one_worker: None) -> None:
    assert (
        await answered_while_it_waits(
            lambda: aos.eventfd_read(eventfd), lambda: os.eventfd_write(eventfd, 7)
        )
        == 7
    )


async def test_a_cancelled_eventfd_read_takes_nothing_from_the_counter(eventfd: int) -> None:
    with anyio.move_on_after(0.05) as scope:
        await aos.eventfd_read(eventfd)
    assert scope.cancelled_caught
    os.eventfd_write(eventfd, 5)
    await anyio.sleep(0.05)  # time for a read that went on after its caller left
    os.set_blocking(eventfd, False)
    assert os.eventfd_read(eventfd) == 5


async def test_eventfd_read_of_a_nonblocking_eventfd_answers_at_once_as_os() -> None:
    fd = os.eventfd(0, os.EFD_NONBLOCK)
    try:
        expected = await os_error(os.eventfd_read, fd)
        with pytest.raises(BlockingIOError) as raised:
            await aos.eventfd_read(fd)
        assert (type(raised.value), error_facts(raised.value)) == expected
        os.eventfd_write(fd, 3)
        assert await aos.eventfd_read(fd) == 3
    finally:
        os.close(fd)


@pytest.mark.parametrize("initial", [0, 1, 42])
async def test_eventfd_read_gives_what_os_gives(initial: int) -> None:
    fd = os.eventfd(initial, os.EFD_SEMAPHORE)
    try:
        os.eventfd_write(fd, 2)
        assert await aos.eventfd_read(fd) == 1  # a semaphore takes one at a time
        assert await aos.eventfd_read(fd=fd) == 1
    finally:
        os.close(fd)


async def test_eventfd_read_of_another_fd_reads_as_os_does(tmp_path: Path) -> None:
    path = tmp_path / "eight"
    await off_loop(path.write_bytes, (1234).to_bytes(8, sys.byteorder) * 2)
    fd = await aos.open(path, os.O_RDONLY)
    try:
        assert await aos.eventfd_read(fd) == 1234
        closed = os.dup(fd)
        os.close(closed)
        expected = await os_error(os.eventfd_read, closed)
        with pytest.raises(expected[0]) as raised:
            await aos.eventfd_read(closed)
        assert (type(raised.value), error_facts(raised.value)) == expected
        with pytest.raises(ValueError, match="negative") as refused:
            os.eventfd_read(-1)
        with pytest.raises(ValueError, match="negative") as raised_too:
            await aos.eventfd_read(-1)
        assert str(raised_too.value) == str(refused.value)
    finally:
        await aos.close(fd)
