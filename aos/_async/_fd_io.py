"""``read``, ``write``, ``readv`` and ``writev``: readiness on the loop for pipes, sockets and ttys.

- Pipes, FIFOs, sockets, ttys and kernel objects (eventfd, timerfd, signalfd, inotify): the
  loop waits for readiness (no thread, a cancel lands at once) and the call is made
  non-blocking, without touching the fd's ``O_NONBLOCK`` flag, which is shared with every
  other holder of the open file: an ``O_NONBLOCK`` fd simply gets the
  plain call; a blocking fd gets ``preadv``/``pwritev`` with ``RWF_NOWAIT`` (Linux >= 5.x for
  pipes and sockets) and otherwise the call only after readiness: a read returns what is
  there, a write is cut to ``PIPE_BUF`` bytes, which a writable pipe takes without blocking.
  (Without ``RWF_NOWAIT``, as for tty reads, a reader in another process that wins the race
  between readiness and the call can make that one call wait. Named FIFOs refuse it too: they
  are read through a non-blocking open of their own, see :func:`_nonblocking_twin`.) Writes to
  a *blocking tty* go to the engine: a writable tty may have room for one byte only, and no
  per-call flag exists.
- Everything else (regular files, block devices, ``/dev/null``...) runs in the engine as
  ``MUTATE`` (the file offset moves).

What the caller sees is what ``os`` does: a read returns what is there (at most ``length``);
``EAGAIN`` is never raised, the call waits instead, unless a blocking socket's ``SO_RCVTIMEO``
or ``SO_SNDTIMEO`` passes meanwhile: then, as in ``os``, ``EAGAIN``, or a write's short count.
A read from a blocking fd gets a buffer the size of what is there, not of ``length`` (which
``os`` allocates but never touches): so where ``os`` cannot allocate ``length`` bytes
(``MemoryError``), aos reads what is there. A write to a blocking fd writes everything,
as ``os.write`` would; to an ``O_NONBLOCK`` fd it may be short, as ``os.write`` would be.
Every call is a checkpoint, before it reads or writes anything, also when the fd is ready.
Cancellation: a read, or a write that has not written a byte, is cancelled at once; a write
that has begun on a blocking fd completes first (``MUTATE``), so data never stops half-way
through. An empty write goes to the engine: ``os.write`` sends an empty datagram, which a
non-blocking ``pwritev`` would not.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import errno
import fcntl
import mmap
import operator
import os
import select
import socket
import stat
import struct
import sys
import termios
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Any, Final

import anyio

from aos import blocking
from aos._async import _completions, _engine, _readiness
from aos._async._offload import MUTATE, QUERY, call, home_in_aos
from aos._async._refusal import refusing_as

if TYPE_CHECKING:
    from _typeshed import ReadableBuffer, SupportsLenAndGetItem, WriteableBuffer

__all__ = ["read", "write", "readv", "writev"]  # noqa: RUF022 (the order of the os docs)

_NOWAIT: Final = getattr(os, "RWF_NOWAIT", 0)
_PIPE_BUF: Final = select.PIPE_BUF  # a writable pipe or tty always has room for this much
_READ_MAX: Final = sys.maxsize - sys.getsizeof(b"")  # os.read: beyond it, OverflowError
_SMALL_READ: Final = 65536  # a read buffer this small costs next to nothing to zero
_LARGE_READ: Final = 1 << 20  # from this size, a read buffer is anonymous memory (no zeroing)
_INT: Final = struct.Struct("@i")
_INT_BYTES: Final = bytes(_INT.size)
_TIMEVAL: Final = struct.Struct("@ll")  # struct timeval: seconds, microseconds
_getsockopt = ctypes.CDLL(None, use_errno=True).getsockopt


@refusing_as(os.read)
async def read(fd: int, length: int, /) -> bytes:
    """Like :func:`os.read`, but async; pipes, sockets and ttys wait for readiness on the loop."""
    size = _size_of(length)
    if not _readiness.is_pollable(fd) or size is None:
        return await call(MUTATE, None, blocking.read, fd, length)
    await _engine.checkpoint()  # before anything is read: what is read is never dropped
    if not os.get_blocking(fd):
        while True:
            try:
                return os.read(fd, size)
            except BlockingIOError:
                await _readiness.wait_readable(fd)
    if size == 0 and stat.S_IFMT(os.fstat(fd).st_mode) == 0:  # an eventfd, an inotify...
        return await _read_nothing_from_kernel_object(fd)
    buffer: bytearray | mmap.mmap = bytearray()

    def sized() -> list[bytearray | mmap.mmap]:
        nonlocal buffer
        _free(buffer)
        buffer = _read_buffer(_readable_size(fd, size))
        return [buffer]

    try:
        count = await _readv_blocking_fd(fd, sized)  # (sized() replaces the buffer)
        return _taken(buffer, count)
    finally:
        _free(buffer)


async def _read_nothing_from_kernel_object(fd: int) -> bytes:
    """``os.read(fd, 0)`` of a blocking kernel object (an fd of no file type: eventfd, timerfd,
    signalfd, inotify...), which refuses a read shorter than its record (``EINVAL``), where the
    zero-length ``readv`` of the other path returns 0. eventfd, timerfd and signalfd refuse at
    once; the others (inotify) once an event is there, so the loop waits for that first. Both
    steps run on workers (the read is rare; ``/proc`` tells the kinds apart)."""
    if not await call(QUERY, None, _refuses_at_once, fd):
        await _readiness.wait_readable(fd)
    data: bytes = await call(MUTATE, None, os.read, fd, 0)
    return data


def _refuses_at_once(fd: int) -> bool:
    """Whether the kernel object ``fd`` refuses a short read before it looks for data."""
    try:
        return os.readlink(f"/proc/self/fd/{fd}") in _REFUSING_AT_ONCE
    except OSError:  # (no /proc)
        return False


_REFUSING_AT_ONCE: Final = frozenset(
    ("anon_inode:[eventfd]", "anon_inode:[timerfd]", "anon_inode:[signalfd]")
)  # as /proc/self/fd names them


def _read_buffer(size: int) -> bytearray | mmap.mmap:
    """A buffer for a read of ``size`` bytes. A large one is anonymous memory, which the kernel
    hands out zeroed page by page as the read fills it: a ``bytearray`` is zeroed whole, on the
    loop's thread, which stalled the loop for seconds where ``os.read`` allocates 2 GiB for a
    datagram of a byte (or for an fd that refuses the read, as an epoll fd does)."""
    if size < _LARGE_READ:
        return bytearray(size)
    try:
        return mmap.mmap(-1, size)
    except (OSError, OverflowError):  # no room: os.read's MemoryError
        pass
    raise MemoryError


def _taken(buffer: bytearray | mmap.mmap, count: int) -> bytes:
    """The first ``count`` bytes of ``buffer``, as ``bytes``."""
    if isinstance(buffer, mmap.mmap):
        return buffer[:count]
    del buffer[count:]
    return bytes(buffer)


def _free(buffer: bytearray | mmap.mmap) -> None:
    if isinstance(buffer, mmap.mmap):
        buffer.close()


@refusing_as(os.readv)
async def readv(fd: int, buffers: SupportsLenAndGetItem[WriteableBuffer], /) -> int:
    """Like :func:`os.readv`, but async; pipes, sockets and ttys wait for readiness on the loop."""
    if not _readiness.is_pollable(fd) or not _is_sequence(buffers):
        return await call(MUTATE, None, blocking.readv, fd, buffers)
    await _engine.checkpoint()  # before anything is read: what is read is never dropped
    if not os.get_blocking(fd):
        while True:
            try:
                return os.readv(fd, buffers)
            except BlockingIOError:
                await _readiness.wait_readable(fd)
    return await _readv_blocking_fd(fd, lambda: buffers)


async def _readv_blocking_fd(
    fd: int, buffers: Callable[[], SupportsLenAndGetItem[WriteableBuffer]]
) -> int:
    """One read that returns what is there, as a blocking read does, without blocking the loop,
    into ``buffers()`` (asked for again before each attempt)."""
    nowait = bool(_NOWAIT)
    deadline: float | None = None
    looked_up = False  # (the deadline)
    twin: int | None = None  # a named FIFO's non-blocking twin, if it has one
    try:
        while True:
            if twin is not None:
                try:
                    return os.readv(twin, buffers())
                except BlockingIOError:
                    pass
            elif nowait:
                try:
                    return os.preadv(fd, buffers(), -1, _NOWAIT)
                except BlockingIOError:  # nothing there (or someone else took it): wait
                    pass
                except OSError as exc:
                    if exc.errno != errno.EOPNOTSUPP:
                        raise
                    nowait = False  # a tty or a named FIFO: read only after readiness...
                    twin = _nonblocking_twin(fd)  # ...or, a FIFO, through a twin
                    continue
            if not looked_up:
                deadline, looked_up = _deadline(fd, socket.SO_RCVTIMEO), True
            if not nowait and twin is None:  # (a read after readiness is a blocking one)
                async with _reading_alone(fd):
                    await _readable_by(fd, deadline)
                    return os.readv(fd, buffers())
            await _readable_by(fd, deadline)
    finally:
        if twin is not None:
            os.close(twin)


async def _readable_by(fd: int, deadline: float | None) -> None:
    """Wait until ``fd`` is readable; ``EAGAIN`` at a socket's ``SO_RCVTIMEO`` deadline."""
    if not await _wait_until(_readiness.wait_readable, fd, deadline):
        raise BlockingIOError(errno.EAGAIN, os.strerror(errno.EAGAIN))  # as the socket's


_turns: dict[tuple[int, int], tuple[anyio.Lock, list[int]]] = {}  # (loop's channel, fd) ->


@contextlib.asynccontextmanager
async def _reading_alone(fd: int) -> AsyncIterator[None]:
    """One task of this loop at a time waits for ``fd`` to be readable and reads it. A tty or an
    inotify fd refuses ``RWF_NOWAIT``, so its read after readiness is a blocking one: where two
    tasks were woken by the same data, the second read blocked the loop until more came."""
    key = (id(_completions.current()), fd)
    turn = _turns.setdefault(key, (anyio.Lock(), [0]))
    turn[1][0] += 1
    try:
        async with turn[0]:
            yield
    finally:
        turn[1][0] -= 1
        if not turn[1][0] and _turns.get(key) is turn:
            del _turns[key]


def _nonblocking_twin(fd: int) -> int | None:
    """A non-blocking reader of the named FIFO ``fd`` reads (``None`` if it is none, or cannot
    be opened again): its own open of the FIFO shares the pipe, so a read through it takes what
    ``fd`` would, and gives ``EAGAIN`` while writers are connected and nothing is there, or the
    end (``b""``) with none connected. epoll never reports a FIFO that never had a writer, and
    ``RWF_NOWAIT`` is refused on named FIFOs (``EOPNOTSUPP``), so without it such a read waited
    for good where ``os.read`` returns ``b""``. The fd's own flags stay as they are."""
    try:
        if not stat.S_ISFIFO(os.fstat(fd).st_mode):
            return None
        return os.open(f"/proc/self/fd/{fd}", os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return None


def _deadline(fd: int, option: int) -> float | None:
    """When a blocking call on ``fd`` would give up waiting (``anyio.current_time``), if ``fd``
    is a socket with a ``SO_RCVTIMEO``/``SO_SNDTIMEO`` (``option``); else ``None``."""
    timeval = _socket_option(fd, option, _TIMEVAL.size)
    if timeval is None:
        return None
    seconds, microseconds = _TIMEVAL.unpack(timeval)
    timeout = seconds + microseconds / 1e6
    return anyio.current_time() + timeout if timeout > 0 else None


async def _wait_until(
    wait: Callable[[int], Awaitable[None]], fd: int, deadline: float | None
) -> bool:
    """``wait(fd)``, until ``deadline`` if any; whether ``fd`` became ready in time."""
    if deadline is None:
        await wait(fd)
        return True
    with anyio.move_on_at(deadline):
        await wait(fd)
        return True
    return False


def _readable_size(fd: int, size: int) -> int:
    """The buffer for a read of up to ``size`` bytes from a blocking ``fd``: as large as what is
    there (``FIONREAD``: pipes, sockets, ttys), at least :data:`_SMALL_READ`; ``size`` where the
    fd does not tell. ``os.read`` allocates ``size`` bytes without touching them; a
    ``bytearray`` of them is zeroed, which took 0.3 s for a 5-byte read of 256 MiB."""
    try:
        there: int = _INT.unpack(fcntl.ioctl(fd, termios.FIONREAD, _INT_BYTES))[0]
    except OSError:  # (an eventfd, a timerfd)
        return size
    room = min(size, max(there, _SMALL_READ))
    if room < size and _is_datagram_socket(fd):  # a datagram larger than what was there could
        return size  # come before the read: it would be cut, where os takes it whole
    return room


def _is_datagram_socket(fd: int) -> bool:
    """Whether ``fd`` is a socket that keeps message boundaries (``SOCK_DGRAM``, ``SEQPACKET``)."""
    kind = _socket_option(fd, socket.SO_TYPE, _INT.size)
    return kind is not None and _INT.unpack(kind)[0] != socket.SOCK_STREAM


def _socket_option(fd: int, option: int, size: int) -> bytes | None:
    """The ``SOL_SOCKET`` option ``option`` (``size`` bytes) of ``fd``, or ``None`` if ``fd``
    is no socket (a pipe, a tty). ``socket.socket(fileno=fd)`` would take the fd over."""
    value = ctypes.create_string_buffer(size)
    length = ctypes.c_uint32(size)
    if _getsockopt(fd, socket.SOL_SOCKET, option, value, ctypes.byref(length)):
        return None
    return value.raw


@refusing_as(os.write)
async def write(fd: int, data: ReadableBuffer, /) -> int:
    """Like :func:`os.write`, but async; pipes, sockets and ttys wait for readiness on the loop."""
    views = _byte_views([data])
    if not _writes_without_blocking(fd) or views is None or not any(views):
        # (an empty write: os's own, which reaches a socket, where pwritev would not)
        return await call(MUTATE, None, blocking.write, fd, data)
    await _engine.checkpoint()  # before anything is written
    if not os.get_blocking(fd):
        while True:
            try:
                return os.write(fd, data)
            except BlockingIOError:
                await _readiness.wait_writable(fd)
    return await _writev_blocking_fd(fd, views)


@refusing_as(os.writev)
async def writev(fd: int, buffers: SupportsLenAndGetItem[ReadableBuffer], /) -> int:
    """Like :func:`os.writev`, but async; pipes, sockets and ttys wait for readiness on the loop."""
    views = _byte_views(buffers)
    if not _writes_without_blocking(fd) or views is None or not any(views):
        return await call(MUTATE, None, blocking.writev, fd, buffers)
    await _engine.checkpoint()  # before anything is written
    if not os.get_blocking(fd):
        while True:
            try:
                return os.writev(fd, buffers)
            except BlockingIOError:
                await _readiness.wait_writable(fd)
    return await _writev_blocking_fd(fd, views)


async def _writev_blocking_fd(fd: int, views: list[memoryview]) -> int:
    """Write everything, as a blocking write does, a part at a time as room appears.

    Before the first byte a cancel lands at once; after it, the write completes first, and a
    native asyncio cancel (which an anyio shield does not hold back) is raised after it.
    """
    total = sum(len(v) for v in views)
    written = 0
    nowait = bool(_NOWAIT)
    ready = False
    deadline: float | None = None
    looked_up = False  # (the deadline)
    in_time = True
    cancelled: asyncio.CancelledError | None = None
    try:
        while True:
            if nowait or ready:
                rest = _skip(views, written)
                try:
                    if nowait:
                        written += os.pwritev(fd, rest, -1, _NOWAIT)
                    else:  # writable: room for PIPE_BUF bytes at least
                        ready = False
                        written += os.writev(fd, _take(rest, _PIPE_BUF))
                except BlockingIOError:
                    pass
                except OSError as exc:
                    if nowait and exc.errno == errno.EOPNOTSUPP:
                        nowait = False  # a tty: write only after readiness
                    elif written:  # e.g. the reader went away after some bytes: os returns it
                        break
                    else:
                        raise
            if written == total:
                break
            if not looked_up:
                deadline, looked_up = _deadline(fd, socket.SO_SNDTIMEO), True
            if written:
                try:
                    with anyio.CancelScope(shield=True):
                        in_time = await _wait_until(_readiness.wait_writable, fd, deadline)
                except asyncio.CancelledError as exc:  # a native cancel: finish all the same
                    cancelled = exc
            else:
                in_time = await _wait_until(_readiness.wait_writable, fd, deadline)
            if not in_time:  # the socket's SO_SNDTIMEO passed: os returns what went, or EAGAIN
                if written:
                    break
                raise BlockingIOError(errno.EAGAIN, os.strerror(errno.EAGAIN))
            ready = True
        if cancelled is not None:
            raise cancelled
        return written
    finally:
        del cancelled


def _writes_without_blocking(fd: int) -> bool:
    """Whether a write to ``fd`` can be made without blocking the loop.

    Not for a blocking tty: ttys have no per-call ``RWF_NOWAIT``, and a writable tty may have
    room for a single byte, so such writes go to the engine.
    """
    if not _readiness.is_pollable(fd):
        return False
    return not os.get_blocking(fd) or not os.isatty(fd)


def _skip(views: list[memoryview], count: int) -> list[memoryview]:
    """The buffers without their first ``count`` bytes."""
    rest: list[memoryview] = []
    for view in views:
        if count >= len(view):
            count -= len(view)
        else:
            rest.append(view[count:])
            count = 0
    return rest


def _take(views: list[memoryview], count: int) -> list[memoryview]:
    """The first ``count`` bytes of the buffers."""
    head: list[memoryview] = []
    for view in views:
        if count <= 0:
            break
        head.append(view[:count])
        count -= len(view)
    return head


def _size_of(length: Any) -> int | None:
    """The byte count ``os.read`` takes ``length`` for (an ``int``, a ``bool``, anything with
    ``__index__``); ``None`` where it refuses it: the engine's call raises its error."""
    try:
        size = operator.index(length)
    except TypeError:
        return None
    return size if 0 <= size <= _READ_MAX else None


def _is_sequence(buffers: object) -> bool:
    """Whether ``os.readv`` takes ``buffers`` for a sequence (else the engine's call raises its
    error: ``preadv`` words it as its own)."""
    return hasattr(type(buffers), "__getitem__") and not isinstance(buffers, dict)


def _byte_views(buffers: SupportsLenAndGetItem[ReadableBuffer]) -> list[memoryview] | None:
    """Flat byte views of the buffers; ``None`` if os would refuse them (the engine's call raises)."""
    if isinstance(buffers, dict):  # not a sequence to os, though it has len() and [i]
        return None
    try:
        return [memoryview(buffers[i]).cast("B") for i in range(len(buffers))]
    except (TypeError, ValueError, IndexError):
        return None


home_in_aos(read, readv, write, writev)
