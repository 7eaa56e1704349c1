"""A minimal io_uring submission and completion ring, driven from Python through ``ctypes``.

The kernel runs the path operations aos sends here (``mkdirat``, ``unlinkat``, ``symlinkat``,
``renameat``) on its own io-wq threads. They hold no GIL, so a burst of calls costs the event
loop one ``io_uring_enter`` per batch and one wake-up per batch of completions, and no Python
worker competes with the loop for the interpreter. Completions are signalled on an eventfd the
caller registers (the loop's completion channel), so the loop needs no new fd to watch.

Only what aos needs is here: one ring per event loop, operations whose paths the kernel copies
when they are submitted (it writes nothing back but their status), and submission from the
loop's thread only. The rings are read and written with plain stores, which is correct under
x86-64's ordering (stores are not reordered with stores, nor loads with loads);
:func:`available` is false elsewhere, and where the kernel refuses io_uring (seccomp,
``kernel.io_uring_disabled``), so callers fall back to worker threads. ``AOS_IO_URING=0`` turns
it off.
"""

from __future__ import annotations

import ctypes
import errno
import mmap
import os
import platform
import struct
import sys
from typing import Final

ENV_SWITCH: Final = "AOS_IO_URING"

# Operation codes (include/uapi/linux/io_uring.h).
OP_RENAMEAT: Final = 35
OP_UNLINKAT: Final = 36
OP_MKDIRAT: Final = 37
OP_SYMLINKAT: Final = 38
NEEDED_OPS: Final = (OP_RENAMEAT, OP_UNLINKAT, OP_MKDIRAT, OP_SYMLINKAT)

_SYS_SETUP, _SYS_ENTER, _SYS_REGISTER = 425, 426, 427
_FEAT_SINGLE_MMAP: Final = 1 << 0
_FEAT_NODROP: Final = 1 << 1
_ENTER_GETEVENTS: Final = 1
_REGISTER_EVENTFD: Final = 4
_REGISTER_PROBE: Final = 8
_REGISTER_IOWQ_MAX_WORKERS: Final = 19
_OFF_SQES: Final = 0x10000000
OUT_OF_FDS: Final = (errno.EMFILE, errno.ENFILE)
"""The errnos of a process (or system) out of fds: no verdict on io_uring, try again later."""
_UNTRACKED: Final[dict[str, bool]] = {"trackfd": False} if sys.version_info >= (3, 13) else {}
"""A mapping that keeps no ``dup`` of the ring's fd (3.13+): one fd a loop, not three."""
_PROBE_OPS: Final = 256
_OP_SUPPORTED: Final = 1

# struct io_uring_sqe: opcode, flags, ioprio, fd, off/addr2, addr, len, op flags, user_data,
# buf_index, personality, splice_fd_in, addr3, pad.
_SQE: Final = struct.Struct("<BBHiQQIIQHHiQQ")
_CQE: Final = struct.Struct("<QiI")  # user_data, res, flags
_U32: Final = struct.Struct("<I")


class _SQOffsets(ctypes.Structure):
    _fields_ = [
        *((name, ctypes.c_uint32) for name in
          ("head", "tail", "ring_mask", "ring_entries", "flags", "dropped", "array", "resv1")),
        ("user_addr", ctypes.c_uint64),
    ]  # fmt: skip


class _CQOffsets(ctypes.Structure):
    _fields_ = [
        *((name, ctypes.c_uint32) for name in
          ("head", "tail", "ring_mask", "ring_entries", "overflow", "cqes", "flags", "resv1")),
        ("user_addr", ctypes.c_uint64),
    ]  # fmt: skip


class _Params(ctypes.Structure):
    _fields_ = [
        ("sq_entries", ctypes.c_uint32),
        ("cq_entries", ctypes.c_uint32),
        ("flags", ctypes.c_uint32),
        ("sq_thread_cpu", ctypes.c_uint32),
        ("sq_thread_idle", ctypes.c_uint32),
        ("features", ctypes.c_uint32),
        ("wq_fd", ctypes.c_uint32),
        ("resv", ctypes.c_uint32 * 3),
        ("sq_off", _SQOffsets),
        ("cq_off", _CQOffsets),
    ]


class _ProbeOp(ctypes.Structure):
    _fields_ = [
        ("op", ctypes.c_uint8),
        ("resv", ctypes.c_uint8),
        ("flags", ctypes.c_uint16),
        ("resv2", ctypes.c_uint32),
    ]


class _Probe(ctypes.Structure):
    _fields_ = [
        ("last_op", ctypes.c_uint8),
        ("ops_len", ctypes.c_uint8),
        ("resv", ctypes.c_uint16),
        ("resv2", ctypes.c_uint32 * 3),
        ("ops", _ProbeOp * _PROBE_OPS),
    ]


_libc = ctypes.CDLL(None, use_errno=True)
_syscall = _libc.syscall
_syscall.restype = ctypes.c_long
# io_uring_enter without waiting never sleeps (these operations always go to io-wq), so it is
# called without releasing the GIL: a release would let a worker thread take it first.
_enter = ctypes.PyDLL(None, use_errno=True).syscall
_enter.restype = ctypes.c_long
_enter.argtypes = [
    ctypes.c_long, ctypes.c_int, ctypes.c_uint, ctypes.c_uint, ctypes.c_uint,
    ctypes.c_void_p, ctypes.c_size_t,
]  # fmt: skip

_available: bool | None = None


def _errno_error(what: str) -> OSError:
    err = ctypes.get_errno()
    return OSError(err, f"{what}: {os.strerror(err)}")


class Ring:
    """One io_uring instance whose completions are signalled on ``eventfd``.

    ``push`` queues an operation, ``submit`` hands the queued ones to the kernel, ``reap``
    collects finished ones. Only one thread at a time may use a ring (the loop's; once its
    loop has ended, the thread that closes it).
    """

    def __init__(self, eventfd: int, entries: int = 256) -> None:
        params = _Params()
        fd = _syscall(_SYS_SETUP, ctypes.c_uint(entries), ctypes.byref(params))
        if fd < 0:
            raise _errno_error("io_uring_setup")
        self.fd = fd
        try:
            self._map(params)
            self._register_eventfd(eventfd)
        except BaseException:
            self.close()
            raise

    def _map(self, params: _Params) -> None:
        if not params.features & _FEAT_SINGLE_MMAP or not params.features & _FEAT_NODROP:
            raise OSError(f"io_uring lacks the features aos needs ({params.features:#x})")
        sq, cq = params.sq_off, params.cq_off
        size = max(sq.array + params.sq_entries * 4, cq.cqes + params.cq_entries * _CQE.size)
        protection = mmap.PROT_READ | mmap.PROT_WRITE
        flags = mmap.MAP_SHARED | mmap.MAP_POPULATE
        self._rings = mmap.mmap(self.fd, size, flags, protection, offset=0, **_UNTRACKED)
        self._sqes = mmap.mmap(self.fd, params.sq_entries * _SQE.size, flags, protection,
                               offset=_OFF_SQES, **_UNTRACKED)  # fmt: skip
        self.sq_entries: int = params.sq_entries
        self.cq_entries: int = params.cq_entries
        self._sq_head = sq.head
        self._sq_tail = sq.tail
        self._sq_mask = params.sq_entries - 1
        self._cq_head = cq.head
        self._cq_tail = cq.tail
        self._cq_mask = params.cq_entries - 1
        self._cqes = cq.cqes
        for index in range(params.sq_entries):  # slot i of the SQ array names SQE i
            _U32.pack_into(self._rings, sq.array + 4 * index, index)
        self._tail: int = _U32.unpack_from(self._rings, sq.tail)[0]  # our copy: only we write it
        self._queued = 0  # pushed, not yet submitted
        self._seen_head: int = _U32.unpack_from(self._rings, sq.head)[0]  # the kernel's SQ head...
        self._sent = 0  # ...and how many SQEs it has taken since then, all told
        self._reaped = 0

    def _register_eventfd(self, eventfd: int) -> None:
        arg = ctypes.c_int(eventfd)
        if _syscall(_SYS_REGISTER, self.fd, _REGISTER_EVENTFD, ctypes.byref(arg), 1) < 0:
            raise _errno_error("io_uring_register(EVENTFD)")

    def limit_workers(self, most: int) -> None:
        """Let at most ``most`` kernel threads of this thread's io-wq run operations at once.

        The limit belongs to the calling thread's io-wq, so the ring's own thread must set it.
        """
        counts = (ctypes.c_uint32 * 2)(most, most)
        if _syscall(_SYS_REGISTER, self.fd, _REGISTER_IOWQ_MAX_WORKERS, counts, 2) < 0:
            raise _errno_error("io_uring_register(IOWQ_MAX_WORKERS)")

    def supports(self, ops: tuple[int, ...]) -> bool:
        """Whether the kernel knows every one of ``ops``."""
        probe = _Probe()
        if _syscall(_SYS_REGISTER, self.fd, _REGISTER_PROBE, ctypes.byref(probe), _PROBE_OPS) < 0:
            return False
        known = {p.op for p in probe.ops[: probe.ops_len] if p.flags & _OP_SUPPORTED}
        return all(op in known for op in ops)

    def has_room(self) -> bool:
        """Whether one more operation fits in the submission queue."""
        head: int = _U32.unpack_from(self._rings, self._sq_head)[0]
        return (self._tail - head) & 0xFFFFFFFF < self.sq_entries

    def push(
        self, user_data: int, opcode: int, fd: int, addr: int, length: int, off: int, op_flags: int
    ) -> None:
        """Queue one operation (check :meth:`has_room` first); :meth:`submit` sends it."""
        tail = self._tail
        _SQE.pack_into(self._sqes, (tail & self._sq_mask) * _SQE.size, opcode, 0, 0, fd, off,
                       addr, length, op_flags, user_data, 0, 0, 0, 0, 0)  # fmt: skip
        self._tail = tail = (tail + 1) & 0xFFFFFFFF
        _U32.pack_into(self._rings, self._sq_tail, tail)  # after the SQE: x86-64 keeps the order
        self._queued += 1

    def submit(self) -> int:
        """Send the queued operations; return how many the kernel did not take.

        Those are withdrawn from the queue (newest last), so the caller can run them another way.
        """
        queued = self._queued
        if not queued:
            return 0
        while _enter(_SYS_ENTER, self.fd, queued, 0, 0, None, 0) < 0:
            if ctypes.get_errno() != errno.EINTR:  # anything else: withdraw what is left
                break
        return self.withdraw()

    def withdraw(self) -> int:
        """Take back the queued operations the kernel has not taken; return how many."""
        head: int = _U32.unpack_from(self._rings, self._sq_head)[0]
        left: int = (self._tail - head) & 0xFFFFFFFF
        if left:
            self._tail = head
            _U32.pack_into(self._rings, self._sq_tail, head)
        self._queued = 0
        return left

    def kick(self) -> bool:
        """Have the kernel post the completions it still holds for this thread (an
        ``io_uring_enter`` with ``GETEVENTS`` that waits for nothing); whether any are ready."""
        _enter(_SYS_ENTER, self.fd, 0, 0, _ENTER_GETEVENTS, None, 0)
        return self.has_completions()

    def has_completions(self) -> bool:
        """Whether finished operations wait to be reaped."""
        head: int = _U32.unpack_from(self._rings, self._cq_head)[0]
        tail: int = _U32.unpack_from(self._rings, self._cq_tail)[0]
        return head != tail

    def reap(self, most: int) -> tuple[list[tuple[int, int]], bool]:
        """Take up to ``most`` finished operations, and whether more are waiting.

        Each is a ``(user_data, result)`` pair, the result ``-errno`` on error.
        """
        rings = self._rings
        head = _U32.unpack_from(rings, self._cq_head)[0]
        tail = _U32.unpack_from(rings, self._cq_tail)[0]
        done: list[tuple[int, int]] = []
        while head != tail and len(done) < most:
            user_data, result, _ = _CQE.unpack_from(rings, self._cqes + (head & self._cq_mask) * 16)
            done.append((user_data, result))
            head = (head + 1) & 0xFFFFFFFF
        _U32.pack_into(rings, self._cq_head, head)
        self._reaped += len(done)
        return done, head != tail

    @property
    def in_flight(self) -> int:
        """Operations the kernel has taken and whose completions were not reaped yet (counted
        from the kernel's own SQ head, so no interrupted bookkeeping can skew it)."""
        if self._rings is None:
            return 0
        head: int = _U32.unpack_from(self._rings, self._sq_head)[0]
        self._sent += (head - self._seen_head) & 0xFFFFFFFF
        self._seen_head = head
        return self._sent - self._reaped

    def close_when_done(self) -> None:
        """Wait until every operation submitted has completed, then :meth:`close` (blocking,
        without the GIL: for a thread of its own)."""
        while self.in_flight > 0:
            if self.reap(self.cq_entries)[0]:
                continue
            waited = _syscall(_SYS_ENTER, self.fd, 0, 1, _ENTER_GETEVENTS, None, 0)
            if waited < 0 and ctypes.get_errno() != errno.EINTR:
                break
        self.close()

    def close(self) -> None:
        """Unmap the rings and close the ring's fd. Operations the kernel has not started yet
        are cancelled; those it runs finish."""
        for name in ("_sqes", "_rings"):
            mapping = getattr(self, name, None)
            if mapping is not None:
                setattr(self, name, None)  # first: a fork meanwhile sees it closed
                mapping.close()
        fd, self.fd = self.fd, -1
        if fd >= 0:
            os.close(fd)


def available() -> bool:
    """Whether this process can use io_uring for aos's operations (probed once it could
    tell: out of fds, the probe raises :exc:`OSError` and is made again next time)."""
    global _available
    if _available is None:
        _available = _probe()
    return _available


def _probe() -> bool:
    if os.environ.get(ENV_SWITCH, "1").strip() in ("0", "false", "no", "off"):
        return False
    if platform.machine() not in ("x86_64", "AMD64") or not hasattr(os, "eventfd"):
        return False
    eventfd = os.eventfd(0, os.EFD_CLOEXEC | os.EFD_NONBLOCK)  # (out of fds: raises)
    try:
        ring = Ring(eventfd, entries=2)
    except OSError as error:
        if error.errno in OUT_OF_FDS:
            raise
        return False
    finally:
        os.close(eventfd)
    try:
        return ring.supports(NEEDED_OPS)
    finally:
        ring.close()
