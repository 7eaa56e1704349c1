"""Async files and directories: ``stat``, ``listdir``, ``mkdir``, ``rename``, ``symlink`` ...

The async face of :mod:`aos.blocking._files`. Everything that looks a path up or changes
the file system is offloaded:

- ``QUERY`` (read-only): ``access``, ``stat``, ``lstat``, ``listdir``, ``readlink``,
  ``pathconf``, ``statvfs``, ``getcwd``, ``getcwdb`` (the kernel walks the dentry chain).
- ``MUTATE``: ``chdir``, ``fchdir``, ``chroot``, ``chmod``, ``chown``, ``lchown``, ``link``,
  ``symlink``, ``mkdir``, ``makedirs``, ``mkfifo``, ``mknod``, ``remove``, ``unlink``,
  ``rmdir``, ``removedirs``, ``rename``, ``renames``, ``replace``, ``truncate``, ``utime``,
  ``sync``, ``eventfd_write`` (blocks while the counter is full).
- ``MUTATE`` creating an fd, closed if the caller is cancelled: ``memfd_create``,
  ``eventfd``, ``timerfd_create``.
- ``WAIT``: ``eventfd_read`` (blocks until another party writes the counter).

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

import sys
from typing import TYPE_CHECKING, Any, overload

from aos import blocking
from aos._async import _inline as inline, _ring_requests as ring
from aos._async._offload import MUTATE, QUERY, WAIT, offload

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
    eventfd_read = offload(blocking.eventfd_read, WAIT)
    eventfd_write = offload(blocking.eventfd_write, MUTATE)
    __all__ += ["eventfd", "eventfd_read", "eventfd_write"]

if sys.version_info >= (3, 13) and hasattr(blocking, "timerfd_create"):
    timerfd_create = offload(blocking.timerfd_create, MUTATE, release=blocking.close)
    __all__ += ["timerfd_create"]
