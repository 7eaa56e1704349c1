"""Path calls as io_uring operations: ``stat``, ``lstat``, ``mkdir``, ``unlink``, ``symlink`` ...

Each builder here takes exactly the arguments of its :mod:`os` function and returns a
:class:`Request` (the operation, plus a buffer that holds its paths and any output), or ``None``
when the arguments are anything but the plain cases: a path that is not ``str``, ``bytes`` or a
``pathlib`` path, a ``dir_fd`` that is not an ``int``, a flag that is not a ``bool``, a path with
a NUL byte. ``None`` sends the call to a worker thread, where :mod:`os` itself raises the error
it raises for such input; so bad input gets exactly the error that ``os`` gives. A finished
request turns the kernel's result into what the :mod:`os` call returns or raises, with the same
``filename`` and ``filename2``.
"""

from __future__ import annotations

import ctypes
import os
import pathlib
import struct
from typing import Any, Final

from aos._async import _uring

_AT_FDCWD: Final = -100
_AT_SYMLINK_NOFOLLOW: Final = 0x100
_AT_REMOVEDIR: Final = 0x200
_STATX_BASIC_STATS: Final = 0x7FF
_STATX_SIZE: Final = 256
_INT_MIN, _INT_MAX = -(2**31), 2**31 - 1
# Longer paths go to a worker: io_uring copies both paths of a call before it looks either
# up, so its ENAMETOOLONG would win over the ENOENT that the syscall finds first.
_PATH_MAX: Final = 4096

# struct statx, up to stx_dev_minor: mask, blksize, attributes, nlink, uid, gid, mode, spare,
# ino, size, blocks, attributes_mask, then atime, btime, ctime, mtime (sec, nsec, reserved),
# rdev major/minor, dev major/minor.
_STATX: Final = struct.Struct("<IIQIIIHHQQQQ" + "qIi" * 4 + "IIII")

_PLAIN_PATHS: Final = (pathlib.PosixPath, pathlib.PurePosixPath)
# os.stat_result's fields beyond the first ten, in order: the tuple below is built to match.
_STAT_EXTRA: Final = ("st_atime", "st_mtime", "st_ctime", "st_atime_ns", "st_mtime_ns",
                      "st_ctime_ns", "st_blksize", "st_blocks", "st_rdev")  # fmt: skip
_STAT_LAYOUT_KNOWN: Final = (
    os.stat_result.n_sequence_fields == 10
    and os.stat_result.n_fields == 10 + len(_STAT_EXTRA)
    and tuple(os.stat_result(range(19)).__reduce__()[1][1]) == _STAT_EXTRA
)


class Request:
    """One io_uring operation and what it needs until it completes."""

    __slots__ = ("addr", "buffer", "fd", "filename", "filename2", "length", "off", "op_flags",
                 "opcode", "stat_at")  # fmt: skip

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
        stat_at: int = -1,
    ) -> None:
        self.opcode = opcode
        self.fd = fd
        self.buffer = buffer  # kept alive until the kernel has answered
        self.addr = ctypes.addressof(buffer)
        self.filename = filename
        self.filename2 = filename2
        self.length = length
        self.off = off
        self.op_flags = op_flags
        self.stat_at = stat_at  # where a statx result lands in the buffer, or -1

    def outcome(self, result: int) -> tuple[Any, BaseException | None]:
        """The os call's return value, or the error it raises, for the kernel's ``result``."""
        if result < 0:
            err = -result
            return None, OSError(err, os.strerror(err), self.filename, None, self.filename2)
        if self.stat_at < 0:
            return None, None
        return _stat_result(self.buffer, self.stat_at), None


def _stat_result(buffer: ctypes.Array[ctypes.c_char], at: int) -> os.stat_result:
    (_, blksize, _, nlink, uid, gid, mode, _, ino, size, blocks, _,
     a_s, a_ns, _, _, _, _, c_s, c_ns, _, m_s, m_ns, _,
     rdev_major, rdev_minor, dev_major, dev_minor) = _STATX.unpack_from(buffer, at)  # fmt: skip
    return os.stat_result((
        mode, ino, os.makedev(dev_major, dev_minor), nlink, uid, gid, size, a_s, m_s, c_s,
        a_s + a_ns * 1e-9, m_s + m_ns * 1e-9, c_s + c_ns * 1e-9,
        a_s * 1_000_000_000 + a_ns, m_s * 1_000_000_000 + m_ns, c_s * 1_000_000_000 + c_ns,
        blksize, blocks, os.makedev(rdev_major, rdev_minor),
    ))  # fmt: skip


def _encoded(path: object) -> bytes | None:
    """The bytes the kernel gets for a plain ``path``; ``None`` for anything else."""
    kind = type(path)
    if kind is str:
        text: str = path  # type: ignore[assignment]
    elif kind is bytes:
        return _plain(path)  # type: ignore[arg-type]
    elif kind in _PLAIN_PATHS:
        text = str(path)
    else:
        return None
    try:
        raw = os.fsencode(text)
    except UnicodeError:
        return None
    return _plain(raw)


def _plain(raw: bytes) -> bytes | None:
    return None if len(raw) >= _PATH_MAX or b"\0" in raw else raw


def _dir_fd(dir_fd: object) -> int | None:
    """The fd a ``dir_fd`` argument names (``AT_FDCWD`` for ``None``), or ``None`` if not plain."""
    if dir_fd is None:
        return _AT_FDCWD
    if type(dir_fd) is int and _INT_MIN <= dir_fd <= _INT_MAX:
        return dir_fd
    return None


def _one_path(opcode: int, path: object, dir_fd: object, **fields: int) -> Request | None:
    raw = _encoded(path)
    fd = _dir_fd(dir_fd)
    if raw is None or fd is None:
        return None
    return Request(opcode, fd, ctypes.create_string_buffer(raw), path, **fields)


def _two_paths(
    opcode: int, src: object, dst: object, src_dir_fd: object, dst_dir_fd: object
) -> Request | None:
    """An operation on ``src`` and ``dst``, both in one buffer: ``src\\0dst\\0``."""
    raw_src, raw_dst = _encoded(src), _encoded(dst)
    src_fd, dst_fd = _dir_fd(src_dir_fd), _dir_fd(dst_dir_fd)
    if raw_src is None or raw_dst is None or src_fd is None or dst_fd is None:
        return None
    buffer = ctypes.create_string_buffer(raw_src + b"\0" + raw_dst)
    request = Request(opcode, src_fd, buffer, src, dst, length=dst_fd & 0xFFFFFFFF)
    request.off = request.addr + len(raw_src) + 1
    return request


def stat(path: Any, *, dir_fd: Any = None, follow_symlinks: Any = True) -> Request | None:
    """``os.stat`` as ``statx``."""
    raw = _encoded(path)
    fd = _dir_fd(dir_fd)
    if raw is None or fd is None or type(follow_symlinks) is not bool or not _STAT_LAYOUT_KNOWN:
        return None
    at = (len(raw) + 8) & ~7  # the statx result goes after the path, 8-byte aligned
    buffer = ctypes.create_string_buffer(raw, at + _STATX_SIZE)
    request = Request(_uring.OP_STATX, fd, buffer, path, length=_STATX_BASIC_STATS, stat_at=at,
                      op_flags=0 if follow_symlinks else _AT_SYMLINK_NOFOLLOW)  # fmt: skip
    request.off = request.addr + at
    return request


def lstat(path: Any, *, dir_fd: Any = None) -> Request | None:
    """``os.lstat`` as ``statx`` without following a final symlink."""
    return stat(path, dir_fd=dir_fd, follow_symlinks=False)


def mkdir(path: Any, mode: Any = 0o777, *, dir_fd: Any = None) -> Request | None:
    """``os.mkdir`` as ``mkdirat``."""
    if type(mode) is not int or not 0 <= mode <= 0o7777:
        return None
    return _one_path(_uring.OP_MKDIRAT, path, dir_fd, length=mode)


def unlink(path: Any, *, dir_fd: Any = None) -> Request | None:
    """``os.unlink`` and ``os.remove`` as ``unlinkat``."""
    return _one_path(_uring.OP_UNLINKAT, path, dir_fd)


def rmdir(path: Any, *, dir_fd: Any = None) -> Request | None:
    """``os.rmdir`` as ``unlinkat(AT_REMOVEDIR)``."""
    return _one_path(_uring.OP_UNLINKAT, path, dir_fd, op_flags=_AT_REMOVEDIR)


def symlink(
    src: Any, dst: Any, target_is_directory: Any = False, *, dir_fd: Any = None
) -> Request | None:
    """``os.symlink`` as ``symlinkat`` (``target_is_directory`` means nothing on POSIX)."""
    if type(target_is_directory) is not bool:
        return None
    request = _two_paths(_uring.OP_SYMLINKAT, src, dst, None, None)
    fd = _dir_fd(dir_fd)
    if request is None or fd is None:
        return None
    request.fd = fd  # symlinkat(target, newdirfd, linkpath): the dir fd is the link's
    request.length = 0
    return request


def rename(src: Any, dst: Any, *, src_dir_fd: Any = None, dst_dir_fd: Any = None) -> Request | None:
    """``os.rename`` and ``os.replace`` as ``renameat``."""
    return _two_paths(_uring.OP_RENAMEAT, src, dst, src_dir_fd, dst_dir_fd)
