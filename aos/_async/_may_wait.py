"""Which ``MUTATE`` calls may wait for good: those run in the wait lane.

A call that waits for as long as another party takes (a splice from an empty pipe, a FIFO
opened with no one at the other end, a lock held elsewhere) held a filesystem worker in the
bounded pool: with two of them, every ``aos.access`` of the process waited. In the wait lane
it holds none. It runs as ``MUTATE`` there: a cancel waits for it once it has begun, as for
a write, since part of the data may have moved (or the lock been taken).

- ``sendfile``, ``splice``: a side is a blocking pipe, FIFO, socket or tty. The loop does not
  wait for readiness first: what the kernel's call waits for is not always what ``epoll``
  reports (a listening socket fails at once, a FIFO that never had a writer reads as its end,
  a socket's ``SO_RCVTIMEO``/``SO_SNDTIMEO`` ends the wait), so only the call itself gives
  ``os``'s answer.
- ``eventfd_write``: a blocking eventfd (it waits while the counter is full).
- ``lockf``: ``F_LOCK``, which waits for the lock.
- ``open``: a FIFO opened for reading or writing only, or a character device other than a
  memory device, ``/dev/tty``, ``/dev/console``, ``/dev/ptmx`` or a pty (a serial line may
  wait for its carrier), without ``O_NONBLOCK``. This one looks the path up, which may block, so
  it is checked on the filesystem worker, which then hands the call over (see
  :class:`aos._async._workers.HandOver`).

Everything else (regular files, ``O_NONBLOCK`` fds) runs in the filesystem pool, where ``os``
returns or raises at once. Arguments that ``os`` refuses are said not to wait, so that ``os``
raises its own error.
"""

from __future__ import annotations

import os
import stat
from pathlib import PurePath
from typing import Any, Final

from aos._async import _readiness
from aos._async._scandir import DirEntry

__all__ = ["eventfd_write_waits", "lockf_waits", "open_waits", "sendfile_waits", "splice_waits"]

# An open with one of these flags never waits: it opens no device or FIFO end (O_PATH,
# O_DIRECTORY, O_TMPFILE), or does not wait for it (O_NONBLOCK).
_NEVER_WAITS: Final = os.O_NONBLOCK | os.O_PATH | os.O_DIRECTORY
_CREATES: Final = os.O_CREAT | os.O_EXCL  # a new file, or EEXIST
_PLAIN_PATHS: Final = (str, bytes, PurePath, os.DirEntry, DirEntry)
# Character devices whose open never waits: memory devices (/dev/null, /dev/zero, /dev/urandom
# ...), /dev/tty, /dev/console and /dev/ptmx, and the Unix98 pty ends (/dev/pts/N).
_NEVER_WAITING_DEVICES: Final = frozenset({1, 5, *range(136, 144)})


def sendfile_waits(*args: Any, **kwargs: Any) -> bool:
    """``sendfile(out_fd, in_fd, offset, count)``: whether it may wait for good."""
    return _waits(_argument(args, kwargs, 0, "out_fd")) or _waits(
        _argument(args, kwargs, 1, "in_fd")
    )


def splice_waits(*args: Any, **kwargs: Any) -> bool:
    """``splice(src, dst, count, offset_src=None, offset_dst=None, flags=0)``: whether it may
    wait for good (``SPLICE_F_NONBLOCK`` leaves a socket side blocking, so it counts)."""
    return _waits(_argument(args, kwargs, 0, "src")) or _waits(_argument(args, kwargs, 1, "dst"))


def eventfd_write_waits(*args: Any, **kwargs: Any) -> bool:
    """``eventfd_write(fd, value)``: whether it may wait for good (a blocking eventfd)."""
    return _waits(_argument(args, kwargs, 0, "fd"))


def lockf_waits(*args: Any, **kwargs: Any) -> bool:
    """``lockf(fd, command, length)``: whether it waits for a lock (``F_LOCK``)."""
    command = _argument(args, kwargs, 1, "command")
    return type(command) is int and command == os.F_LOCK


def open_waits(*args: Any, **kwargs: Any) -> bool:
    """``open(path, flags, mode=0o777, *, dir_fd=None)``: whether it may wait for the other
    end of a FIFO, or for a device. It looks the path up, so it is made on a worker."""
    path = _argument(args, kwargs, 0, "path")
    flags = _argument(args, kwargs, 1, "flags")
    if type(flags) is not int or flags & _NEVER_WAITS or flags & _CREATES == _CREATES:
        return False
    if not isinstance(path, _PLAIN_PATHS):  # (another PathLike is asked for its path once,
        return False  # by os: it may not give the same twice)
    try:
        found = os.stat(
            path, dir_fd=kwargs.get("dir_fd"), follow_symlinks=not flags & os.O_NOFOLLOW
        )
    except (OSError, TypeError, ValueError, OverflowError):
        return False  # (os.open raises its own error, or creates the file)
    if stat.S_ISCHR(found.st_mode):
        return os.major(found.st_rdev) not in _NEVER_WAITING_DEVICES
    # O_RDWR never waits on Linux: it is the other end a FIFO's open waits for
    return stat.S_ISFIFO(found.st_mode) and flags & os.O_ACCMODE != os.O_RDWR


def _waits(fd: object) -> bool:
    """Whether ``fd`` is a blocking pipe, FIFO, socket or tty; ``False`` for anything else, or
    an fd that cannot be examined (``os`` then raises its own error, from the filesystem pool)."""
    if type(fd) is not int or not _readiness.is_pollable(fd):
        return False
    try:
        return os.get_blocking(fd)
    except OSError:
        return False


def _argument(args: tuple[Any, ...], kwargs: dict[str, Any], position: int, name: str) -> object:
    return args[position] if len(args) > position else kwargs.get(name)
