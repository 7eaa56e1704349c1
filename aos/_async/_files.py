"""Async files and directories: ``stat``, ``listdir``, ``mkdir``, ``rename``, ``symlink`` ...

The async face of :mod:`aos.blocking._files`. Everything that looks a path up or changes
the file system is offloaded:

- ``QUERY`` (read-only): ``access``, ``stat``, ``lstat``, ``listdir``, ``readlink``,
  ``pathconf``, ``statvfs``, ``getcwd``, ``getcwdb`` (the kernel walks the dentry chain).
- ``MUTATE``: ``chdir``, ``fchdir``, ``chroot``, ``chmod``, ``chown``, ``lchown``, ``link``,
  ``symlink``, ``mkdir``, ``makedirs``, ``mkfifo``, ``mknod``, ``remove``, ``unlink``,
  ``rmdir``, ``removedirs``, ``rename``, ``renames``, ``replace``, ``truncate``, ``utime``,
  ``sync``, ``eventfd_write`` (blocks while the counter is full: in the wait lane, see
  :mod:`aos._async._may_wait`).
- ``MUTATE`` creating an fd, closed if the caller is cancelled: ``memfd_create``,
  ``eventfd``, ``timerfd_create``.
- Written by hand: ``eventfd_read`` (waits until another party writes the counter): on the
  loop, as :func:`aos.read` waits.

Where the kernel's io_uring can run a mutation, calls that overlap go there, with no worker
thread: ``mkdir``, ``unlink``, ``remove``, ``rmdir``, ``symlink``, ``rename`` and ``replace``
(see :mod:`aos._async._ring_requests`). The policy is the same either way. ``stat`` and
``lstat`` of a cached path on a local filesystem are answered on the loop's own thread, in
syscalls that cannot do I/O (see :mod:`aos._async._inline`); others go to a worker.

``scandir``, ``walk`` and ``fwalk`` live in :mod:`aos._async._iter`.

Passed through, because they compute without waiting: ``major``, ``minor``, ``makedev``,
``timerfd_settime``/``timerfd_gettime`` (and the ``_ns`` forms), the result classes
(``stat_result``, ``statvfs_result``, ``DirEntry``), ``supports_*`` and the constants.
"""

from __future__ import annotations

import os
import stat as file_type
import sys
from typing import TYPE_CHECKING, Any, Final, overload

from aos import blocking
from aos._async import _engine, _inline as inline, _ring_requests as ring
from aos._async._fd_io import read
from aos._async._may_wait import eventfd_write_waits
from aos._async._offload import MUTATE, QUERY, WAIT, call, home_in_aos, offload
from aos._async._refusal import refusing_as

__all__ = [
    "access",
    "chdir",
    "chmod",
    "chown",
    "chroot",
    "fchdir",
    "getcwd",
    "getcwdb",
    "lchown",
    "link",
    "listdir",
    "lstat",
    "makedirs",
    "mkdir",
    "mkfifo",
    "mknod",
    "pathconf",
    "readlink",
    "remove",
    "removedirs",
    "rename",
    "renames",
    "replace",
    "rmdir",
    "stat",
    "statvfs",
    "symlink",
    "sync",
    "truncate",
    "unlink",
    "utime",
]

access = offload(blocking.access, QUERY)
stat = offload(blocking.stat, QUERY, inline=inline.stat)
lstat = offload(blocking.lstat, QUERY, inline=inline.lstat)
readlink = offload(blocking.readlink, QUERY)
pathconf = offload(blocking.pathconf, QUERY)
statvfs = offload(blocking.statvfs, QUERY)
getcwd = offload(blocking.getcwd, QUERY)
getcwdb = offload(blocking.getcwdb, QUERY)

if TYPE_CHECKING:  # os.listdir is overloaded, and mypy keeps only one overload through ParamSpec
    from _typeshed import BytesPath, StrPath

    @overload
    async def listdir(path: StrPath | None = None) -> list[str]: ...
    @overload
    async def listdir(path: BytesPath) -> list[bytes]: ...
    @overload
    async def listdir(path: int) -> list[str]: ...
    async def listdir(path: Any = None) -> Any: ...

else:
    listdir = offload(blocking.listdir, QUERY)

chdir = offload(blocking.chdir, MUTATE)
fchdir = offload(blocking.fchdir, MUTATE)
chroot = offload(blocking.chroot, MUTATE)
chmod = offload(blocking.chmod, MUTATE)
chown = offload(blocking.chown, MUTATE)
lchown = offload(blocking.lchown, MUTATE)
link = offload(blocking.link, MUTATE)
symlink = offload(blocking.symlink, MUTATE, ring=ring.symlink)
mkdir = offload(blocking.mkdir, MUTATE, ring=ring.mkdir)
makedirs = offload(blocking.makedirs, MUTATE)
mkfifo = offload(blocking.mkfifo, MUTATE)
mknod = offload(blocking.mknod, MUTATE)
remove = offload(blocking.remove, MUTATE, ring=ring.unlink)
unlink = offload(blocking.unlink, MUTATE, ring=ring.unlink)
rmdir = offload(blocking.rmdir, MUTATE, ring=ring.rmdir)
removedirs = offload(blocking.removedirs, MUTATE)
rename = offload(blocking.rename, MUTATE, ring=ring.rename)
renames = offload(blocking.renames, MUTATE)
replace = offload(blocking.replace, MUTATE, ring=ring.rename)
truncate = offload(blocking.truncate, MUTATE)
utime = offload(blocking.utime, MUTATE)
sync = offload(blocking.sync, MUTATE)

if hasattr(blocking, "memfd_create"):
    memfd_create = offload(blocking.memfd_create, MUTATE, release=blocking.close)
    __all__ += ["memfd_create"]

if hasattr(blocking, "eventfd"):
    eventfd = offload(blocking.eventfd, MUTATE, release=blocking.close)
    eventfd_write = offload(blocking.eventfd_write, MUTATE, waits=eventfd_write_waits)

    @refusing_as(os.eventfd_read)
    async def eventfd_read(fd: int) -> int:
        """Like :func:`os.eventfd_read`, but async: a blocking eventfd (any fd of an anonymous
        inode) is read as :func:`aos.read` reads it, after readiness on the loop (no thread), so
        a cancel lands at once and takes nothing from the counter; a non-blocking one answers
        at once, as ``os`` does. Any other fd (which ``os`` reads 8 bytes of) goes to the wait
        lane."""
        if not _is_anonymous_inode(fd):
            return await call(WAIT, None, blocking.eventfd_read, fd)
        if not os.get_blocking(fd):  # os's answer at once (BlockingIOError while it is 0)
            await _engine.checkpoint()
            return blocking.eventfd_read(fd)
        return int.from_bytes(await read(fd, _COUNTER_SIZE), sys.byteorder)

    def _is_anonymous_inode(fd: object) -> bool:
        """Whether ``fd`` is an eventfd, timerfd, signalfd ... (no file type): read as 8 bytes,
        these give the value ``os.eventfd_read`` gives, or its error."""
        try:
            return type(fd) is int and not file_type.S_IFMT(os.fstat(fd).st_mode)
        except OSError:
            return False

    _COUNTER_SIZE: Final = 8  # an eventfd is read as one unsigned 64-bit integer
    home_in_aos(eventfd_read)
    __all__ += ["eventfd", "eventfd_read", "eventfd_write"]

if sys.version_info >= (3, 13) and hasattr(blocking, "timerfd_create"):
    timerfd_create = offload(blocking.timerfd_create, MUTATE, release=blocking.close)
    __all__ += ["timerfd_create"]
