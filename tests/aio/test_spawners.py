"""Spawning on a spawner thread without the GIL, the route aos takes while children are in flight.

A spawn goes inline (``os.posix_spawn`` on the loop thread) when no other child is being spawned
or awaited, and to a spawner thread otherwise. The tests here hold a child in an async wait
(:func:`children_in_flight`) so that spawns take the spawner route, check that they did (the
kernel lists each child under the thread that spawned it), and hold that route to ``os``'s
results, errors and attributes.
"""

from __future__ import annotations

import contextlib
import functools
import os
import signal
import sys
import threading
import warnings
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest

import aos
from aos._async import _loop_slice, _native_spawn, _workers
from aos._async._child_wait import waits_in_progress
from tests.aio._helpers import off_loop, run_child
from tests.aio.test_process import (
    ENV,
    PY,
    assert_spawn_errors_are_those_of_os,
    python,
)

pytestmark = pytest.mark.anyio


@asynccontextmanager
async def children_in_flight() -> AsyncIterator[None]:
    """A child (``cat`` on a pipe) awaited by a task for the length of the block."""
    r, w = os.pipe()
    reaped: list[tuple[int, int]] = []

    async def wait(pid: int) -> None:
        reaped.append(await aos.waitpid(pid, 0))

    try:
        pid = await aos.posix_spawnp(
            "cat", ["cat"], ENV, file_actions=[(os.POSIX_SPAWN_DUP2, r, 0)]
        )
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(wait, pid)
                while not waits_in_progress():  # noqa: ASYNC110 - aos's counter, no event
                    await anyio.sleep(0.001)
                try:
                    yield
                finally:
                    os.close(w)
                    w = -1
        finally:
            if not reaped:  # the block failed, and its error cancelled the wait
                with anyio.CancelScope(shield=True):
                    await aos.waitpid(pid, 0)
    finally:
        os.close(r)
        if w != -1:
            os.close(w)


def spawning_thread(pid: int) -> int | None:
    """The native id of the thread of this process that spawned ``pid`` (alive, not reaped)."""
    for tid in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{tid}/children") as f:
                if str(pid) in f.read().split():
                    return int(tid)
        except FileNotFoundError:
            continue
    return None


async def spawn_held(**kwargs: Any) -> tuple[int, int | None, int]:
    """Spawn a child that waits for a pipe to close: (pid, spawning thread, pipe's write end)."""
    r, w = os.pipe()
    try:
        actions = [(os.POSIX_SPAWN_DUP2, r, 0), *kwargs.pop("file_actions", [])]
        pid = await aos.posix_spawnp("cat", ["cat"], ENV, file_actions=actions, **kwargs)
    except BaseException:
        os.close(w)
        raise
    finally:
        os.close(r)
    return pid, await off_loop(spawning_thread, pid), w


async def test_a_lone_spawn_is_inline_and_one_among_children_goes_to_a_spawner() -> None:
    loop_thread = threading.get_native_id()
    pid, parent, w = await spawn_held()
    os.close(w)
    assert await aos.waitpid(pid, 0) == (pid, 0)
    assert parent == loop_thread
    async with children_in_flight():
        pid, parent, w = await spawn_held()
        os.close(w)
        assert await aos.waitpid(pid, 0) == (pid, 0)
    spawners = {t.native_id for t in threading.enumerate() if t.name == "aos-spawn"}
    assert parent in spawners


async def test_of_a_burst_of_spawns_only_the_first_goes_inline(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Tasks that each spawn at once, no child in flight: each waits for its turn first. The
    first to get it spawns inline; the others get theirs once that child is awaited, and go to a
    spawner (inline, each held the loop in turn)."""
    monkeypatch.setattr(_loop_slice, "INLINE_SLICE", 0.0)  # every slice has passed
    r, w = os.pipe()
    pids: list[int] = []

    async def spawn_and_wait() -> None:
        actions = [(os.POSIX_SPAWN_DUP2, r, 0)]
        pid = await aos.posix_spawnp("cat", ["cat"], ENV, file_actions=actions)
        pids.append(pid)
        assert await aos.waitpid(pid, 0) == (pid, 0)

    try:
        async with anyio.create_task_group() as tg:
            try:
                for _ in range(8):
                    tg.start_soon(spawn_and_wait)
                while waits_in_progress() < 8:  # noqa: ASYNC110 - aos's counter, no event
                    await anyio.sleep(0.001)
                parents = await off_loop(lambda: [spawning_thread(pid) for pid in pids])
            finally:
                os.close(w)  # the children exit
    finally:
        os.close(r)
    assert parents.count(threading.get_native_id()) == 1
    spawners = {t.native_id for t in threading.enumerate() if t.name == "aos-spawn"}
    assert set(parents) - {threading.get_native_id()} <= spawners


async def writer_after(delay: float, fifo: Path) -> int:
    """A helper process that opens ``fifo`` for writing after ``delay`` seconds, then exits.

    A process, not a thread: an inline spawn would hold the GIL that a thread needs to run.
    """
    script = f"sleep {delay}; exec 3<>'{fifo}'"
    return await aos.posix_spawn("/bin/sh", ["sh", "-c", script], ENV)


async def test_the_loop_runs_while_a_spawn_waits_for_its_child(tmp_path: Path) -> None:
    # The child's file action opens a FIFO, which blocks until a writer comes, so the spawn
    # (which returns once the child has exec'd) waits for it, 1 s.
    fifo = tmp_path / "fifo"
    await off_loop(os.mkfifo, fifo)
    ticks = 0

    async def tick() -> None:
        nonlocal ticks
        while True:
            await anyio.sleep(0.01)
            ticks += 1

    helper = await writer_after(1.0, fifo)
    async with children_in_flight(), anyio.create_task_group() as tg:
        tg.start_soon(tick)
        actions = [(os.POSIX_SPAWN_OPEN, 0, str(fifo), os.O_RDONLY, 0)]
        pid = await aos.posix_spawn(PY, python("import sys; sys.stdin.read()"), ENV,
                                    file_actions=actions)  # fmt: skip
        spawned_at = ticks
        assert await aos.waitpid(pid, 0) == (pid, 0)
        tg.cancel_scope.cancel()
    assert await aos.waitpid(helper, 0) == (helper, 0)
    assert spawned_at >= 20


async def test_a_spawn_cancelled_while_it_runs_kills_and_reaps_its_child(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo"
    await off_loop(os.mkfifo, fifo)
    valve = await writer_after(10, fifo)  # lets a spawn that blocked the loop fail, not hang
    writer: list[int] = []
    try:
        await _cancel_a_spawn_while_it_runs(fifo, writer)
    finally:
        os.kill(valve, signal.SIGKILL)
        await aos.waitpid(valve, 0)
    with pytest.raises(ChildProcessError):  # killed and reaped: no child is left
        await aos.waitpid(-1, os.WNOHANG)


async def _cancel_a_spawn_while_it_runs(fifo: Path, writer: list[int]) -> None:
    async with children_in_flight():
        with anyio.CancelScope() as scope:

            async def cancel_then_let_the_child_exec() -> None:
                with anyio.fail_after(10):  # an inline spawn would never get here
                    while _workers.SPAWNERS.is_idle():  # noqa: ASYNC110 - no event
                        await anyio.sleep(0.001)
                scope.cancel()
                # O_RDWR does not wait for a reader; the child's open then returns
                writer.append(os.open(fifo, os.O_RDWR | os.O_NONBLOCK))

            try:
                async with anyio.create_task_group() as tg:
                    tg.start_soon(cancel_then_let_the_child_exec)
                    actions = [(os.POSIX_SPAWN_OPEN, 0, str(fifo), os.O_RDONLY, 0)]
                    await aos.posix_spawn(PY, python("import time; time.sleep(60)"), ENV,
                                          file_actions=actions)  # fmt: skip
                    pytest.fail("the cancelled spawn returned")
            finally:
                for fd in writer:
                    os.close(fd)
        assert scope.cancelled_caught


async def test_a_spawn_cancelled_before_it_starts_spawns_nothing() -> None:
    async with children_in_flight():
        with anyio.CancelScope() as scope:
            scope.cancel()
            await aos.posix_spawn("/bin/true", ["true"], ENV)
        assert scope.cancelled_caught
        # only the child in flight is there, not exited: nothing else was spawned
        assert await aos.waitid(os.P_ALL, 0, os.WEXITED | os.WNOHANG | os.WNOWAIT) is None


def _blocked(pid: int) -> str:
    """The signal mask of a child, as ``/proc/PID/status`` writes it."""
    with open(f"/proc/{pid}/status") as f:
        return next(line.split()[1] for line in f if line.startswith("SigBlk:"))


def _mask(*signals: int) -> str:
    return f"{sum(1 << (s - 1) for s in signals):016x}"


async def test_the_child_gets_the_callers_signal_mask_and_the_options() -> None:
    async with children_in_flight():  # spawner threads started before the mask changes keep
        pid, _, w = await spawn_held()  # the old one: the child must not get theirs
        os.close(w)
        assert await aos.waitpid(pid, 0) == (pid, 0)
    spawner_masks = await off_loop(_spawner_masks)
    assert _mask(signal.SIGUSR1) not in spawner_masks.values()
    blocked = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGUSR1})
    try:
        async with children_in_flight():
            cases: list[tuple[dict[str, Any], Callable[[int], bool]]] = [
                ({}, lambda pid: _blocked(pid) == _mask(signal.SIGUSR1)),
                ({"setsigmask": ()}, lambda pid: _blocked(pid) == _mask()),
                ({"setsigmask": {signal.SIGUSR2}},
                 lambda pid: _blocked(pid) == _mask(signal.SIGUSR2)),
                ({"setsid": True}, lambda pid: os.getsid(pid) == pid),
                ({"setpgroup": 0}, lambda pid: os.getpgid(pid) == pid),
                ({"resetids": True}, lambda pid: os.getpgid(pid) == os.getpgid(0)),
            ]  # fmt: skip
            for kwargs, check in cases:
                pid, parent, w = await spawn_held(**kwargs)
                try:
                    assert parent != threading.get_native_id(), kwargs  # a spawner did it
                    assert await off_loop(check, pid), kwargs
                finally:
                    os.close(w)
                    assert await aos.waitpid(pid, 0) == (pid, 0)
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
    # A spawner takes on each caller's mask for the spawn only, then goes back to its own.
    assert await off_loop(_spawner_masks) == spawner_masks


def _spawner_masks() -> dict[int, str]:
    """The signal mask of each spawner thread, by native id."""
    masks = {}
    for thread in threading.enumerate():
        if thread.name == "aos-spawn" and thread.native_id is not None:
            with open(f"/proc/self/task/{thread.native_id}/status") as f:
                line = next(line for line in f if line.startswith("SigBlk:"))
            masks[thread.native_id] = line.split()[1]
    return masks


def _os_spawn_warnings(**kwargs: Any) -> list[str]:
    """The warnings ``os.posix_spawn`` gives for these options (run off the loop)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        pid = os.posix_spawn("/bin/true", ["true"], ENV, **kwargs)
    assert os.waitpid(pid, 0) == (pid, 0)
    return [str(w.message) for w in caught]


async def test_a_signal_libc_reserves_is_warned_of_as_os_does() -> None:
    reserved = sorted(set(range(1, signal.NSIG)) - set(signal.valid_signals()))
    if not reserved:
        pytest.skip("this libc reserves no signal number")
    for option in ("setsigmask", "setsigdef"):
        kwargs: dict[str, Any] = {option: [signal.SIGUSR1, reserved[0]]}
        expected = await off_loop(functools.partial(_os_spawn_warnings, **kwargs))
        assert expected, "os no longer warns of it"
        async with children_in_flight():
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                pid = await aos.posix_spawn("/bin/true", ["true"], ENV, **kwargs)
            assert await aos.waitpid(pid, 0) == (pid, 0)
        assert [str(w.message) for w in caught] == expected


async def test_setsigdef_resets_an_ignored_signal() -> None:
    code = "import signal; print(signal.getsignal(signal.SIGUSR1) == signal.SIG_DFL)"
    previous = signal.signal(signal.SIGUSR1, signal.SIG_IGN)  # ignored stays ignored across exec
    try:
        async with children_in_flight():
            for kwargs, expected in (
                ({}, b"False\n"),
                ({"setsigdef": [signal.SIGUSR1]}, b"True\n"),
            ):
                assert await _output_of(PY, python(code), ENV, **kwargs) == expected
    finally:
        signal.signal(signal.SIGUSR1, previous)


async def _output_of(path: str | Path, argv: Any, env: Any, **kwargs: Any) -> bytes:
    """Spawn with stdout on a pipe; the bytes the child printed (its exit status must be 0)."""
    r, w = os.pipe()
    try:
        actions = [*kwargs.pop("file_actions", []), (os.POSIX_SPAWN_DUP2, w, 1)]
        pid = await aos.posix_spawn(path, argv, env, file_actions=actions, **kwargs)
        os.close(w)
        w = -1
        chunks = []
        while chunk := await aos.read(r, 65536):
            chunks.append(chunk)
        assert await aos.waitpid(pid, 0) == (pid, 0)
        return b"".join(chunks)
    finally:
        os.close(r)
        if w != -1:
            os.close(w)


async def test_environments_argv_and_paths_of_every_type(tmp_path: Path) -> None:
    code = "import os, sys; print(os.environ.get('AOS_X'), sys.argv[1:])"
    async with children_in_flight():
        env = {**ENV, "AOS_X": "one"}
        assert await _output_of(PY, [*python(code), "a"], env) == b"one ['a']\n"
        env["AOS_X"] = "two"  # the same dict, changed: not the envp built before
        assert await _output_of(PY, [*python(code), "b"], env) == b"two ['b']\n"
        bytes_env = {os.fsencode(k): os.fsencode(v) for k, v in env.items()}
        argv = (os.fsencode(PY), b"-c", code.encode(), Path("c"))
        assert await _output_of(Path(PY), argv, bytes_env) == b"two ['c']\n"
        os.environ["AOS_X"] = "environ"
        try:
            assert await _output_of(PY, python(code), os.environ) == b"environ []\n"
        finally:
            del os.environ["AOS_X"]
        surrogate = "x\udcff"  # an undecodable byte, as os.fsdecode gives it
        assert await _output_of(PY, python(code), {**ENV, "AOS_X": surrogate}) == (
            f"{surrogate} []\n".encode("utf-8", "surrogateescape")
        )


def _os_output_of(path: str, argv: list[str], env: Any) -> bytes:
    """What the child of ``os.posix_spawn`` printed (run off the loop)."""
    r, w = os.pipe()
    try:
        pid = os.posix_spawn(path, argv, env, file_actions=[(os.POSIX_SPAWN_DUP2, w, 1)])
        os.close(w)
        w = -1
        chunks = []
        while chunk := os.read(r, 65536):
            chunks.append(chunk)
        assert os.waitpid(pid, 0) == (pid, 0)
        return b"".join(chunks)
    finally:
        os.close(r)
        if w != -1:
            os.close(w)


async def test_equal_environments_keep_their_own_order_and_key_types() -> None:
    """Dicts that compare equal may still make different environments: the order of their items
    and, for a key given as str and as bytes, which of the two the child sees first."""
    environments: list[dict[Any, Any]] = [
        {"A": "1", "B": "2"},
        {"B": "2", "A": "1"},
        {"A": "x", b"A": "y"},
        {b"A": "y", "A": "x"},
        {},
        {},
    ]
    async with children_in_flight():
        for env in environments:
            expected = await off_loop(_os_output_of, "/usr/bin/env", ["env"], env)
            assert await _output_of("/usr/bin/env", ["env"], env) == expected, env


BYTES_WARNING_CHILD = """
import os, anyio, aos
from aos._async._child_wait import waits_in_progress
async def main():
    sleeper = os.posix_spawn("/bin/sleep", ["sleep", "30"], {})
    async with anyio.create_task_group() as tg:
        tg.start_soon(aos.waitpid, sleeper, 0)
        while not waits_in_progress():
            await anyio.sleep(0.001)
        for env in ({b"A": b"1"}, {"A": "1"}, {b"A": "1"}, {"A": b"1"}, dict(os.environ)):
            pid = await aos.posix_spawn("/bin/true", ["true"], env)
            assert await aos.waitpid(pid, 0) == (pid, 0)
        os.kill(sleeper, 9)
for backend in ("asyncio", "trio"):
    anyio.run(main, backend=backend)
print("ok")
"""


def test_str_and_bytes_environments_in_turn_raise_no_bytes_warning() -> None:
    """Under ``python -bb`` comparing str with bytes raises: the reuse of the last environment
    built must never compare them."""
    assert run_child(BYTES_WARNING_CHILD, interpreter_flags=["-bb"]) == "ok\n"


async def test_forms_it_does_not_convert_go_to_os_with_the_same_result() -> None:
    code = "import os; print(os.environ.get('AOS_X'))"

    class Env(dict[str, str]):
        pass

    async with children_in_flight():
        for env, kwargs in (
            (Env(ENV, AOS_X="sub"), {}),
            ({**ENV, "AOS_X": "gen"}, {"file_actions": iter([(os.POSIX_SPAWN_CLOSE, 5)])}),
            ({**ENV, "AOS_X": "sched"},
             {"scheduler": (os.SCHED_OTHER, os.sched_param(0))}),
        ):  # fmt: skip
            assert _native_spawn.prepare_call(False, (PY, python(code), env), dict(kwargs)) is None
            assert await _output_of(PY, python(code), env, **kwargs) == (
                f"{env['AOS_X']}\n".encode()
            )


ERROR_CASES: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = [
    ("posix_spawn", ("/nonexistent/aos", ["x"], ENV), {}),
    ("posix_spawn", ("/etc/hostname", ["x"], ENV), {}),
    ("posix_spawnp", ("no-such-program-aos", ["x"], ENV), {}),
    ("posix_spawn", (b"/nonexistent/aos", ["x"], ENV), {}),
    ("posix_spawn", ("/bin/true", [], ENV), {}),
    ("posix_spawn", ("/bin/true", [""], ENV), {}),
    ("posix_spawn", ("/bin/true", "true", ENV), {}),
    ("posix_spawn", ("/bin/tr\0ue", ["true"], ENV), {}),
    ("posix_spawn", ("/bin/true", ["tr\0ue"], ENV), {}),
    ("posix_spawn", ("/bin/true", ["true"], {"A=B": "1"}), {}),
    ("posix_spawn", ("/bin/true", ["true"], {"A": "1\0"}), {}),
    ("posix_spawn", ("/bin/true", ["true"], {1: "1"}), {}),
    ("posix_spawn", ("/bin/true", ["true"], [("A", "1")]), {}),
    ("posix_spawn", ("/bin/true", ["true"], ENV), {"bogus": 1}),
    ("posix_spawn", ("/bin/true", ["true"], ENV), {"file_actions": [(99,)]}),
    ("posix_spawn", ("/bin/true", ["true"], ENV), {"file_actions": [(os.POSIX_SPAWN_CLOSE,)]}),
    ("posix_spawn", ("/bin/true", ["true"], ENV), {"file_actions": [(os.POSIX_SPAWN_CLOSE, -1)]}),
    ("posix_spawn", ("/bin/true", ["true"], ENV),
     {"file_actions": [(os.POSIX_SPAWN_OPEN, 0, "/nonexistent/aos", os.O_RDONLY, 0)]}),
    ("posix_spawn", ("/bin/true", ["true"], ENV), {"setsigdef": [999]}),
    ("posix_spawn", ("/bin/true", ["true"], ENV), {"setsigmask": [0]}),
    ("posix_spawn", ("/bin/true", ["true"], ENV), {"setsigmask": None}),
    ("posix_spawn", ("/bin/true", ["true"], ENV), {"setsigdef": None}),
    ("posix_spawn", ("/bin/true", ["true"], ENV), {"setpgroup": "x"}),
    ("posix_spawn", ("/bin/true", ["true"], ENV), {"setpgroup": None}),  # os: not "omitted"
    ("posix_spawn", ("/bin/true", ["true"], ENV), {"scheduler": None}),  # (os: SystemError)
    ("posix_spawn", (Path("/nonexistent/aos"), ["x"], ENV), {}),  # os names it as a str
    *(  # 3.11 takes resetids and setsid as C ints (3.12 on, as truth values)
        [("posix_spawn", ("/bin/true", ["true"], ENV), {"resetids": 2**70}),
         ("posix_spawn", ("/bin/true", ["true"], ENV), {"setsid": 2**31}),
         ("posix_spawn", ("/bin/true", ["true"], ENV), {"resetids": -(2**63)})]
        if sys.version_info < (3, 12) else []
    ),
]  # fmt: skip


async def test_errors_are_those_of_os() -> None:
    async with children_in_flight():
        await assert_spawn_errors_are_those_of_os(ERROR_CASES)


class AnsweringOnce:
    """A path-like that gives its path once, and refuses to be asked again."""

    def __init__(self, path: str) -> None:
        self.path: str | None = path

    def __fspath__(self) -> str:
        path, self.path = self.path, None
        if path is None:
            raise RuntimeError("asked for its path twice")
        return path


async def test_a_path_like_is_asked_for_its_path_once_as_os_asks() -> None:
    """os asks a path-like for its path once; so does each route (inline, and on a spawner)."""
    for route in (contextlib.nullcontext, children_in_flight):
        async with route():
            pid = await aos.posix_spawn(AnsweringOnce("/bin/true"), ["true"], ENV)
            assert await aos.waitpid(pid, 0) == (pid, 0)


class AskedOnlyOnceBound:
    """A path-like whose path must not be asked for while the call does not bind."""

    def __fspath__(self) -> str:
        raise RuntimeError("asked for its path")


@pytest.mark.parametrize(
    ("args", "kwargs"),
    [((AskedOnlyOnceBound(),), {}), ((AskedOnlyOnceBound(), ["x"], {}), {"bogus": 1})],
    ids=["one positional", "unknown keyword"],
)
async def test_arguments_that_do_not_bind_are_refused_before_the_path_is_asked_for(
    args: tuple[Any, ...], kwargs: dict[str, Any]
) -> None:
    """os refuses them with its TypeError before it asks the path-like for its path."""
    with pytest.raises(TypeError) as theirs:
        os.posix_spawn(*args, **kwargs)  # noqa: ASYNC221 - refused: nothing runs
    for route in (contextlib.nullcontext, children_in_flight):
        async with route():
            with pytest.raises(TypeError) as ours:
                await aos.posix_spawn(*args, **kwargs)
            assert str(ours.value) == str(theirs.value)


async def test_an_environment_os_refuses_is_refused_after_an_equal_one() -> None:
    """The spawner reuses the environment it built last while the next one compares equal:
    ``{"A": bytearray(b"1")}`` equals ``{"A": b"1"}``, but os refuses a bytearray value."""
    refused: Any = {"A": bytearray(b"1")}  # a value os refuses, on purpose
    with pytest.raises(TypeError) as theirs:
        os.posix_spawn("/bin/true", ["true"], refused)  # noqa: ASYNC221 - refused
    async with children_in_flight():
        pid = await aos.posix_spawn("/bin/true", ["true"], {"A": b"1"})
        assert await aos.waitpid(pid, 0) == (pid, 0)
        with pytest.raises(TypeError) as ours:
            await aos.posix_spawn("/bin/true", ["true"], refused)
        assert str(ours.value) == str(theirs.value)


async def test_it_is_audited_once_as_os_audits(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[tuple[Any, ...]] = []
    hook_on = True

    def hook(event: str, args: tuple[Any, ...]) -> None:
        if hook_on and event == "os.posix_spawn":
            seen.append(args)

    sys.addaudithook(hook)  # hooks cannot be removed: this one is switched off at the end
    try:
        async with children_in_flight():
            seen.clear()
            argv = ["true"]
            pid = await aos.posix_spawn("/bin/true", argv, ENV)
            assert await aos.waitpid(pid, 0) == (pid, 0)
            assert seen == [("/bin/true", argv, ENV)]
    finally:
        hook_on = False


async def test_spawner_threads_stay_when_idle(monkeypatch: pytest.MonkeyPatch) -> None:
    # A child's parent is the thread that spawned it: a spawner that left would set off the
    # PR_SET_PDEATHSIG of its children.
    monkeypatch.setattr(_workers, "IDLE_TIMEOUT", 0.01)
    async with children_in_flight():
        pid, parent, w = await spawn_held()
        os.close(w)
        assert await aos.waitpid(pid, 0) == (pid, 0)
    await anyio.sleep(0.2)
    assert parent in {t.native_id for t in threading.enumerate() if t.name == "aos-spawn"}


async def test_many_spawns_in_flight_on_spawners() -> None:
    pids: list[int] = []

    async def spawn_and_wait() -> None:
        pid = await aos.posix_spawn("/bin/true", ["true"], ENV)
        pids.append(pid)
        assert await aos.waitpid(pid, 0) == (pid, 0)

    async with children_in_flight(), anyio.create_task_group() as tg:
        for _ in range(64):
            tg.start_soon(spawn_and_wait)
    assert len(set(pids)) == 64
    assert _workers.SPAWNERS.threads() <= _workers.SPAWNERS.limit  # type: ignore[operator]


async def test_the_spawn_family_takes_the_same_route() -> None:
    """``spawn*`` start their child with the async ``posix_spawn``: among children in flight,
    on a spawner; and their results stay those of ``os``."""
    spawners = {t.native_id for t in threading.enumerate() if t.name == "aos-spawn"}
    async with children_in_flight():
        pid = await aos.spawnvp(os.P_NOWAIT, "sleep", ["sleep", "30"])
        try:
            parent = await off_loop(spawning_thread, pid)
        finally:
            os.kill(pid, signal.SIGKILL)
            assert await aos.waitpid(pid, 0) == (pid, signal.SIGKILL)
        spawners |= {t.native_id for t in threading.enumerate() if t.name == "aos-spawn"}
        assert parent in spawners
        assert await aos.spawnlp(os.P_WAIT, "sh", "sh", "-c", "exit 6") == 6
        assert await aos.spawnvp(os.P_WAIT, "no-such-program-aos", ["x"]) == 127


def test_a_spawn_shared_with_a_worker_is_freed_once_by_its_owner(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A caller destroyed with its closed loop discards its spawn while a worker may be in
    libc's ``posix_spawn`` with it: the worker frees the file actions when the spawn returns,
    once (they were freed under the spawn, and again after it). Discarded before a worker
    took it, the spawn never runs."""
    destroyed: list[object] = []
    real_destroy = _native_spawn._held["posix_spawn_file_actions_destroy"]

    def destroy(actions: object) -> int:
        destroyed.append(actions)
        return int(real_destroy(actions))

    monkeypatch.setitem(_native_spawn._held, "posix_spawn_file_actions_destroy", destroy)

    def prepared() -> _native_spawn.Prepared:
        spawn = _native_spawn.prepare_call(
            False,
            ("/bin/true", ["true"], dict(os.environ)),
            {"file_actions": [(os.POSIX_SPAWN_CLOSE, 99)]},
        )
        assert spawn is not None
        return spawn

    spawn = prepared()
    in_libc, go_on = threading.Event(), threading.Event()
    real_spawn = spawn._spawn

    def slow_spawn(*args: Any) -> int:
        in_libc.set()
        go_on.wait(10)
        return int(real_spawn(*args))

    spawn._spawn = slow_spawn
    pids: list[int] = []
    worker = threading.Thread(target=lambda: pids.append(spawn.run()))
    worker.start()
    assert in_libc.wait(10)
    spawn.discard()  # (the loop's thread, as the destroyed caller's finally runs)
    assert destroyed == []
    go_on.set()
    worker.join(10)
    assert len(destroyed) == 1
    assert os.waitpid(pids[0], 0)[1] == 0
    spawn.discard()
    assert len(destroyed) == 1

    unrun = prepared()
    unrun.discard()
    assert len(destroyed) == 2
    with pytest.raises(RuntimeError, match="discarded"):
        unrun.run()
    assert len(destroyed) == 2
