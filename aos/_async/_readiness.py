"""Wait on the event loop until an fd is readable or writable: no thread, cancellable at once.

Thin layer over :func:`anyio.wait_readable` / :func:`anyio.wait_writable` (anyio >= 4.7 takes a
plain fd) that also lets several tasks wait on the same fd, as several threads may block in
``os.read`` on the same pipe: a second waiter waits on a private ``dup`` of the fd.

uvloop (libuv) sets ``O_NONBLOCK`` on every fd it watches, and that flag belongs to the open
file description, shared with the caller and with other processes. So on uvloop a blocking fd
is watched through a private epoll fd instead, and its flags never change.
"""

from __future__ import annotations

import asyncio
import os
import select
import stat
from collections.abc import Awaitable, Callable

import anyio


async def wait_readable(fd: int) -> None:
    """Return once ``fd`` is readable (data, end of file, a hang-up or an error)."""
    await _wait(anyio.wait_readable, fd, select.EPOLLIN)


async def wait_writable(fd: int) -> None:
    """Return once ``fd`` is writable (room to write, or an error such as a closed reader)."""
    await _wait(anyio.wait_writable, fd, select.EPOLLOUT)


async def _wait(wait: Callable[[int], Awaitable[None]], fd: int, events: int) -> None:
    if _loop_sets_nonblocking() and os.get_blocking(fd):
        with select.epoll(1) as relay:  # readable when fd has the events
            relay.register(fd, events)
            await anyio.wait_readable(relay.fileno())
        return
    try:
        await wait(fd)
    except anyio.BusyResourceError:
        twin = os.dup(fd)  # the loop registers fds by number: a twin is a second registration
        try:
            await wait(twin)
        finally:
            os.close(twin)


def _loop_sets_nonblocking() -> bool:
    """Whether the running loop is uvloop's, which makes every fd it watches ``O_NONBLOCK``."""
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:  # trio
        return False
    return type(loop).__module__.startswith("uvloop")


def is_pollable(fd: int) -> bool:
    """Whether ``fd`` is a pipe, FIFO, socket, tty or kernel object (eventfd, timerfd, signalfd,
    inotify, pidfd: an anonymous inode, no file type): something whose readiness the loop can
    watch, and whose read may wait for it.

    Regular files, directories, block devices and other character devices (``/dev/null``,
    ``/dev/urandom``) are not: epoll refuses some of them and calls them all always ready.
    ``False`` for an fd that cannot be examined, so that the caller's plain ``os`` call raises
    the exact error.
    """
    try:
        mode = os.fstat(fd).st_mode
    except (OSError, TypeError, ValueError, OverflowError):
        return False
    if stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode) or not stat.S_IFMT(mode):
        return True
    return stat.S_ISCHR(mode) and os.isatty(fd)
