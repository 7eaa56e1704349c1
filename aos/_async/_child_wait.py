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

import copy
import dataclasses
import os
import threading
from collections.abc import Callable
from typing import Any, Final, TypeVar

import anyio

from aos._async import _completions, _readiness
from aos._async._procfs import fdinfo_lines
from aos._async._workers import WAIT_LANE, Job, Lane, drop

R = TypeVar("R")

# Linux waitpid/waitid flags that os does not export; waitid accepts them as waitpid does.
_WNOTHREAD: Final = 0x20000000
_WALL: Final = 0x40000000
_WCLONE: Final = 0x80000000
_SHARED_FLAGS: Final = _WNOTHREAD | _WALL | _WCLONE
_NOT_EXIT: Final = os.WSTOPPED | os.WCONTINUED  # WUNTRACED == WSTOPPED on Linux
_P_PIDFD: Final = getattr(os, "P_PIDFD", None)
_FIRST_PAUSE: Final = 0.001  # seconds between looks while another thread's child is reported
_LAST_PAUSE: Final = 0.1

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
    return options - (1 << 32) if options >= 1 << 31 else options  # (a C int: __WCLONE < 0)


async def wait_for(attempt: Callable[[], R | None], subject: Subject, waitid_options: int) -> R:
    """Call ``attempt`` until it returns a result; between attempts, wait for ``subject``.

    ``attempt`` is the non-blocking os call; ``waitid_options`` the waitid options that report
    the same state changes as it does.
    """
    # No await after a reap: a native asyncio cancel (which no anyio shield holds back) at a
    # yield after it lost the status it reaped. So the scheduling point comes before, where a
    # state is there to reap; where none is, the wait for one below yields (and a yield first
    # cost every wait for a running child a loop iteration), with no attempt first (nothing
    # to reap: a syscall less).
    channel = _completions.current()
    await channel.checkpoint_if_cancelled()
    if _reported(subject, waitid_options):
        await channel.checkpoint()
        result = attempt()
        if result is not None:
            return result
    global _waits
    _waits += 1
    try:
        idtype, ident = subject
        if not waitid_options & _NOT_EXIT:
            result = await _wait_on_pidfd(attempt, idtype, ident)
            if result is not None:
                return result
        # __WNOTHREAD: children of the loop's thread only, which the worker's own call would
        # never see (it has none): it looks at the process's, and the attempt picks ours.
        peek = (idtype, ident, waitid_options & ~_WNOTHREAD | os.WNOWAIT)
        lane = _shared_lane(idtype, ident)
        pause = _FIRST_PAUSE
        while True:
            # (Where nothing can ever match, the attempt raises ChildProcessError, as os would.)
            await _completions.current().run_abandonable(lane, os.waitid, peek, {})
            result = attempt()
            if result is not None:
                return result
            if waitid_options & _WNOTHREAD:  # another thread's child is reported until reaped:
                await anyio.sleep(pause)  # look again now and then, not at once for good
                pause = min(2 * pause, _LAST_PAUSE)
    finally:
        _waits -= 1


def _shared_lane(idtype: int, ident: int) -> Lane:
    """Where the ``waitid(WNOWAIT)`` calls of a wait on this subject go. A pidfd's number may
    name another child once it is closed, while a call in flight watches the child it named
    when it began: waits on a pidfd share a call only with those on the same child."""
    if idtype != _P_PIDFD:
        return SHARED_WAITS
    process = _process_of_pidfd(ident)
    return WAIT_LANE if process is None else SharedFor(SHARED_WAITS, process)


def _process_of_pidfd(fd: int) -> int | None:
    """The pid a pidfd refers to (its fdinfo's ``Pid:``), or ``None`` where none is told (not a
    pidfd, or one of a process already reaped: ``os`` answers such a wait at once)."""
    for line in fdinfo_lines(fd) or ():
        if line.startswith(b"Pid:"):
            pid = int(line.split()[1])
            return pid if pid > 0 else None
    return None


def _reported(subject: Subject, waitid_options: int) -> bool:
    """Whether a state change of ``subject`` waits to be reaped now (or the attempt will raise)."""
    try:
        return os.waitid(*subject, waitid_options | os.WNOHANG | os.WNOWAIT) is not None
    except (OSError, OverflowError):  # (ChildProcessError, or a subject no waitid can name,
        return True  # as waitpid(-2**31): the attempt raises os's own error)


class SharedWaits:
    """The lane of the ``waitid(..., WNOWAIT)`` calls: one thread for each subject and options,
    however many tasks wait on them, in any loop; each of them gets its outcome.

    Nothing stops a ``waitid`` that has begun: a cancelled one runs on until a child of its
    subject changes state. With a thread for each call, a task that waits with a timeout, in a
    loop, left a thread more at each timeout for as long as the child ran (300 threads for 300
    timeouts); now such a wait joins the call still in flight."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._waiting: dict[tuple[Any, ...], list[Job]] = {}  # by the waitid arguments

    def submit(self, job: Job, /) -> None:
        """Join ``job`` (a ``waitid`` with ``WNOWAIT``) to the call in flight with its arguments,
        or start that call in the wait lane. Its value is ``waitid``'s, or ``None`` where no
        child matched (the caller attempts again, and gets ``os``'s error if still so)."""
        self.submit_as(job, job.args)

    def submit_as(self, job: Job, key: tuple[Any, ...]) -> None:
        """:meth:`submit`, shared with the calls of the same ``key`` (the arguments, or more)."""
        with self._lock:
            joined = self._waiting.get(key)
            if joined is not None:  # (those who gave up waiting are let go now: not kept for
                given_up = [other for other in joined if other.abandoned]  # as long as it runs)
                joined[:] = [other for other in joined if not other.abandoned]
                joined.append(job)
            else:
                self._waiting[key] = [job]
            job.taken = True  # (the call in flight finishes it)
        if joined is not None:
            for other in given_up:
                other.complete(None, None)
            return
        try:
            WAIT_LANE.submit(Job(self._wait, (job.fn, job.args, key), {}, drop))
        except BaseException as error:  # no thread could start: those who joined get the error
            with self._lock:
                others = self._waiting.pop(key)[1:]
            job.taken = False
            for other in others:
                other.complete(None, copy.copy(error))
            raise

    def _wait(self, peek: Callable[..., Any], args: tuple[Any, ...], key: tuple[Any, ...]) -> None:
        value: Any = None
        error: BaseException | None = None
        try:
            value = peek(*args)
        except ChildProcessError:
            # No child matched when the call began; a wait that joined later may have one
            # now. Each attempts again on its loop, which raises os's error if still so.
            pass
        except BaseException as exc:
            error = exc.with_traceback(None)
        with self._lock:
            jobs = self._waiting.pop(key)
        for job in jobs:  # each raise gets an error of its own: a traceback is per raise
            job.complete(value, None if error is None else copy.copy(error))

    def after_fork_in_child(self) -> None:
        """Forget the parent's calls: none of their threads exists in the child."""
        self._lock = threading.Lock()
        self._waiting = {}


SHARED_WAITS: Final = SharedWaits()


@dataclasses.dataclass(frozen=True)
class SharedFor:
    """The shared lane, for the waits on one process that their arguments alone do not name (a
    pidfd's number): the calls are shared by arguments and process."""

    waits: SharedWaits
    process: int

    def submit(self, job: Job, /) -> None:
        self.waits.submit_as(job, (*job.args, self.process))


_waits = 0  # waits in progress in this process (any loop)


def waits_in_progress() -> int:
    """How many async waits for a child are waiting now, in this process."""
    return _waits


def _forget_waits_after_fork() -> None:
    global _waits
    _waits = 0
    SHARED_WAITS.after_fork_in_child()


os.register_at_fork(after_in_child=_forget_waits_after_fork)


async def _wait_on_pidfd(attempt: Callable[[], R | None], idtype: int, ident: int) -> R | None:
    """Wait for one child's exit on the loop; ``None`` when a pidfd cannot tell (use a worker)."""
    channel = _completions.current()  # (anew: the checks before may have let the loop end)
    try:
        if idtype == os.P_PID:
            pidfd = os.pidfd_open(ident)
            wait_readable = channel.wait_readable  # ours alone: the fastest way
        elif idtype == _P_PIDFD:
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
    channel.turn_seen = True  # the task waited, so the loop ran: a lone spawn next need not yield
    # Readable means exited; a None here (a leader whose threads live on) goes to the worker.
    return attempt()
