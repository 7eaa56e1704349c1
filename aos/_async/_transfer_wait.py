"""Whether a ``splice`` or ``sendfile`` may wait for good: then it runs in the wait lane.

Such a call waits for data or room for as long as it takes when a side is a blocking pipe,
FIFO, socket or tty (a splice from an empty pipe). In the filesystem pool it held a worker that
filesystem calls need: with two such calls, every ``aos.access`` of the process waited. In the
wait lane it holds none. It runs as ``MUTATE`` there: a cancel waits for it, as for a write
that has begun, since part of the data may have moved.

The loop does not wait for readiness first: what the kernel's call waits for is not always
what ``epoll`` reports (a listening socket fails at once, a FIFO that never had a writer reads
as its end, a socket's ``SO_RCVTIMEO``/``SO_SNDTIMEO`` ends the wait), so only the call itself
gives ``os``'s answer. Everything else (regular files, ``O_NONBLOCK`` fds) runs in the
filesystem pool, where ``os`` returns or raises at once.
"""

from __future__ import annotations

import os
from typing import Any

from aos._async import _readiness

__all__ = ["sendfile_waits", "splice_waits"]


def sendfile_waits(*args: Any, **kwargs: Any) -> bool:
    """``sendfile(out_fd, in_fd, offset, count)``: whether it may wait for good."""
    return _waits(_argument(args, kwargs, 0, "out_fd")) or _waits(
        _argument(args, kwargs, 1, "in_fd")
    )


def splice_waits(*args: Any, **kwargs: Any) -> bool:
    """``splice(src, dst, count, offset_src=None, offset_dst=None, flags=0)``: whether it may
    wait for good (``SPLICE_F_NONBLOCK`` leaves a socket side blocking, so it counts)."""
    return _waits(_argument(args, kwargs, 0, "src")) or _waits(_argument(args, kwargs, 1, "dst"))


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
