"""``stat`` and ``lstat`` answered on the loop's own thread, when the kernel promises no I/O.

A thread round trip costs an awaited ``stat`` about 40 us, while the syscall takes 2 us. For a
path the kernel has cached, on a filesystem that keeps inodes in memory, aos asks the kernel
directly, in three syscalls that cannot wait for a disk or a server:

1. ``openat2(path, O_PATH, RESOLVE_CACHED)`` opens the path only if every component is in the
   dentry cache; if resolving it would need I/O it fails with ``EAGAIN`` and does nothing.
2. ``statx(fd, "", AT_EMPTY_PATH | AT_STATX_DONT_SYNC)`` reads the inode; the flag forbids a
   round trip to a server, and the answer also names the mount.
3. The mount's filesystem, read once per mount with ``statmount`` (no I/O), must be one whose
   attributes live in memory (ext2/3/4, xfs, btrfs, f2fs, tmpfs, ramfs), so the answer is
   exactly what ``os.stat`` returns.

The three syscalls and the ``os.stat_result`` are made in C (``_inline_c.c``, 1.5 us a call)
where aos was built with a C compiler, else through ctypes (4.3 us; ``os.stat``: 0.9 us).

Anything else (a cold path, NFS, FUSE, overlayfs, an error the open could give where ``stat``
would not, a kernel older than 6.8, a non-plain argument) returns ``None``, and the call goes
to a worker as before. Errors of the lookup itself (``ENOENT``, ``ENOTDIR``, ``EACCES``,
``ELOOP``, ``ENAMETOOLONG``) are the same for the open as for ``stat``, so they are final.
"""

from __future__ import annotations

import ctypes
import errno
import os
import platform
import threading
from collections.abc import Callable
from stat import S_IFDIR, S_IFLNK, S_IFMT, S_IFREG
from typing import Any, Final

from aos._async._kernel_form import (
    AT_EMPTY_PATH,
    AT_FDCWD,
    AT_STATX_DONT_SYNC,
    STAT_LAYOUT_KNOWN,
    STATX_BASIC_STATS,
    STATX_MNT_ID_UNIQUE,
    STATX_SIZE,
    dir_fd_of,
    encoded,
    filename_of,
    stat_result,
    unpack_statx,
)

_SYS_CLOSE: Final = 3
_SYS_STATX: Final = 332
_SYS_OPENAT2: Final = 437
_SYS_STATMOUNT: Final = 457
_STATMOUNT_SB_BASIC: Final = 0x1
_RESOLVE_CACHED: Final = 0x20
_O_PATH_CLOEXEC: Final = os.O_PATH | os.O_CLOEXEC
_FINAL_ERRORS: Final = frozenset(
    {errno.ENOENT, errno.ENOTDIR, errno.EACCES, errno.ELOOP, errno.ENAMETOOLONG}
)
# Superblock magics of filesystems whose getattr reads memory only.
_IN_MEMORY_ATTRIBUTES: Final = frozenset({
    0xEF53,  # ext2, ext3, ext4
    0x58465342,  # xfs
    0x9123683E,  # btrfs
    0xF2F52010,  # f2fs
    0x01021994,  # tmpfs
    0x858458F6,  # ramfs
})  # fmt: skip


class _OpenHow(ctypes.Structure):
    _fields_ = [("flags", ctypes.c_uint64), ("mode", ctypes.c_uint64), ("resolve", ctypes.c_uint64)]


class _MountRequest(ctypes.Structure):
    _fields_ = [
        ("size", ctypes.c_uint32),
        ("spare", ctypes.c_uint32),
        ("mnt_id", ctypes.c_uint64),
        ("param", ctypes.c_uint64),
    ]


class _MountBasics(ctypes.Structure):
    _fields_ = [
        ("size", ctypes.c_uint32),
        ("mnt_opts", ctypes.c_uint32),
        ("mask", ctypes.c_uint64),
        ("sb_dev_major", ctypes.c_uint32),
        ("sb_dev_minor", ctypes.c_uint32),
        ("sb_magic", ctypes.c_uint64),
        ("rest", ctypes.c_char * 480),
    ]


# Called without releasing the GIL: these calls cannot wait (that is the point), and a release
# would let a worker thread take the GIL from the loop in the middle of a stat.
_syscall = ctypes.PyDLL(None, use_errno=True).syscall
_syscall.restype = ctypes.c_long
_FOLLOW: Final = _OpenHow(_O_PATH_CLOEXEC, 0, _RESOLVE_CACHED)
_NO_FOLLOW: Final = _OpenHow(_O_PATH_CLOEXEC | os.O_NOFOLLOW, 0, _RESOLVE_CACHED)
_HOWS: Final = {True: ctypes.byref(_FOLLOW), False: ctypes.byref(_NO_FOLLOW)}
# Asks to open a directory itself for writing, which the kernel refuses before it opens
# anything: EISDIR for a directory (may_open, ahead of any permission check), ENOTDIR for any
# other file, a symlink included (O_NOFOLLOW: the link itself, which O_DIRECTORY refuses).
# One syscall, no fd to close. The opens that RESOLVE_CACHED forbids are those that create or
# truncate, and the lookup never reaches mnt_want_write for a cached name.
_DIRECTORY_ITSELF: Final = ctypes.byref(
    _OpenHow(os.O_WRONLY | os.O_CLOEXEC | os.O_NOFOLLOW | os.O_DIRECTORY, 0, _RESOLVE_CACHED)
)
_HOW_SIZE: Final = ctypes.sizeof(_OpenHow)
_STATX_FLAGS: Final = AT_EMPTY_PATH | AT_STATX_DONT_SYNC
_STATX_MASK: Final = STATX_BASIC_STATS | STATX_MNT_ID_UNIQUE
_buffers = threading.local()  # .statx: this thread's buffer (threads running loops each need one)

ENV_SWITCH: Final = "AOS_INLINE"

asked = 0
"""How many times :func:`stat` put a path to the kernel (an argument that is not a plain path is not:
its refusal says nothing of how often the kernel answers)."""


def _statx_cached(at: int, raw: bytes, follow: bool) -> tuple[int, ...] | int | None:
    """The statx fields of ``raw`` (relative to ``at``) if every component is cached, read
    without a round trip to a server; else the errno of the lookup (``EAGAIN``: not cached),
    or ``None`` if the lookup succeeded but the statx did not."""
    fd = _syscall(_SYS_OPENAT2, at, raw, _HOWS[follow], _HOW_SIZE)
    if fd < 0:
        return ctypes.get_errno()
    try:
        buffer = _buffers.statx
    except AttributeError:
        buffer = _buffers.statx = ctypes.create_string_buffer(STATX_SIZE)
    try:
        if _syscall(_SYS_STATX, fd, b"", _STATX_FLAGS, _STATX_MASK, buffer) < 0:
            return None
    finally:
        _syscall(_SYS_CLOSE, fd)  # an O_PATH fd: nothing to flush, cannot fail but EBADF
    return unpack_statx(buffer)


def _superblock_magic(mount: int) -> int | None:
    """The filesystem magic of the mount with unique id ``mount`` (``statmount``, no I/O)."""
    request = _MountRequest(ctypes.sizeof(_MountRequest), 0, mount, _STATMOUNT_SB_BASIC)
    basics = _MountBasics()
    found: int = _syscall(_SYS_STATMOUNT, ctypes.byref(request), ctypes.byref(basics),
                          ctypes.sizeof(basics), 0)  # fmt: skip
    if found < 0 or not basics.mask & _STATMOUNT_SB_BASIC:
        return None
    magic: int = basics.sb_magic
    return magic


def _probe() -> bool:
    """Whether this kernel has every piece: ``openat2`` with ``RESOLVE_CACHED`` (5.12),
    ``STATX_MNT_ID_UNIQUE`` and ``statmount`` (6.8). Tried on ``/``, whose dentry is always
    cached. ``AOS_INLINE=0`` turns the route off."""
    if os.environ.get(ENV_SWITCH, "1").strip() in ("0", "false", "no", "off"):
        return False
    if platform.machine() not in ("x86_64", "AMD64") or not STAT_LAYOUT_KNOWN:
        return False
    statx = _statx_cached(AT_FDCWD, b"/", True)
    if not isinstance(statx, tuple) or not statx[0] & STATX_MNT_ID_UNIQUE:
        return False
    return _superblock_magic(statx[-1]) is not None


enabled = _probe()
"""Whether to answer inline at all (probed once at import)."""

_in_memory_mounts: dict[int, bool] = {}  # unique mount id -> attributes in memory


def is_symlink(path: Any) -> bool | None:
    """``os.path.islink(path)``, if the kernel can tell without I/O (every component in the
    dentry cache; a file's type never changes, so a cached inode answers on any filesystem);
    else ``None``."""
    if not enabled:
        return None
    raw = encoded(path)
    if raw is None:
        return None
    # One syscall for the usual case, a directory (a walk asks this once per directory).
    fd = _syscall(_SYS_OPENAT2, AT_FDCWD, raw, _DIRECTORY_ITSELF, _HOW_SIZE)
    if fd >= 0:  # never seen: a kernel that opened a directory for writing
        _syscall(_SYS_CLOSE, fd)
        return None
    failed = ctypes.get_errno()
    if failed == errno.EISDIR:
        return False
    if failed != errno.ENOTDIR:  # not cached (EAGAIN), or the lookup's own error
        return False if failed in _FINAL_ERRORS else None
    statx = _statx_cached(AT_FDCWD, raw, False)  # a symlink, another file, or a non-directory
    if isinstance(statx, tuple):
        return S_IFMT(statx[_MODE]) == S_IFLNK
    if statx in _FINAL_ERRORS:  # islink says False where lstat fails
        return False
    return None


_MODE: Final = 6  # stx_mode among the unpacked statx fields


def _stat_cached_ctypes(
    at: int, raw: bytes, follow: bool
) -> tuple[int, os.stat_result] | int | None:
    """``(mount id, os.stat_result)`` of ``raw`` if every component is cached, else as
    :func:`_statx_cached`; what :mod:`aos._async._inline_c` does in C."""
    statx = _statx_cached(at, raw, follow)
    if not isinstance(statx, tuple):
        return statx
    return statx[-1], stat_result(statx)


StatCached = Callable[[int, bytes, bool], tuple[int, os.stat_result] | int | None]


def _c_route() -> StatCached | None:
    try:  # built from _inline_c.c where a C compiler was (see hatch_build.py)
        from aos._async._inline_c import stat_cached
    except ImportError:
        return None
    return stat_cached


stat_cached_in_c: Final = _c_route()
""":func:`_stat_cached_ctypes` in C, or ``None`` where aos was built without a C compiler."""

_stat_cached: StatCached = stat_cached_in_c or _stat_cached_ctypes
"""The same syscalls and result either way: in C 1.5 us, through ctypes 4.3 (``os.stat``: 0.9;
a cached file on ext4, 2026-12-07)."""


def stat(
    path: Any, *, dir_fd: Any = None, follow_symlinks: Any = True
) -> tuple[os.stat_result | None, OSError | None] | None:
    """``os.stat``'s result or error, if the kernel can give it without I/O; else ``None``."""
    if not enabled or type(follow_symlinks) is not bool:
        return None
    raw, at = encoded(path), dir_fd_of(dir_fd)
    if raw is None or at is None:
        return None
    global asked
    asked += 1
    found = _stat_cached(at, raw, follow_symlinks)
    if isinstance(found, int):  # the lookup failed: not cached (EAGAIN), or its own error
        if found in _FINAL_ERRORS:  # as stat gives it
            return None, OSError(found, os.strerror(found), filename_of(path))
        return None
    if found is None:
        return None
    mount, result = found
    return (result, None) if _in_memory(mount) else None


def _in_memory(mount: int) -> bool:
    """Whether the mount with unique id ``mount`` keeps its attributes in memory (asked once)."""
    known = _in_memory_mounts.get(mount)
    if known is None:
        known = _in_memory_mounts[mount] = _superblock_magic(mount) in _IN_MEMORY_ATTRIBUTES
    return known


def lstat(path: Any, *, dir_fd: Any = None) -> tuple[os.stat_result | None, OSError | None] | None:
    """``os.lstat``'s result or error, if the kernel can give it without I/O; else ``None``."""
    return stat(path, dir_fd=dir_fd, follow_symlinks=False)


# os.path's stat-based queries, answered the same way. Each returns what its os.path function
# returns, or raises: the predicates turn any error into False, the getters raise it.

Answer = tuple[Any, BaseException | None] | None


def _predicate(answer: Answer, kind: int | None) -> Answer:
    """``(True/False, None)`` from a stat answer: the file exists (and is of ``kind``)."""
    if answer is None:
        return None
    result, error = answer
    if error is not None:
        return False, None
    return (kind is None or S_IFMT(result.st_mode) == kind), None


def _field(answer: Answer, name: str) -> Answer:
    """``(the stat field, None)`` from a stat answer, or its error."""
    if answer is None or answer[1] is not None:
        return answer
    return getattr(answer[0], name), None


def exists(path: Any) -> Answer:
    """``os.path.exists``."""
    return _predicate(stat(path), None)


def lexists(path: Any) -> Answer:
    """``os.path.lexists``."""
    return _predicate(lstat(path), None)


def isfile(path: Any) -> Answer:
    """``os.path.isfile``."""
    return _predicate(stat(path), S_IFREG)


def isdir(s: Any) -> Answer:
    """``os.path.isdir``."""
    return _predicate(stat(s), S_IFDIR)


def islink(path: Any) -> Answer:
    """``os.path.islink``."""
    return _predicate(lstat(path), S_IFLNK)


def getsize(filename: Any) -> Answer:
    """``os.path.getsize``."""
    return _field(stat(filename), "st_size")


def getmtime(filename: Any) -> Answer:
    """``os.path.getmtime``."""
    return _field(stat(filename), "st_mtime")


def getatime(filename: Any) -> Answer:
    """``os.path.getatime``."""
    return _field(stat(filename), "st_atime")


def getctime(filename: Any) -> Answer:
    """``os.path.getctime``."""
    return _field(stat(filename), "st_ctime")
