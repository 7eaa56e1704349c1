"""Async process management: spawning children and waiting for them.

Async here, because they can block:

- ``posix_spawn``, ``posix_spawnp``: a lone spawn runs inline, :func:`os.posix_spawn` on the loop
  thread (it holds the GIL throughout, about 0.2 ms for ``/bin/true``; a hop to a thread would
  add 0.1 ms to it). While other children are being spawned or awaited, the spawn is libc's own
  call through ``ctypes``, without the GIL, on a spawner thread
  (:mod:`aos._async._native_spawn`): the loop serves the other children meanwhile and spawns
  overlap (``benchmarks/results/spawn.md``). Arguments in forms that path does not convert go
  to :func:`os.posix_spawn` inline. A lone spawn is a scheduling point only as an inline answer
  is (:func:`aos._async._loop_slice.loop_work_point`): not after a wait for a child, which let
  the loop run. The route is chosen again after that point: of a burst of tasks that each
  spawn at once, only the first to get its turn spawns inline. A cancel before the spawn
  spawns nothing; one that lands while a spawner runs kills and reaps the child; once spawned,
  the pid reaches the caller.
  Two things differ on a spawner, as in any threaded C program: the child's parent is the
  spawner thread (``__WNOTHREAD`` waits of other threads do not see it), and ``posix_spawnp``
  searches ``PATH`` while the GIL is released (glibc reads it from the shared environment, so
  another thread changing ``os.environ`` at that moment races with it).
- ``waitid``, ``waitpid``, ``wait``, ``wait3``, ``wait4``: one child waited on for its exit is
  watched through a pidfd on the loop (no thread); any other wait uses a ``WAIT`` worker that
  peeks with ``WNOWAIT`` (see :mod:`aos._async._child_wait`). A cancel never reaps a child.
  ``__WNOTHREAD`` waits see the children of the loop's thread, as ``os`` sees the caller's.
  ``WNOHANG`` calls run inline.
- ``spawnl`` ... ``spawnvpe``: as ``os`` (exec semantics, ``PATH`` search as ``os.execvpe``), but
  started with the async ``posix_spawn`` above (same route) instead of ``fork``. ``P_NOWAIT``
  returns the pid; any other mode awaits the exit code. If the exec cannot happen, ``os`` returns a child that exits with 127:
  so does aos. A cancelled ``P_WAIT`` kills (``SIGKILL``) and reaps its child, whose pid the
  caller never had.
- ``system``: the very :func:`os.system` in a ``WAIT`` worker, so it behaves as ``system(3)``
  (including its process-wide ignoring of ``SIGINT``/``SIGQUIT`` while the command runs). A
  cancel returns at once; the command runs to its end and ``system(3)`` reaps it.

Passed through from :mod:`aos.blocking` (they never block): ``kill``, ``killpg``,
``pidfd_open``, ``waitstatus_to_exitcode``, ``times``, the ``W*`` helpers and constants, and the
``exec*``/``fork`` family.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import operator
import os
import signal
from collections.abc import Callable, Coroutine, Mapping
from typing import TYPE_CHECKING, Any, Final, ParamSpec, TypeAlias, TypeVar

import anyio

from aos import blocking
from aos._async import _completions, _engine
from aos._async._child_wait import (
    subject_of_pid,
    wait_for,
    waitid_options_of,
    waits_in_progress,
)
from aos._async._loop_slice import answered_now, loop_work_point
from aos._async._native_spawn import Prepared, prepare_call
from aos._async._offload import WAIT, home_in_aos, offload
from aos._async._refusal import refusing_as
from aos._async._workers import SPAWNERS, WAIT_LANE, Job, drop

if TYPE_CHECKING:
    import resource

    from _typeshed import StrOrBytesPath

    _ExecVArgs: TypeAlias = (
        tuple[StrOrBytesPath, ...]
        | list[bytes]
        | list[str]
        | list[os.PathLike[Any]]
        | list[bytes | str]
        | list[bytes | os.PathLike[Any]]
        | list[str | os.PathLike[Any]]
        | list[bytes | str | os.PathLike[Any]]
    )
    _ExecEnv: TypeAlias = Mapping[bytes, bytes | str] | Mapping[str, bytes | str]

__all__ = [
    "posix_spawn",
    "posix_spawnp",
    "spawnl",
    "spawnle",
    "spawnlp",
    "spawnlpe",
    "spawnv",
    "spawnve",
    "spawnvp",
    "spawnvpe",
    "system",
    "wait",
    "wait3",
    "wait4",
    "waitid",
    "waitpid",
]

P = ParamSpec("P")
T = TypeVar("T")

_EXEC_FAILED_EXIT = 127  # what the child of os.spawn* does when its exec fails
_SPAWN_KEYWORDS: Final = frozenset(
    ("file_actions", "setpgroup", "resetids", "setsid", "setsigmask", "setsigdef", "scheduler")
)  # os.posix_spawn's keyword-only parameters
_INHERITED: Final = object()  # spawnv's and spawnvp's environment: the process's own


def _spawns(fn: Callable[P, int], *, search_path: bool) -> Callable[P, Coroutine[Any, Any, int]]:
    """The async face of ``os.posix_spawn[p]``: ``os``'s own call on the loop thread, or, while
    other children are spawned or awaited, libc's on a spawner thread without the GIL."""

    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> int:
        path = args[0] if len(args) == 3 else None
        # (str and bytes first: an ABC's isinstance is a Python call, even when it says no)
        if (
            not isinstance(path, str | bytes)
            and isinstance(path, os.PathLike)
            and _SPAWN_KEYWORDS >= kwargs.keys()
        ):
            # Asked for its path once, as by os (which names it so), once the arguments bind.
            args = (os.fspath(path), *args[1:])  # type: ignore[assignment]
        channel = _completions.current()
        if not _others_in_flight():
            await loop_work_point(channel, watch=False)  # the wait that follows tells
            # Its turn may come after others began (a burst of tasks that each spawn): it joins
            # them on a spawner then; inline, each held the loop in turn (16 tasks: 6-10 ms).
            if not _others_in_flight():  # (no await after the spawn: the pid reaches the caller)
                return answered_now(channel, fn, *args, **kwargs)
        else:
            await channel.checkpoint_if_cancelled()  # (native cancels too)
        prepared = prepare_call(search_path, args, kwargs)
        if prepared is not None:
            return await _run_prepared(prepared)
        await loop_work_point(channel, watch=False)  # (in forms only os converts)
        return answered_now(channel, fn, *args, **kwargs)

    functools.update_wrapper(wrapper, fn)
    wrapper.__module__ = "aos"
    wrapper.__doc__ = (
        f"Like :func:`os.{fn.__name__}`, but async. A lone spawn runs on the loop thread, one "
        "among other children in flight on a spawner thread without the GIL; a cancel kills "
        "and reaps a child the caller would not receive."
    )
    return wrapper


def _others_in_flight() -> bool:
    """Whether other children are being spawned or awaited (then a spawn goes to a spawner)."""
    return not SPAWNERS.is_idle() or waits_in_progress() > 0


async def _run_prepared(prepared: Prepared) -> int:
    """Spawn on a spawner thread; a cancel waits for the spawn, then kills and reaps the child.
    A task destroyed with its closed loop cannot await: a worker reaps the child instead."""
    unreceived: list[int] = []
    destroyed = False

    def release(pid: int) -> None:  # the caller will not receive this child
        if destroyed or channel.loop_is_closed():  # it never will: the spawn outlived its loop
            _kill_and_reap_later(pid)
        else:
            unreceived.append(pid)

    try:
        channel = _completions.current()
        pid: int = await _engine.run_to_completion(prepared.run, (), {}, release, pool=SPAWNERS)
    except GeneratorExit:
        destroyed = True
        raise
    finally:
        prepared.discard()  # if it never ran (taken back, no thread could start)
        for orphan in unreceived:
            if destroyed:
                _kill_and_reap_later(orphan)
                continue
            with anyio.CancelScope(shield=True):
                await _kill_and_reap(orphan)
    return pid


posix_spawn = _spawns(blocking.posix_spawn, search_path=False)
posix_spawnp = _spawns(blocking.posix_spawnp, search_path=True)

system = offload(blocking.system, WAIT)


@refusing_as(os.waitpid)
async def waitpid(pid: int, options: int, /) -> tuple[int, int]:
    """Like :func:`os.waitpid`, but async. A cancel returns at once and reaps nothing."""
    pid, options = operator.index(pid), operator.index(options)  # os's TypeError, first
    if options & os.WNOHANG:
        return await _inline(os.waitpid, pid, options)

    def attempt() -> tuple[int, int] | None:
        result = os.waitpid(pid, options | os.WNOHANG)
        return result if result[0] else None

    return await wait_for(attempt, subject_of_pid(pid), waitid_options_of(options))


@refusing_as(os.wait)
async def wait() -> tuple[int, int]:
    """Like :func:`os.wait`, but async. A cancel returns at once and reaps nothing."""
    return await waitpid(-1, 0)


@refusing_as(os.wait4)
async def wait4(pid: int, options: int) -> tuple[int, int, resource.struct_rusage]:
    """Like :func:`os.wait4`, but async. A cancel returns at once and reaps nothing."""
    pid, options = operator.index(pid), operator.index(options)  # os's TypeError, first
    if options & os.WNOHANG:
        return await _inline(os.wait4, pid, options)

    def attempt() -> tuple[int, int, resource.struct_rusage] | None:
        result = os.wait4(pid, options | os.WNOHANG)
        return result if result[0] else None

    return await wait_for(attempt, subject_of_pid(pid), waitid_options_of(options))


@refusing_as(os.wait3)
async def wait3(options: int) -> tuple[int, int, resource.struct_rusage]:
    """Like :func:`os.wait3`, but async. A cancel returns at once and reaps nothing."""
    options = operator.index(options)  # os's TypeError, first
    if options & os.WNOHANG:
        return await _inline(os.wait3, options)

    def attempt() -> tuple[int, int, resource.struct_rusage] | None:
        result = os.wait3(options | os.WNOHANG)
        return result if result[0] else None

    return await wait_for(attempt, (os.P_ALL, 0), waitid_options_of(options))


@refusing_as(os.waitid)
async def waitid(idtype: int, id: int, options: int, /) -> os.waitid_result | None:
    """Like :func:`os.waitid`, but async. A cancel returns at once and reaps nothing."""
    idtype, id, options = operator.index(idtype), operator.index(id), operator.index(options)
    if options & os.WNOHANG or _is_nonblocking_pidfd(idtype, id):
        return await _inline(os.waitid, idtype, id, options)

    def attempt() -> os.waitid_result | None:
        return os.waitid(idtype, id, options | os.WNOHANG)

    return await wait_for(attempt, (idtype, id), options)


def _is_nonblocking_pidfd(idtype: int, id: int) -> bool:
    """Whether ``waitid`` on this subject returns at once: a pidfd opened ``O_NONBLOCK`` (the
    kernel then says ``EAGAIN`` for a running child), or an fd that ``os`` refuses at once."""
    if idtype != getattr(os, "P_PIDFD", None):
        return False
    try:
        return not os.get_blocking(id)
    except (OSError, OverflowError):  # not an open fd: os.waitid raises its error at once
        return True


async def _inline(fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
    """Run a call that cannot block on the loop thread, after a checkpoint, with no await after
    it: a native asyncio cancel at a yield after a reap lost the status."""
    await _completions.current().checkpoint()
    return fn(*args, **kwargs)


# The spawn* family, as os.py writes it over fork and exec*, but over posix_spawn.


async def spawnv(mode: int, file: StrOrBytesPath, args: _ExecVArgs) -> int:
    """Like :func:`os.spawnv`, but async. A cancelled ``P_WAIT`` kills and reaps its child."""
    return await _spawn(mode, file, args, _INHERITED, search_path=False)


async def spawnve(mode: int, file: StrOrBytesPath, args: _ExecVArgs, env: _ExecEnv) -> int:
    """Like :func:`os.spawnve`, but async. A cancelled ``P_WAIT`` kills and reaps its child."""
    return await _spawn(mode, file, args, env, search_path=False)


async def spawnvp(mode: int, file: StrOrBytesPath, args: _ExecVArgs) -> int:
    """Like :func:`os.spawnvp`, but async. A cancelled ``P_WAIT`` kills and reaps its child."""
    return await _spawn(mode, file, args, _INHERITED, search_path=True)


async def spawnvpe(mode: int, file: StrOrBytesPath, args: _ExecVArgs, env: _ExecEnv) -> int:
    """Like :func:`os.spawnvpe`, but async. A cancelled ``P_WAIT`` kills and reaps its child."""
    return await _spawn(mode, file, args, env, search_path=True)


async def spawnl(mode: int, file: StrOrBytesPath, *args: StrOrBytesPath) -> int:
    """Like :func:`os.spawnl`, but async. A cancelled ``P_WAIT`` kills and reaps its child."""
    return await spawnv(mode, file, args)


async def spawnle(mode: int, file: StrOrBytesPath, *args: Any) -> int:
    """Like :func:`os.spawnle`, but async (the last argument is the environment)."""
    env = args[-1]
    return await spawnve(mode, file, args[:-1], env)


async def spawnlp(mode: int, file: StrOrBytesPath, *args: StrOrBytesPath) -> int:
    """Like :func:`os.spawnlp`, but async. A cancelled ``P_WAIT`` kills and reaps its child."""
    return await spawnvp(mode, file, args)


async def spawnlpe(mode: int, file: StrOrBytesPath, *args: Any) -> int:
    """Like :func:`os.spawnlpe`, but async (the last argument is the environment)."""
    env = args[-1]
    return await spawnvpe(mode, file, args[:-1], env)


async def _spawn(mode: int, file: StrOrBytesPath, args: Any, env: Any, *, search_path: bool) -> int:
    """``os._spawnvef``: the same checks, then the child, then its pid or its exit code."""
    if not isinstance(args, tuple | list):
        raise TypeError("argv must be a tuple or a list")
    if not args or not args[0]:
        raise ValueError("argv first element cannot be empty")
    pid = await _start_as_exec_would(file, args, env, search_path=search_path)
    if mode == os.P_NOWAIT:
        return pid
    try:
        while True:
            _, status = await waitpid(pid, 0)
            if not os.WIFSTOPPED(status):
                return os.waitstatus_to_exitcode(status)
    except Exception:  # the wait's own error: the child's state is not known, it is left be
        raise
    except BaseException as error:  # nobody else knows of the child: it must not be left
        if isinstance(error, GeneratorExit) or not isinstance(
            error, anyio.get_cancelled_exc_class()
        ):  # the task destroyed with its closed loop (no loop to ask), or an interrupt
            _kill_and_reap_later(pid)
            raise
        with anyio.CancelScope(shield=True):
            await _kill_and_reap(pid)
        raise


async def _start_as_exec_would(
    file: StrOrBytesPath, args: Any, env: Any, *, search_path: bool
) -> int:
    """Start the child that ``exec*`` in a forked child would become, or one that exits 127.

    Each attempt is an async :func:`posix_spawn`, so it takes the same route (inline, or on a
    spawner while other children are in flight) and a cancel leaves no child behind.
    """
    environ = _process_environment() if env is _INHERITED else env
    try:
        if env is None:  # exec* refuses it in the child (posix_spawn takes it from 3.13)
            raise TypeError("env must be a mapping object")
        if not search_path or os.path.dirname(file):
            return await posix_spawn(file, args, environ)
        # os._execvpe: try every directory of the PATH the child would see, in order.
        name = os.fsencode(file)
        for directory in os.get_exec_path(None if env is _INHERITED else env):
            try:
                return await posix_spawn(os.path.join(os.fsencode(directory), name), args, environ)
            except OSError:
                continue
    except Exception:  # anything exec* would raise in the forked child: it would _exit(127)
        pass
    return await posix_spawn("/bin/sh", ["sh", "-c", f"exit {_EXEC_FAILED_EXIT}"], {})


def _process_environment() -> dict[bytes, bytes]:
    """The environment ``exec*`` hands on: libc's ``environ``, which ``os.putenv`` and
    ``os.unsetenv`` change without ``os.environ`` seeing it (the first of a name twice, as
    ``getenv`` finds it; an entry without a name, which ``posix_spawn`` refuses, is left out:
    ``exec*`` would hand both on)."""
    environment: dict[bytes, bytes] = {}
    entries = _ENVIRON
    i = 0
    while (entry := entries[i]) is not None:
        name, equals, value = entry.partition(b"=")
        if equals and name:
            environment.setdefault(name, value)
        i += 1
    return environment


_ENVIRON: Final = ctypes.POINTER(ctypes.c_char_p).in_dll(ctypes.CDLL(None), "environ")
"""libc's ``environ``, read anew at each index (``setenv`` may move it)."""


async def _kill_and_reap(pid: int) -> None:
    """End a child that nobody else knows of: SIGKILL, then reap it (pidfd, no thread).

    Interrupted (an anyio shield does not stop a second native asyncio cancel, nor a
    ``KeyboardInterrupt``), it leaves the reaping to a ``WAIT`` worker rather than a zombie.
    """
    _kill(pid)
    try:
        await waitpid(pid, 0)
    except ChildProcessError:
        pass
    except BaseException:
        _reap_later(pid)
        raise


def _kill_and_reap_later(pid: int) -> None:
    """End a child that nobody else knows of without awaiting: SIGKILL, then a ``WAIT`` worker
    reaps it."""
    _kill(pid)
    _reap_later(pid)


def _kill(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):  # (it exited: a zombie, still ours)
        os.kill(pid, signal.SIGKILL)  # not reaped yet, so the pid cannot belong to anyone else


def _reap_later(pid: int) -> None:
    WAIT_LANE.submit(Job(_reap, (pid,), {}, drop))


def _reap(pid: int) -> None:
    """Reap a killed child (on a worker: it may take a moment to die)."""
    try:
        os.waitpid(pid, 0)
    except ChildProcessError:  # reaped meanwhile
        pass


home_in_aos(waitpid, wait, wait3, wait4, waitid)
home_in_aos(spawnv, spawnve, spawnvp, spawnvpe, spawnl, spawnle, spawnlp, spawnlpe)
