"""``read``/``write``/``readv``/``writev``: readiness on the loop for pipes, sockets and ttys.

Pipes are made both blocking and ``O_NONBLOCK``; the fd's flag must be the same afterwards.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import os
import pty
import select
import socket
import struct
import sys
import tempfile
import tracemalloc
import tty
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import anyio
import anyio.lowlevel
import pytest

import aos
from aos._async._offload import QUERY, call
from tests.aio._helpers import (
    fill_pipe,
    native_cancel,
    off_loop,
    run_child,
    unstuck_after_a_while,
)

pytestmark = pytest.mark.anyio

BIG = 1 << 20  # far more than a pipe holds


@pytest.fixture(params=[True, False], ids=["blocking", "nonblocking"])
def pipe(request: pytest.FixtureRequest) -> Iterator[tuple[int, int]]:
    r, w = os.pipe()
    os.set_blocking(r, request.param)
    os.set_blocking(w, request.param)
    yield r, w
    for fd in (r, w):
        try:
            os.close(fd)
        except OSError:
            pass


async def test_read_waits_for_data_without_blocking_the_loop(pipe: tuple[int, int]) -> None:
    r, w = pipe
    blocking = os.get_blocking(r)

    async def later() -> None:
        await anyio.sleep(0.05)
        assert await aos.write(w, b"hello") == 5

    async with anyio.create_task_group() as tg:
        tg.start_soon(later)
        assert await aos.read(r, 100) == b"hello"
    assert os.get_blocking(r) is blocking
    os.close(w)
    assert await aos.read(r, 100) == b""  # end of file


async def test_big_write_is_whole_and_read_back_in_order(pipe: tuple[int, int]) -> None:
    r, w = pipe
    data = bytes(range(256)) * (BIG // 256)
    received = bytearray()

    async def reader() -> None:
        while chunk := await aos.read(r, 65536):
            received.extend(chunk)

    async with anyio.create_task_group() as tg:
        tg.start_soon(reader)
        total = 0
        while total < len(data):  # a non-blocking fd may take less, as os.write does
            n = await aos.write(w, memoryview(data)[total:])
            assert n > 0
            if os.get_blocking(w):
                assert n == len(data)
            total += n
        os.close(w)
    assert received == data


async def test_readv_and_writev(pipe: tuple[int, int]) -> None:
    r, w = pipe
    assert await aos.writev(w, [b"ab", bytearray(b"cd"), memoryview(b"ef")]) == 6
    first, second = bytearray(4), bytearray(4)
    assert await aos.readv(r, [first, second]) == 6
    assert (first, second[:2]) == (bytearray(b"abcd"), bytearray(b"ef"))
    big = [b"x" * 100_000, b"y" * 100_000]
    received = bytearray()

    async def reader() -> None:
        buffer = bytearray(70_000)
        while n := await aos.readv(r, [buffer]):
            received.extend(buffer[:n])

    async with anyio.create_task_group() as tg:
        tg.start_soon(reader)
        total = 0
        while total < 200_000:
            rest = b"".join(big)[total:]
            total += await aos.writev(w, [rest[:50_000], rest[50_000:]])
        os.close(w)
    assert received == b"".join(big)


async def test_cancelled_read_takes_nothing(pipe: tuple[int, int]) -> None:
    r, w = pipe
    with anyio.move_on_after(0.05) as scope:
        await aos.read(r, 10)
    assert scope.cancelled_caught
    await aos.write(w, b"data")
    assert await aos.read(r, 10) == b"data"


async def test_cancelled_write_to_a_full_pipe_writes_nothing(pipe: tuple[int, int]) -> None:
    r, w = pipe
    size = await fill_pipe(w)
    with anyio.move_on_after(0.05) as scope:
        await aos.write(w, b"more")
    assert scope.cancelled_caught
    got = 0
    while got < size:
        got += len(await aos.read(r, 65536))
    assert got == size
    os.close(w)
    assert await aos.read(r, 10) == b""  # nothing of the cancelled write


async def test_every_call_is_a_checkpoint_even_when_the_fd_is_ready(
    pipe: tuple[int, int],
) -> None:
    """A call on a ready fd is still a cancel point (and so a scheduling point), before it
    reads or writes anything: a task looping on a ready fd can be cancelled and lets others run."""
    r, w = pipe
    calls: list[Callable[[], Awaitable[object]]] = [
        lambda: aos.write(w, b"ab"),
        lambda: aos.writev(w, [b"c", b"d"]),
        lambda: aos.read(r, 2),
        lambda: aos.readv(r, [bytearray(2)]),
    ]
    assert await aos.write(w, b"data") == 4  # ready to read and to write
    for call_ in calls:
        with anyio.CancelScope() as scope:
            scope.cancel()
            await call_()
        assert scope.cancelled_caught, call_
    assert await aos.read(r, 10) == b"data"  # nothing read or written by the cancelled calls


async def test_a_kernel_object_fd_waits_on_the_loop_and_is_cancelled_at_once() -> None:
    """An eventfd (as timerfd, signalfd, inotify) blocks a read until it has data: the loop
    waits for it, so a cancel lands at once instead of waiting for data on a worker."""
    efd = os.eventfd(0)
    try:
        with anyio.fail_after(5), anyio.move_on_after(0.05) as scope:
            await aos.read(efd, 8)
        assert scope.cancelled_caught
        os.eventfd_write(efd, 3)
        assert await aos.read(efd, 8) == (3).to_bytes(8, sys.byteorder)
    finally:
        os.close(efd)


async def test_an_empty_write_to_a_socket_is_made_as_os_makes_it() -> None:
    """``write`` sends a zero-length datagram (``writev`` does not: the kernel returns before
    the socket) and, to an unconnected stream socket, says EPIPE."""
    for name in ("write", "writev"):
        data: Any = b"" if name == "write" else [b"", b""]
        arrived: list[bytes | None] = []
        for fn in (getattr(os, name), getattr(aos, name)):
            a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
            with a, b:
                if fn is getattr(os, name):
                    result = await call(QUERY, None, fn, a.fileno(), data)  # off the loop
                else:
                    result = await fn(a.fileno(), data)
                assert result == 0
                b.setblocking(False)
                try:
                    arrived.append(b.recv(10))
                except BlockingIOError:
                    arrived.append(None)
        assert arrived[0] == arrived[1], name
    with socket.socket() as unconnected:
        expected = await _os_error(os.write, unconnected.fileno(), b"")
        with pytest.raises(BrokenPipeError) as info:
            await aos.write(unconnected.fileno(), b"")
        assert info.value.args == expected.args


async def test_a_write_that_has_begun_completes_whatever_cancels_it() -> None:
    """On asyncio a native ``task.cancel()`` gets through anyio's shield: the write goes on all
    the same and raises the cancel after its last byte; an anyio cancel (every loop) lets it
    finish and lands at the next checkpoint."""
    r, w = os.pipe()  # blocking: os.write writes everything
    data = bytes(range(256)) * (BIG // 256)
    received = bytearray()
    outcome: list[object] = []

    async def writer(task_status: Any) -> None:
        with anyio.CancelScope() as scope:
            task_status.started(native_cancel(scope))
            try:
                outcome.append(await aos.write(w, data))
            except anyio.get_cancelled_exc_class():  # (kept from the task group: the reads go on)
                outcome.append("cancelled")

    try:
        async with anyio.create_task_group() as tg:
            cancel = await tg.start(writer)
            while select.select([], [w], [], 0)[1]:  # noqa: ASYNC110 - until the pipe is full
                await anyio.sleep(0.001)
            cancel()  # the write has begun: it waits for room, shielded
            while chunk := await aos.read(r, 65536):
                received.extend(chunk)
                if len(received) == len(data):
                    break
    finally:
        os.close(r)
        os.close(w)
    assert received == data
    assert outcome in ([len(data)], ["cancelled"])


async def test_a_named_fifo_reads_as_os_reads_it(tmp_path: Path) -> None:
    """A named FIFO refuses ``RWF_NOWAIT``, and epoll never reports one that never had a
    writer: its read gives the end at once, as ``os.read`` does; with a writer, a read waits
    for data on the loop (a cancel lands at once) and takes it; the fd's flags stay blocking."""
    fifo = tmp_path / "fifo"
    await aos.mkfifo(fifo)
    r = await aos.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    os.set_blocking(r, True)
    try:
        with anyio.fail_after(10):
            assert await aos.read(r, 10) == b"" == await call(QUERY, None, os.read, r, 10)
            assert await aos.readv(r, [bytearray(4)]) == 0
        w = await aos.open(fifo, os.O_WRONLY)
        try:
            with anyio.move_on_after(0.05) as scope:
                await aos.read(r, 10)  # a writer, nothing written: it waits
            assert scope.cancelled_caught
            await aos.write(w, b"data")
            with anyio.fail_after(10):
                assert await aos.read(r, 10) == b"data"
        finally:
            await aos.close(w)
        assert os.get_blocking(r)
    finally:
        await aos.close(r)


async def test_two_readers_on_one_pipe(pipe: tuple[int, int]) -> None:
    r, w = pipe
    got: list[bytes] = []

    async def reader() -> None:
        got.append(await aos.read(r, 1))

    async with anyio.create_task_group() as tg:
        tg.start_soon(reader)
        tg.start_soon(reader)
        await anyio.sleep(0.05)
        await aos.write(w, b"ab")
    assert sorted(got) == [b"a", b"b"]


async def test_socketpair() -> None:
    a, b = socket.socketpair()
    with a, b:
        a.setblocking(True)
        b.setblocking(False)

        async def later() -> None:
            await anyio.sleep(0.02)
            assert await aos.write(b.fileno(), b"ping") == 4

        async with anyio.create_task_group() as tg:
            tg.start_soon(later)
            assert await aos.read(a.fileno(), 10) == b"ping"
        received = bytearray()

        async def reader() -> None:
            while len(received) < 3_000_000:
                received.extend(await aos.read(b.fileno(), 1 << 20))

        async with anyio.create_task_group() as tg:
            tg.start_soon(reader)
            assert await aos.write(a.fileno(), b"x" * 3_000_000) == 3_000_000
        assert received == b"x" * 3_000_000
        assert a.getblocking()
        assert not b.getblocking()


async def test_tty() -> None:
    master, slave = pty.openpty()
    try:
        assert os.get_blocking(master)

        async def later() -> None:
            await anyio.sleep(0.02)
            assert await aos.write(slave, b"hi\n") == 3

        async with anyio.create_task_group() as tg:
            tg.start_soon(later)
            assert (await aos.read(master, 100)).strip() == b"hi"
        with anyio.move_on_after(0.05) as scope:
            await aos.read(master, 100)
        assert scope.cancelled_caught
        data = b"y" * 10_000
        received = bytearray()

        async def reader() -> None:
            while len(received) < len(data):
                received.extend((await aos.read(master, 65536)).replace(b"\r\n", b"\n"))

        async with anyio.create_task_group() as tg:
            tg.start_soon(reader)
            assert await aos.write(slave, data) == len(data)
        assert received == data
    finally:
        os.close(master)
        os.close(slave)


async def test_regular_files_and_devices_go_through_the_engine(tmp_path: Path) -> None:
    path = tmp_path / "f"
    fd = await aos.open(path, os.O_RDWR | os.O_CREAT)
    try:
        assert await aos.write(fd, b"hello world") == 11
        assert await aos.writev(fd, [b"!", b"?"]) == 2
        os.lseek(fd, 0, os.SEEK_SET)
        assert await aos.read(fd, 5) == b"hello"
        buffer = bytearray(3)
        assert await aos.readv(fd, [buffer]) == 3
        assert buffer == b" wo"
    finally:
        await aos.close(fd)
    null = await aos.open("/dev/null", os.O_RDWR)
    try:
        assert await aos.read(null, 10) == b""
        assert await aos.write(null, b"gone") == 4
    finally:
        await aos.close(null)


async def _os_error(fn: Any, *args: Any) -> BaseException:
    def run() -> BaseException:
        try:
            fn(*args)
        except BaseException as exc:
            return exc
        raise AssertionError("no error")

    return await call(QUERY, None, run)  # aos workers are daemon threads


async def test_a_length_that_is_not_an_int_waits_as_one_does(pipe: tuple[int, int]) -> None:
    """``os.read`` takes any integer-like length (a ``bool``, anything with ``__index__``): such
    a read waits on the loop too, and a cancel lands at once (it went to a worker, where the
    read blocked for good)."""
    r, w = pipe

    class Five:
        def __index__(self) -> int:
            return 5

    with anyio.move_on_after(0.05) as scope:
        await aos.read(r, Five())  # type: ignore[arg-type]
    assert scope.cancelled_caught
    await aos.write(w, b"hello world")
    assert await aos.read(r, Five()) == b"hello"  # type: ignore[arg-type]
    assert await aos.read(r, True) == b" "


async def test_a_huge_length_reads_what_is_there_without_a_buffer_of_that_size() -> None:
    """A blocking pipe's read gets a buffer the size of what is there, as ``os.read`` touches
    only that much of the ``length`` bytes it allocates: zeroing 1 GiB took seconds."""
    r, w = os.pipe()
    try:
        await aos.write(w, b"hello")
        tracemalloc.start()
        try:
            assert await aos.read(r, 1 << 30) == b"hello"
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert peak < 1 << 20
    finally:
        os.close(r)
        os.close(w)


async def test_a_datagram_that_comes_as_the_read_begins_is_read_whole(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A datagram socket's read keeps ``os``'s buffer of ``length`` bytes: one sized by what was
    there (``FIONREAD``) would cut a larger datagram that came before the read."""
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    b.setblocking(False)  # (its send cannot wait: room for one datagram)
    with a, b:
        ioctl = fcntl.ioctl
        sent: list[int] = []

        def then_a_big_datagram(*args: Any) -> Any:
            result = ioctl(*args)
            if not sent:  # (stands in for a sender in another process, between the two calls)
                sent.append(b.send(bytes(200_000)))
            return result

        monkeypatch.setattr(fcntl, "ioctl", then_a_big_datagram)
        assert len(await aos.read(a.fileno(), 1 << 20)) == 200_000


async def test_a_socket_timeout_ends_a_wait_as_it_ends_os_s_blocking_call() -> None:
    """A blocking socket's ``SO_RCVTIMEO`` and ``SO_SNDTIMEO`` end a wait as they end a blocking
    call in os: a read with nothing there raises ``EAGAIN``, a write that sent part of its bytes
    returns their count, one that sent none raises ``EAGAIN`` (all three waited for good)."""
    a, b = socket.socketpair()
    with a, b:
        twenty_ms = struct.pack("@ll", 0, 20_000)
        a.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, twenty_ms)
        a.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, twenty_ms)
        expected = await _os_error(os.read, a.fileno(), 5)
        with pytest.raises(BlockingIOError) as info:
            await aos.read(a.fileno(), 5)
        assert info.value.args == expected.args
        sent = await aos.write(a.fileno(), b"x" * BIG * 8)
        assert 0 < sent < BIG * 8
        with pytest.raises(BlockingIOError) as info:
            await aos.write(a.fileno(), b"y")  # the buffer is full
        assert info.value.args == expected.args


async def test_errors_are_those_of_os(pipe: tuple[int, int]) -> None:
    r, w = pipe
    closed_r, closed_w = os.pipe()
    os.close(closed_r)
    cases: list[tuple[str, tuple[Any, ...]]] = [
        ("read", (r, -1)),
        ("read", (r, "1")),
        ("read", (closed_r, 1)),
        ("write", (w, "text")),
        ("write", (closed_w, b"x")),  # no reader: BrokenPipeError
        ("write", (-1, b"x")),
        ("writev", (w, ["text"])),
        ("readv", (r, [b"immutable"])),
        ("readv", (closed_r, [bytearray(1)])),
        ("readv", (r, {0: bytearray(1)})),  # a dict is no sequence to os
        ("readv", (r, iter([bytearray(1)]))),  # (preadv words it as its own)
        ("readv", (r, None)),
        ("read", (r, sys.maxsize)),  # too large for a bytes object
        ("writev", (w, {0: b"x"})),
    ]
    try:
        for name, args in cases:
            expected = await _os_error(getattr(os, name), *args)
            with pytest.raises(type(expected)) as info:
                await getattr(aos, name)(*args)
            got = info.value
            assert got.args == expected.args, name
            assert getattr(got, "errno", None) == getattr(expected, "errno", None)
            assert got.__cause__ is None
    finally:
        os.close(closed_w)


def blocking_fd_holding_a_little(kind: str) -> tuple[int, Callable[[], None]]:
    """A blocking fd with a little to read (or one ``os.read`` refuses), and its closing."""
    if kind == "eventfd":
        fd = os.eventfd(3)
        return fd, lambda: os.close(fd)
    if kind == "epoll":  # os.read: EINVAL
        poller = select.epoll()
        return poller.fileno(), poller.close
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    theirs.send(b"x")

    def close() -> None:
        ours.close()
        theirs.close()

    return ours.fileno(), close


@pytest.mark.parametrize("kind", ["eventfd", "epoll", "datagram"])
async def test_a_large_read_of_a_little_gives_what_os_gives(kind: str) -> None:
    """A read of 1 GiB from an fd that holds 8 bytes, one byte or refuses to be read."""
    fd, close = await anyio.to_thread.run_sync(blocking_fd_holding_a_little, kind)
    try:
        expected = await off_loop_outcome(os.read, fd, 2**30)
    finally:
        close()
    fd, close = await anyio.to_thread.run_sync(blocking_fd_holding_a_little, kind)
    try:
        assert await outcome(aos.read, fd, 2**30) == expected
    finally:
        close()


_LIBC = ctypes.CDLL(None, use_errno=True)


def kernel_object_with_something(kind: str) -> tuple[int, Callable[[], None]]:
    """A blocking eventfd (empty or holding 3) or inotify (an event pending)."""
    if kind.startswith("eventfd"):
        fd = os.eventfd(3 if kind.endswith("3") else 0)
        return fd, lambda: os.close(fd)
    fd = _LIBC.inotify_init1(os.O_CLOEXEC)
    with tempfile.TemporaryDirectory() as watched:
        _LIBC.inotify_add_watch(fd, watched.encode(), 0x100)  # IN_CREATE
        open(os.path.join(watched, "new"), "w").close()
    return fd, lambda: os.close(fd)


@pytest.mark.parametrize("kind", ["eventfd 0", "eventfd 3", "inotify"])
async def test_a_read_of_nothing_from_a_kernel_object_is_refused_as_os_refuses_it(
    kind: str,
) -> None:
    """They refuse a read shorter than their record (EINVAL); a zero-length readv, the route
    of other blocking fds, returned b"" instead. What they hold stays there."""
    fd, close = await anyio.to_thread.run_sync(kernel_object_with_something, kind)
    try:
        expected = await off_loop_outcome(os.read, fd, 0)
        assert expected == (OSError, errno.EINVAL)
        assert await outcome(aos.read, fd, 0) == expected
        if kind == "eventfd 3":
            assert await aos.read(fd, 8) == (3).to_bytes(8, sys.byteorder)
    finally:
        close()


async def test_a_read_of_nothing_from_an_idle_inotify_waits_for_an_event() -> None:
    """os.read(inotify, 0) blocks until an event, then refuses: aos waits on the loop, and a
    cancel lands at once."""
    fd = _LIBC.inotify_init1(os.O_CLOEXEC)
    try:
        with anyio.move_on_after(0.05) as scope:
            await aos.read(fd, 0)
        assert scope.cancelled_caught
    finally:
        os.close(fd)


async def off_loop_outcome(fn: Callable[..., Any], *args: Any) -> object:
    return await anyio.to_thread.run_sync(lambda: _sync_outcome(fn, *args))


def _sync_outcome(fn: Callable[..., Any], *args: Any) -> object:
    try:
        return fn(*args)
    except OSError as error:
        return (type(error), error.errno)


async def outcome(fn: Callable[..., Awaitable[Any]], *args: Any) -> object:
    try:
        return await fn(*args)
    except OSError as error:
        return (type(error), error.errno)


LARGE_READS = """
import os, resource, socket, sys, anyio, aos
ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
async def main():
    for _ in range(4):
        theirs.send(b"x")
        assert await aos.read(ours.fileno(), 2**30) == b"x"
anyio.run(main, backend=sys.argv[1])
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024)  # MiB
"""


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_a_large_read_touches_only_what_it_reads(backend: str) -> None:
    """``os.read(fd, 2**30)`` allocates 1 GiB without touching it; aos's buffer is not zeroed
    whole either (a bytearray was: 1 GiB of memory, seconds of the loop's time, per read)."""
    assert int(run_child(LARGE_READS, backend)) < 256


async def test_two_readers_of_a_tty_woken_by_one_byte_leave_the_loop_running() -> None:
    """A tty refuses ``RWF_NOWAIT``: its read after readiness is a blocking one. Both readers
    were woken by one byte; the second then blocked the loop's thread until another came (here
    the guard's, after a while: the test fails if the guard had to write it)."""
    main_end, terminal_end = os.openpty()
    tty.setraw(terminal_end)
    got: list[bytes] = []
    guard_wrote: list[bool] = []

    def guard() -> None:
        guard_wrote.append(True)
        os.write(main_end, b"g")

    async def reader() -> None:
        got.append(await aos.read(terminal_end, 1))

    try:
        async with unstuck_after_a_while(guard), anyio.create_task_group() as tg:
            tg.start_soon(reader)
            tg.start_soon(reader)
            await anyio.wait_all_tasks_blocked()
            await off_loop(os.write, main_end, b"1")
            while not got:  # noqa: ASYNC110 (a reader's result, not an event)
                await anyio.sleep(0.001)
            await off_loop(os.write, main_end, b"2")  # (the loop ran: it is the second's)
        assert sorted(got) == [b"1", b"2"]
        assert not guard_wrote
    finally:
        os.close(main_end)
        os.close(terminal_end)
