"""How the async wait family waits for a child without losing its status.

Every wait is a loop of two steps: a non-blocking *attempt* (the very ``os`` call with
``WNOHANG`` added, run inline: it returns at once, and raises exactly what ``os`` raises), and,
when it finds nothing, a *wait until something may be there* that reaps nothing:

- one child (``P_PID``, ``P_PIDFD``, ``pid > 0``) waited on for its exit: the loop watches a
  pidfd, which becomes readable when the child exits. No thread.
- anything else (``P_ALL``, ``P_PGID``, ``pid <= 0``, and stops or continues, which a pidfd does
  not signal): a worker in the ``WAIT`` lane blocks in ``waitid(..., WNOWAIT)``, which reports a
  child without reaping it.

A cancel can only land in the second step, which reaps nothing, so a cancelled wait never
consumes a status that its caller then never sees.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Final, TypeVar

import anyio.lowlevel

from aos._async import _completions, _readiness
from aos._async._offload import WAIT, call

R = TypeVar("R")

# Linux waitpid/waitid flags that os does not export; waitid accepts them as waitpid does.
_WNOTHREAD: Final = 0x20000000
_WALL: Final = 0x40000000
_WCLONE: Final = 0x80000000
_SHARED_FLAGS: Final = _WNOTHREAD | _WALL | _WCLONE
_NOT_EXIT: Final = os.WSTOPPED | os.WCONTINUED  # WUNTRACED == WSTOPPED on Linux

# A subject of a wait: (idtype, id) as waitid takes them.
Subject = tuple[int, int]


def subject_of_pid(pid: int) -> Subject:
    """The waitid subject that matches ``waitpid(pid, ...)``."""
    if pid > 0:
        return (os.P_PID, pid)
    if pid == -1:
        return (os.P_ALL, 0)
    return (os.P_PGID, os.getpgid(0) if pid == 0 else -pid)


def waitid_options_of(waitpid_options: int) -> int:
    """The waitid options that report what ``waitpid(..., waitpid_options)`` reports."""
    options = os.WEXITED | (waitpid_options & _SHARED_FLAGS)
    if waitpid_options & os.WUNTRACED:
        options |= os.WSTOPPED
    if waitpid_options & os.WCONTINUED:
        options |= os.WCONTINUED
    return options


async def wait_for(attempt: Callable[[], R | None], subject: Subject, waitid_options: int) -> R:
    """Call ``attempt`` until it returns a result; between attempts, wait for ``subject``.

    ``attempt`` is the non-blocking os call; ``waitid_options`` the waitid options that report
    the same state changes as it does.
    """
    await anyio.lowlevel.checkpoint_if_cancelled()
    result = attempt()
    if result is not None:
        await (
            anyio.lowlevel.cancel_shielded_checkpoint()
        )  # a scheduling point that keeps the status
        return result
    global _waits
    _waits += 1
    try:
        idtype, ident = subject
        if not waitid_options & _NOT_EXIT:
            result = await _wait_on_pidfd(attempt, idtype, ident)
            if result is not None:
                return result
        while True:
            # Raises ChildProcessError when nothing can ever match, as the os call would.
            await call(WAIT, None, os.waitid, idtype, ident, waitid_options | os.WNOWAIT)
            result = attempt()
            if result is not None:
                return result
    finally:
        _waits -= 1


_waits = 0  # waits in progress in this process (any loop)


def waits_in_progress() -> int:
    """How many async waits for a child are waiting now, in this process."""
    return _waits


def _forget_waits_after_fork() -> None:
    global _waits
    _waits = 0


os.register_at_fork(after_in_child=_forget_waits_after_fork)


async def _wait_on_pidfd(attempt: Callable[[], R | None], idtype: int, ident: int) -> R | None:
    """Wait for one child's exit on the loop; ``None`` when a pidfd cannot tell (use a worker)."""
    try:
        if idtype == os.P_PID:
            pidfd = os.pidfd_open(ident)
            wait_readable = _completions.current().wait_readable  # ours alone: the fastest way
        elif idtype == getattr(os, "P_PIDFD", None):
            pidfd = os.dup(ident)  # the caller's fd may be registered with the loop already
            wait_readable = _readiness.wait_readable  # keeps the caller's O_NONBLOCK (uvloop)
        else:
            return None
    except (OSError, AttributeError):  # no pidfds here, out of fds: the worker still works
        return None
    try:
        await wait_readable(pidfd)
    except OSError:  # the loop cannot watch it (out of fds, say): the worker still works
        return None
    finally:
        os.close(pidfd)
    # Readable means exited; a None here (a leader whose threads live on) goes to the worker.
    return attempt()
