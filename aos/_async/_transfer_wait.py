"""Whether a ``splice`` or ``sendfile`` may wait for good, and the wait for it on the loop.

Such a call waits for data or room for as long as it takes when a side is a blocking pipe,
FIFO, socket or tty (a splice from an empty pipe). In the filesystem pool it held a worker that
filesystem calls need (with two such calls, every ``aos.access`` of the process waited), and
its cancel waited with it. So the loop first waits for the source to be readable and the
destination writable (no thread; a cancel lands at once), and the call then runs in the wait
lane, as ``MUTATE``: once begun, it completes before a cancel is raised, as a write does. A
reader that takes the data between the readiness and the call, or a blocking socket with less
room than the call sends, makes that call wait there, in the wait lane. Everything else
(regular files, ``O_NONBLOCK`` fds, pipes under ``SPLICE_F_NONBLOCK``), where ``os`` returns or
raises at once, runs in the filesystem pool. Arguments that ``os`` refuses at once (a bad fd,
an offset on a pipe) skip the wait, so the error comes as soon as ``os`` gives it.
"""

from __future__ import annotations

import os
import stat
import sys
from typing import Any, Final

from aos._async import _readiness

__all__ = ["sendfile_ready", "splice_ready"]

_SPLICE_F_NONBLOCK: Final = getattr(os, "SPLICE_F_NONBLOCK", 0)
_SPLICE_FLAGS: Final = 0xF  # MOVE, NONBLOCK, MORE, GIFT: the kernel refuses others (EINVAL)


async def sendfile_ready(*args: Any, **kwargs: Any) -> bool:
    """``sendfile(out_fd, in_fd, offset, count)``: wait until it need not; whether it may wait
    all the same (then it belongs in the wait lane)."""
    out_fd, in_fd = _argument(args, kwargs, 0, "out_fd"), _argument(args, kwargs, 1, "in_fd")
    reader, writer = _waiting_fd(in_fd, pipes_wait=True), _waiting_fd(out_fd, pipes_wait=True)
    offset, count = _argument(args, kwargs, 2, "offset"), _argument(args, kwargs, 3, "count")
    plain = reader is None and _mode(in_fd) & 0o170000 == stat.S_IFREG and _is_count(count)
    if plain and writer is not None and (offset is None or type(offset) is int):
        await _readiness.wait_writable(writer)
    return reader is not None or writer is not None


async def splice_ready(*args: Any, **kwargs: Any) -> bool:
    """``splice(src, dst, count, offset_src=None, offset_dst=None, flags=0)``: as
    :func:`sendfile_ready`."""
    src, dst = _argument(args, kwargs, 0, "src"), _argument(args, kwargs, 1, "dst")
    flags = _argument(args, kwargs, 5, "flags", default=0)
    pipes_wait = not (type(flags) is int and flags & _SPLICE_F_NONBLOCK)
    reader, writer = _waiting_fd(src, pipes_wait), _waiting_fd(dst, pipes_wait)
    offsets = _argument(args, kwargs, 3, "offset_src"), _argument(args, kwargs, 4, "offset_dst")
    if _splice_is_plain(src, dst, _argument(args, kwargs, 2, "count"), offsets, flags):
        if reader is not None:
            await _readiness.wait_readable(reader)
        if writer is not None:
            await _readiness.wait_writable(writer)
    return reader is not None or writer is not None


def _splice_is_plain(
    src: object, dst: object, count: object, offsets: tuple[object, object], flags: object
) -> bool:
    """Whether ``os.splice`` would only wait with these arguments, not refuse them at once (two
    open fds, a pipe among them, no offset for a pipe, a count, known flags): only then may the
    loop wait for readiness before it, else it would hold back ``os``'s error."""
    modes = _mode(src), _mode(dst)
    if not all(modes) or src == dst or not _is_count(count):
        return False
    if type(flags) is not int or flags & ~_SPLICE_FLAGS:
        return False
    pipes = [stat.S_ISFIFO(mode) for mode in modes]
    return any(pipes) and all(
        offset is None for offset, pipe in zip(offsets, pipes, strict=True) if pipe
    )


def _is_count(count: object) -> bool:
    return type(count) is int and 0 < count <= sys.maxsize


def _mode(fd: object) -> int:
    """The file mode of an open ``fd``; 0 for anything else."""
    if type(fd) is not int:
        return 0
    try:
        return os.fstat(fd).st_mode
    except (OSError, OverflowError):
        return 0


def _waiting_fd(fd: object, pipes_wait: bool) -> int | None:
    """``fd`` if it is a blocking pipe, FIFO, socket or tty (with ``pipes_wait`` false, not a
    pipe or FIFO); ``None`` for anything else, or an fd that cannot be examined."""
    if type(fd) is not int or not _readiness.is_pollable(fd):
        return None
    try:
        if os.get_blocking(fd) and (pipes_wait or not stat.S_ISFIFO(os.fstat(fd).st_mode)):
            return fd
    except OSError:
        pass
    return None


def _argument(
    args: tuple[Any, ...], kwargs: dict[str, Any], position: int, name: str, default: object = None
) -> object:
    return args[position] if len(args) > position else kwargs.get(name, default)
