"""``splice`` and ``sendfile`` with pipes and sockets: the call runs in the wait lane, never
holding a worker that filesystem calls need, and answers as ``os`` does."""

from __future__ import annotations

import contextlib
import os
import socket
import struct
from pathlib import Path
from typing import TypeVar

import anyio
import pytest

import aos
from tests.aio._helpers import DEADLOCK, answered_while_it_waits, error_facts, off_loop, os_error

pytestmark = [
    pytest.mark.anyio,
    pytest.mark.skipif(not hasattr(os, "splice"), reason="os.splice is Linux 3.10+ only"),
]

DATA = bytes(range(256)) * 400  # 100 KiB

T = TypeVar("T")


async def test_a_splice_from_an_empty_pipe_holds_no_filesystem_worker(
    tmp_path: Path, pipe: tuple[int, int], one_worker: None
) -> None:
    r, w = pipe
    out = await aos.open(tmp_path / "out", os.O_WRONLY | os.O_CREAT)
    try:
        moved = await answered_while_it_waits(
            lambda: aos.splice(r, out, 10), lambda: os.write(w, b"!")
        )
        assert moved == 1
        assert (await aos.fstat(out)).st_size == 1
    finally:
        await aos.close(out)


def _drain(sock: socket.socket) -> int:
    """Bytes read from ``sock`` until nothing more comes for 0.2 s."""
    sock.settimeout(0.2)
    total = 0
    with contextlib.suppress(TimeoutError):
        while chunk := sock.recv(1 << 20):
            total += len(chunk)
    return total


async def test_a_sendfile_to_a_full_socket_holds_no_filesystem_worker(
    tmp_path: Path, one_worker: None
) -> None:
    await off_loop((tmp_path / "in").write_bytes, DATA)
    ours, peer = socket.socketpair()
    source = await aos.open(tmp_path / "in", os.O_RDONLY)
    received = 0

    def take_some() -> None:
        nonlocal received
        received += _drain(peer)

    try:
        ours.setblocking(False)
        filled = 0
        with contextlib.suppress(BlockingIOError):
            while True:  # until its buffer is full
                filled += ours.send(DATA)
        ours.setblocking(True)
        sent = await answered_while_it_waits(
            lambda: aos.sendfile(ours.fileno(), source, 0, len(DATA)), take_some
        )
        await off_loop(take_some)
        assert sent == len(DATA)
        assert received == filled + len(DATA)
    finally:
        await aos.close(source)
        ours.close()
        peer.close()


async def test_where_the_kernel_does_not_wait_for_readiness_the_answers_are_those_of_os(
    tmp_path: Path,
) -> None:
    """What ``epoll`` reports is not what these calls wait for: a listening socket fails at
    once, a FIFO that never had a writer reads as its end, a socket's ``SO_RCVTIMEO`` ends the
    wait with ``EAGAIN``. aos gives ``os``'s answer, at once (a deadline bounds a hang)."""
    out = await aos.open(tmp_path / "out", os.O_WRONLY | os.O_CREAT)
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    ours, peer = socket.socketpair()
    ours.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, struct.pack("ll", 0, 100_000))
    await aos.mkfifo(tmp_path / "fifo")
    fifo = await aos.open(tmp_path / "fifo", os.O_RDONLY | os.O_NONBLOCK)
    os.set_blocking(fifo, True)
    try:
        for args in [(listener.fileno(), out, 10), (ours.fileno(), out, 10)]:
            expected = await os_error(os.splice, *args)
            with pytest.raises(expected[0]) as raised, anyio.fail_after(DEADLOCK):
                await aos.splice(*args)
            assert (type(raised.value), error_facts(raised.value)) == expected
        with anyio.fail_after(DEADLOCK):
            assert await aos.splice(fifo, out, 10) == await off_loop(os.splice, fifo, out, 10)
    finally:
        for fd in (out, fifo):
            await aos.close(fd)
        for sock in (listener, ours, peer):
            sock.close()


async def test_splice_and_sendfile_move_what_os_moves(
    tmp_path: Path, pipe: tuple[int, int]
) -> None:
    r, w = pipe
    await off_loop((tmp_path / "in").write_bytes, DATA)
    source = await aos.open(tmp_path / "in", os.O_RDONLY)
    out = await aos.open(tmp_path / "out", os.O_WRONLY | os.O_CREAT)
    ours, peer = socket.socketpair()
    try:
        assert await aos.splice(source, w, 4096, offset_src=100) == 4096  # file to pipe
        assert await aos.splice(r, out, len(DATA)) == 4096  # pipe to file: what is there
        assert await off_loop((tmp_path / "out").read_bytes) == DATA[100:4196]
        assert await aos.sendfile(ours.fileno(), source, 7, 1000) == 1000  # file to socket
        assert await off_loop(peer.recv, 2000) == DATA[7:1007]
    finally:
        await aos.close(source)
        await aos.close(out)
        ours.close()
        peer.close()


async def test_where_os_would_not_wait_the_errors_are_those_of_os(
    tmp_path: Path, pipe: tuple[int, int]
) -> None:
    """An empty pipe under ``SPLICE_F_NONBLOCK``, or ``O_NONBLOCK``: ``EAGAIN`` at once, as
    ``os`` raises it; bad fds and arguments: ``os``'s own errors."""
    r, _ = pipe
    out = await aos.open(tmp_path / "out", os.O_WRONLY | os.O_CREAT)
    try:
        cases: list[tuple[tuple[object, ...], dict[str, object]]] = [
            ((r, out, 10), {"flags": os.SPLICE_F_NONBLOCK}),
            ((r, out, 10, None, None, os.SPLICE_F_NONBLOCK), {}),
            ((-1, out, 10), {}),
            ((r, -1, 10), {}),
        ]
        for args, kwargs in cases:
            expected = await os_error(os.splice, *args, **kwargs)
            with pytest.raises(expected[0]) as raised, anyio.fail_after(DEADLOCK):
                await aos.splice(*args, **kwargs)  # type: ignore[arg-type]
            assert (type(raised.value), error_facts(raised.value)) == expected
        os.set_blocking(r, False)
        expected = await os_error(os.splice, r, out, 10)
        with pytest.raises(BlockingIOError) as raised:
            await aos.splice(r, out, 10)
        assert (type(raised.value), error_facts(raised.value)) == expected
        with pytest.raises(TypeError):
            await aos.splice("r", out, 10)  # type: ignore[arg-type]
        with pytest.raises(TypeError):
            await aos.sendfile(out, r)  # type: ignore[call-arg]
    finally:
        await aos.close(out)
