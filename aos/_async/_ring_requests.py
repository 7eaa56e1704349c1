"""Path mutations as io_uring operations: ``mkdir``, ``unlink``, ``rmdir``, ``symlink``, ``rename``.

Each builder here takes exactly the arguments of its :mod:`os` function and returns a
:class:`Request` (the operation, plus a buffer that holds its paths), or ``None`` when the
arguments are anything but the plain cases of :mod:`aos._async._kernel_form` (or a flag that is
not a ``bool``). ``None`` sends the call to a worker thread, where :mod:`os` itself raises the
error it raises for such input; so bad input gets exactly the error that ``os`` gives. A
finished request turns the kernel's result into what the :mod:`os` call returns (``None``) or
raises, with the same ``filename`` and ``filename2``.

Only calls whose answer is a status are here. ``stat`` was too, as ``statx``, and measured
slower than a worker: at 64 concurrent cached ``aos.stat`` (2 CPUs, asyncio, uvloop and trio)
the ring cost the same or more per call, and a 1 ms heartbeat on the loop woke 0.4-0.8 ms late
at the median against 0.1-0.3 ms with workers. The loop builds and parses each ``statx``
itself, and the ring hands back completions in full batches, which make long loop iterations.
"""

from __future__ import annotations

import ctypes
import os
from typing import Any, Final

from aos._async import _uring
from aos._async._kernel_form import (
    AT_FDCWD,
    AT_REMOVEDIR,
    dir_fd_of,
    encoded,
    filename_of,
)


class Request:
    """One io_uring operation and what it needs until it is submitted."""

    __slots__ = ("addr", "audit", "buffer", "fd", "filename", "filename2", "length", "off",
                 "op_flags", "opcode")  # fmt: skip

    def __init__(
        self,
        opcode: int,
        fd: int,
        buffer: ctypes.Array[ctypes.c_char],
        filename: object,
        filename2: object = None,
        *,
        length: int = 0,
        off: int = 0,
        op_flags: int = 0,
    ) -> None:
        self.opcode = opcode
        self.fd = fd
        self.buffer = buffer  # kept alive until the kernel has copied the paths
        self.addr = ctypes.addressof(buffer)
        self.filename = filename_of(filename)
        self.filename2 = filename_of(filename2)
        self.length = length
        self.off = off
        self.op_flags = op_flags
        self.audit: tuple[Any, ...] | None = None  # the sys.audit event os raises, if any

    def outcome(self, result: int) -> tuple[None, OSError | None]:
        """The os call's return value, or the error it raises, for the kernel's ``result``."""
        if result < 0:
            err = -result
            return None, OSError(err, os.strerror(err), self.filename, None, self.filename2)
        return None, None


_BUFFER_TYPES: Final = tuple(ctypes.c_char * (64 << i) for i in range(9))  # 64 B .. 16 KiB
"""The buffer sizes paths go in, kept for good. ctypes makes an array type per length and keeps
it only while something holds it: a buffer of each path's own length cost 8 us whenever its
type had gone (paths of many lengths), and left the type in a reference cycle for the garbage
collector. A buffer of the next size up costs 0.5 us."""


def _buffer(raw: bytes) -> ctypes.Array[ctypes.c_char]:
    """``raw`` and a NUL, in a buffer of one of a few sizes."""
    return ctypes.create_string_buffer(raw, max(64, 1 << len(raw).bit_length()))


def _one_path(opcode: int, path: object, dir_fd: object, **fields: int) -> Request | None:
    raw = encoded(path)
    fd = dir_fd_of(dir_fd)
    if raw is None or fd is None:
        return None
    return Request(opcode, fd, _buffer(raw), path, **fields)


def _two_paths(
    opcode: int, src: object, dst: object, src_dir_fd: object, dst_dir_fd: object
) -> Request | None:
    """An operation on ``src`` and ``dst``, both in one buffer: ``src\\0dst\\0``."""
    raw_src, raw_dst = encoded(src), encoded(dst)
    src_fd, dst_fd = dir_fd_of(src_dir_fd), dir_fd_of(dst_dir_fd)
    if raw_src is None or raw_dst is None or src_fd is None or dst_fd is None:
        return None
    buffer = _buffer(raw_src + b"\0" + raw_dst)
    request = Request(opcode, src_fd, buffer, src, dst, length=dst_fd & 0xFFFFFFFF)
    request.off = request.addr + len(raw_src) + 1
    return request


def mkdir(path: Any, mode: Any = 0o777, *, dir_fd: Any = None) -> Request | None:
    """``os.mkdir`` as ``mkdirat``."""
    if type(mode) is not int or not 0 <= mode <= 0o7777:
        return None
    request = _one_path(_uring.OP_MKDIRAT, path, dir_fd, length=mode)
    return _audited(request, "os.mkdir", filename_of(path), mode, _audit_fd(dir_fd))


def unlink(path: Any, *, dir_fd: Any = None) -> Request | None:
    """``os.unlink`` and ``os.remove`` as ``unlinkat``."""
    request = _one_path(_uring.OP_UNLINKAT, path, dir_fd)
    return _audited(request, "os.remove", filename_of(path), _audit_fd(dir_fd))


def rmdir(path: Any, *, dir_fd: Any = None) -> Request | None:
    """``os.rmdir`` as ``unlinkat(AT_REMOVEDIR)``."""
    request = _one_path(_uring.OP_UNLINKAT, path, dir_fd, op_flags=AT_REMOVEDIR)
    return _audited(request, "os.rmdir", filename_of(path), _audit_fd(dir_fd))


def symlink(
    src: Any, dst: Any, target_is_directory: Any = False, *, dir_fd: Any = None
) -> Request | None:
    """``os.symlink`` as ``symlinkat`` (``target_is_directory`` means nothing on POSIX)."""
    if type(target_is_directory) is not bool:
        return None
    request = _two_paths(_uring.OP_SYMLINKAT, src, dst, None, None)
    fd = dir_fd_of(dir_fd)
    if request is None or fd is None:
        return None
    request.fd = fd  # symlinkat(target, newdirfd, linkpath): the dir fd is the link's
    request.length = 0
    return _audited(request, "os.symlink", filename_of(src), filename_of(dst), _audit_fd(dir_fd))


def rename(src: Any, dst: Any, *, src_dir_fd: Any = None, dst_dir_fd: Any = None) -> Request | None:
    """``os.rename`` and ``os.replace`` as ``renameat``."""
    request = _two_paths(_uring.OP_RENAMEAT, src, dst, src_dir_fd, dst_dir_fd)
    return _audited(request, "os.rename", filename_of(src), filename_of(dst),
                    _audit_fd(src_dir_fd), _audit_fd(dst_dir_fd))  # fmt: skip


def _audited(request: Request | None, event: str, *args: object) -> Request | None:
    """``request``, carrying the ``sys.audit`` event the os call raises."""
    if request is not None:
        request.audit = (event, *args)
    return request


def _audit_fd(dir_fd: object) -> object:
    """A ``dir_fd`` as os's audit events give it: -1 for none (or ``AT_FDCWD``)."""
    return -1 if dir_fd is None or dir_fd == AT_FDCWD else dir_fd
