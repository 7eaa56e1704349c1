"""Async file descriptor calls: ``open``, ``close``, ``dup``, ``pipe``, ``fsync``, ``pread`` ...

The async face of :mod:`aos.blocking._fd`. What can block, and so is offloaded here:

- ``QUERY`` (read-only): ``fstat``, ``fstatvfs``, ``fpathconf``, ``pread`` (returns new bytes,
  moves no offset), ``ttyname`` (looks the device up under ``/dev``).
- ``MUTATE``: ``close``, ``closerange``, ``fchmod``, ``fchown``, ``fsync``, ``fdatasync``,
  ``ftruncate``, ``lseek``, ``lockf`` (``F_LOCK`` waits for the lock; a cancel waits with it,
  then gives the lock back where the process held none on the file before: the caller never
  holds a lock it does not know of), ``posix_fallocate``,
  ``posix_fadvise``, ``pwrite``, ``pwritev``, ``preadv`` (fills the caller's buffers, so it
  must not run on after a cancel), ``copy_file_range``, ``sendfile`` and ``splice``.
  ``close`` and ``closerange`` run even for a caller cancelled already (then raise the cancel).
- ``MUTATE`` creating a resource, released if the caller is cancelled: ``open``, ``dup``,
  ``pipe``, ``pipe2``, ``openpty``, ``posix_openpt``. ``dup2`` runs to completion but has no
  release: ``fd2`` is a number the caller chose (often 0, 1 or 2) and stays the caller's.

Calls that may wait for good run in the wait lane, so that they hold no filesystem worker (see
:mod:`aos._async._may_wait`): ``lockf`` with ``F_LOCK``, ``sendfile`` and ``splice`` where a
side is a blocking pipe or socket, and ``open`` of a FIFO or a device (found on the worker,
which hands the call over).

``read``, ``write``, ``readv`` and ``writev`` live in :mod:`aos._async._fd_io`.

Passed through, because they never wait on a device: ``fdopen`` (wraps an fd in a Python
file object, whose methods are sync anyway), ``device_encoding``, ``isatty``,
``get_terminal_size``, ``get_blocking``, ``set_blocking``, ``get_inheritable``,
``set_inheritable``, ``tcgetpgrp``, ``tcsetpgrp``, ``login_tty``, ``grantpt``, ``ptsname``,
``unlockpt`` (ioctl/fcntl on an open fd), and the constants.
"""

from __future__ import annotations

import fcntl
import os
import sys

from aos import blocking
from aos._async import _engine
from aos._async._may_wait import lockf_waits, open_waits, sendfile_waits, splice_waits
from aos._async._offload import MUTATE, QUERY, home_in_aos, offload
from aos._async._procfs import read_proc_file
from aos._async._refusal import refusing_as
from aos._async._workers import WAIT_LANE

__all__ = [
    "close",
    "closerange",
    "dup",
    "dup2",
    "fchmod",
    "fchown",
    "fdatasync",
    "fpathconf",
    "fstat",
    "fstatvfs",
    "fsync",
    "ftruncate",
    "lockf",
    "lseek",
    "open",
    "openpty",
    "pipe",
    "pipe2",
    "posix_fadvise",
    "posix_fallocate",
    "pread",
    "preadv",
    "pwrite",
    "pwritev",
    "sendfile",
    "ttyname",
]


def close_pair(fds: tuple[int, int]) -> None:
    """Close both fds of a ``pipe()`` or ``openpty()`` result that its caller will never see."""
    try:
        blocking.close(fds[0])
    finally:
        blocking.close(fds[1])


fstat = offload(blocking.fstat, QUERY)
fstatvfs = offload(blocking.fstatvfs, QUERY)
fpathconf = offload(blocking.fpathconf, QUERY)
pread = offload(blocking.pread, QUERY)
ttyname = offload(blocking.ttyname, QUERY)

close = offload(blocking.close, MUTATE, runs_when_cancelled=True)
closerange = offload(blocking.closerange, MUTATE, runs_when_cancelled=True)
fchmod = offload(blocking.fchmod, MUTATE)
fchown = offload(blocking.fchown, MUTATE)
fsync = offload(blocking.fsync, MUTATE)
fdatasync = offload(blocking.fdatasync, MUTATE)
ftruncate = offload(blocking.ftruncate, MUTATE)
lseek = offload(blocking.lseek, MUTATE)
_lockf = offload(blocking.lockf, MUTATE, waits=lockf_waits)


@refusing_as(os.lockf)
async def lockf(fd: int, command: int, length: int, /) -> None:
    """Like :func:`os.lockf`, but async. ``F_LOCK`` waits in the wait lane; a cancel waits for
    the lock, then gives it back and is raised, so the caller never holds a lock it does not
    know of (where the process held one on the file already, the two merged: the call returns,
    and the cancel lands at the next checkpoint)."""
    start = _start_of_a_lock_to_give_back(fd, command, length)
    if start is None:
        return await _lockf(fd, command, length)

    def give_back(_: None) -> None:
        fcntl.lockf(fd, fcntl.LOCK_UN, length, start, os.SEEK_SET)

    await _engine.run_to_completion(
        blocking.lockf, (fd, command, length), {}, give_back, pool=WAIT_LANE
    )


home_in_aos(lockf)


def _start_of_a_lock_to_give_back(fd: object, command: object, length: object) -> int | None:
    """For an ``F_LOCK`` of a file on which this process holds no lock yet: where its range
    starts (the fd's offset now), so that a cancel can give it back exactly. ``None``
    otherwise: a lock that merged with one held already cannot be taken apart, and a cancel
    leaves it held (as any other call with effects); bad arguments get os's error."""
    if not lockf_waits(fd, command, length) or type(fd) is not int or type(length) is not int:
        return None
    try:
        start = os.lseek(fd, 0, os.SEEK_CUR)
    except OSError:
        return None
    return None if _holds_a_lock_on(fd) else start


def _holds_a_lock_on(fd: int) -> bool:
    """Whether this process holds a POSIX lock on ``fd``'s file, through any of its fds (the
    kernel's ``/proc/locks``; a line with ``->`` is a wait). ``True`` where it cannot tell."""
    try:
        found = os.fstat(fd)
    except OSError:
        return True
    text = read_proc_file("/proc/locks")
    if text is None:
        return True
    pid = str(os.getpid()).encode()
    file = f"{os.major(found.st_dev):02x}:{os.minor(found.st_dev):02x}:{found.st_ino}".encode()
    for line in text.splitlines():
        fields = line.split()
        if b"->" not in fields and fields[1:2] == [b"POSIX"] and fields[4:6] == [pid, file]:
            return True
    return False


posix_fallocate = offload(blocking.posix_fallocate, MUTATE)
posix_fadvise = offload(blocking.posix_fadvise, MUTATE)
pwrite = offload(blocking.pwrite, MUTATE)
pwritev = offload(blocking.pwritev, MUTATE)
preadv = offload(blocking.preadv, MUTATE)
sendfile = offload(blocking.sendfile, MUTATE, waits=sendfile_waits)
dup2 = offload(blocking.dup2, MUTATE)

open = offload(blocking.open, MUTATE, release=blocking.close, waits_on_worker=open_waits)
dup = offload(blocking.dup, MUTATE, release=blocking.close)
pipe = offload(blocking.pipe, MUTATE, release=close_pair)
pipe2 = offload(blocking.pipe2, MUTATE, release=close_pair)
openpty = offload(blocking.openpty, MUTATE, release=close_pair)

if hasattr(blocking, "copy_file_range"):
    copy_file_range = offload(blocking.copy_file_range, MUTATE)
    __all__ += ["copy_file_range"]

if hasattr(blocking, "splice"):
    splice = offload(blocking.splice, MUTATE, waits=splice_waits)
    __all__ += ["splice"]

if sys.version_info >= (3, 13) and hasattr(blocking, "posix_openpt"):
    posix_openpt = offload(blocking.posix_openpt, MUTATE, release=blocking.close)
    __all__ += ["posix_openpt"]
