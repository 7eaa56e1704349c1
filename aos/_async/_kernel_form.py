"""The kernel's form of :mod:`os` arguments and results, for calls aos makes without ``os``.

aos sends some calls to the kernel itself (through io_uring, or inline when the kernel promises
not to block). Only plain arguments take that road: a path that is ``str``, ``bytes`` or a
``pathlib`` path, with no NUL byte and shorter than ``PATH_MAX``; a ``dir_fd`` that is ``None``
or an ``int``. Anything else goes to :mod:`os` on a worker, so it gets exactly ``os``'s error.
A ``statx`` buffer becomes the ``os.stat_result`` that ``os.stat`` returns.
"""

from __future__ import annotations

import ctypes
import os
import pathlib
import struct
import sys
from typing import Final

AT_FDCWD: Final = -100
AT_REMOVEDIR: Final = 0x200
AT_EMPTY_PATH: Final = 0x1000
AT_STATX_DONT_SYNC: Final = 0x4000
STATX_BASIC_STATS: Final = 0x7FF
STATX_MNT_ID_UNIQUE: Final = 0x4000
STATX_SIZE: Final = 256
_INT_MIN, _INT_MAX = -(2**31), 2**31 - 1
# Longer paths go to a worker: io_uring copies both paths of a call before it looks either
# up, so its ENAMETOOLONG would win over the ENOENT that the syscall finds first.
_PATH_MAX: Final = 4096
_FS_ENCODING: Final = sys.getfilesystemencoding()
_FS_ERRORS: Final = sys.getfilesystemencodeerrors()

# struct statx, up to stx_mnt_id: mask, blksize, attributes, nlink, uid, gid, mode, spare,
# ino, size, blocks, attributes_mask, then atime, btime, ctime, mtime (sec, nsec, reserved),
# rdev major/minor, dev major/minor, mnt_id.
_STATX: Final = struct.Struct("<IIQIIIHHQQQQ" + "qIi" * 4 + "IIIIQ")

_PLAIN_PATHS: Final = (pathlib.PosixPath, pathlib.PurePosixPath)
# os.stat_result's fields beyond the first ten, in order: the tuple below is built to match.
_STAT_EXTRA: Final = ("st_atime", "st_mtime", "st_ctime", "st_atime_ns", "st_mtime_ns",
                      "st_ctime_ns", "st_blksize", "st_blocks", "st_rdev")  # fmt: skip
STAT_LAYOUT_KNOWN: Final = (
    os.stat_result.n_sequence_fields == 10
    and os.stat_result.n_fields == 10 + len(_STAT_EXTRA)
    and tuple(os.stat_result(range(19)).__reduce__()[1][1]) == _STAT_EXTRA
)
"""Whether this Python's ``os.stat_result`` has the fields :func:`stat_result` fills."""


def encoded(path: object) -> bytes | None:
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
        raw = text.encode(_FS_ENCODING, _FS_ERRORS)  # os.fsencode, without its checks
    except UnicodeError:
        return None
    return _plain(raw)


def filename_of(path: object) -> object:
    """What ``os`` puts in an error's ``filename`` for a plain ``path``: a ``pathlib`` path as
    its string, ``str`` and ``bytes`` as they are."""
    return str(path) if type(path) in _PLAIN_PATHS else path


def _plain(raw: bytes) -> bytes | None:
    return None if len(raw) >= _PATH_MAX or b"\0" in raw else raw


def dir_fd_of(dir_fd: object) -> int | None:
    """The fd a ``dir_fd`` argument names (``AT_FDCWD`` for ``None``), or ``None`` if not plain."""
    if dir_fd is None:
        return AT_FDCWD
    if type(dir_fd) is int and _INT_MIN <= dir_fd <= _INT_MAX:
        return dir_fd
    return None


def unpack_statx(buffer: ctypes.Array[ctypes.c_char]) -> tuple[int, ...]:
    """The fields of the ``statx`` result in ``buffer``: ``stx_mask`` first, ``stx_mnt_id``
    last."""
    fields: tuple[int, ...] = _STATX.unpack_from(buffer)
    return fields


def stat_result(statx: tuple[int, ...]) -> os.stat_result:
    """The ``os.stat_result`` of unpacked ``statx`` fields."""
    (_, blksize, _, nlink, uid, gid, mode, _, ino, size, blocks, _,
     a_s, a_ns, _, _, _, _, c_s, c_ns, _, m_s, m_ns, _,
     rdev_major, rdev_minor, dev_major, dev_minor, _) = statx  # fmt: skip
    return os.stat_result((
        mode, ino, os.makedev(dev_major, dev_minor), nlink, uid, gid, size, a_s, m_s, c_s,
        a_s + a_ns * 1e-9, m_s + m_ns * 1e-9, c_s + c_ns * 1e-9,
        a_s * 1_000_000_000 + a_ns, m_s * 1_000_000_000 + m_ns, c_s * 1_000_000_000 + c_ns,
        blksize, blocks, os.makedev(rdev_major, rdev_minor),
    ))  # fmt: skip
