"""Async process management: spawning, every kind of wait status, errors, cancellation, threads.

Children are ``sys.executable -c ...`` (or ``/bin/true``, ``cat`` where a thousand of them must
start fast); every test reaps what it starts, and the autouse leak check verifies it.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import random
import signal
import sys
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio
import pytest

import aos
from aos import blocking
from aos._async import _loop_slice, _process
from aos._async._child_wait import SharedWaits
from aos._async._workers import WAIT_LANE, Job
from tests.aio._helpers import native_cancel, off_loop, run_child

pytestmark = pytest.mark.anyio

PY = sys.executable
ENV = dict(os.environ)


def python(code: str) -> list[str]:
    return [PY, "-c", code]


async def spawn_python(code: str, **kwargs: Any) -> int:
    return await aos.posix_spawn(PY, python(code), ENV, **kwargs)


async def sync_error(fn: Callable[..., Any], *args: Any) -> BaseException:
    """What the os call raises, computed off the loop."""

    def run() -> BaseException:
        try:
            fn(*args)
        except BaseException as exc:
            return exc
        raise AssertionError(f"{fn.__name__}{args} did not raise")

    return await off_loop(run)


def assert_same_error(got: BaseException, expected: BaseException) -> None:
    assert type(got) is type(expected)
    assert got.args == expected.args
    for field in ("errno", "strerror", "filename", "filename2"):
        assert getattr(got, field, None) == getattr(expected, field, None)
    assert got.__cause__ is None
    assert not got.__suppress_context__ or got.__context__ is None


def children_of_this_process() -> list[int]:
    pids: list[int] = []
    for tid in os.listdir("/proc/self/task"):
        with open(f"/proc/self/task/{tid}/children") as f:
            pids.extend(int(p) for p in f.read().split())
    return pids


# --- names --------------------------------------------------------------------------------

ASYNC_NAMES = [
    "posix_spawn",
    "posix_spawnp",
    "waitid",
    "waitpid",
    "wait",
    "wait3",
    "wait4",
    "system",
    "spawnl",
    "spawnle",
    "spawnlp",
    "spawnlpe",
    "spawnv",
    "spawnve",
    "spawnvp",
    "spawnvpe",
]
PASSED_THROUGH = ["kill", "killpg", "pidfd_open", "waitstatus_to_exitcode", "times", "WIFEXITED"]


@pytest.mark.parametrize("name", ASYNC_NAMES)
def test_blocking_process_calls_are_async(name: str) -> None:
    import inspect

    assert inspect.iscoroutinefunction(getattr(aos, name))
    assert getattr(aos, name) is not getattr(blocking, name)


@pytest.mark.parametrize("name", PASSED_THROUGH)
def test_non_blocking_process_calls_are_passed_through(name: str) -> None:
    assert getattr(aos, name) is getattr(blocking, name)


def test_signatures_match_os() -> None:
    import inspect

    for name in ["posix_spawn", "posix_spawnp"]:  # builtins with no signature on 3.11
        assert getattr(aos, name).__wrapped__ is getattr(os, name)
    for name in ["waitpid", "waitid", "wait", "wait3", "wait4"]:
        ours, theirs = (inspect.signature(getattr(m, name)).parameters for m in (aos, os))
        assert [(p.name, p.kind, p.default) for p in ours.values()] == [
            (p.name, p.kind, p.default) for p in theirs.values()
        ], name


# --- statuses -----------------------------------------------------------------------------


@pytest.mark.parametrize("code", [0, 1, 3, 255])
async def test_exit_codes(code: int) -> None:
    pid = await spawn_python(f"import sys; sys.exit({code})")
    got_pid, status = await aos.waitpid(pid, 0)
    assert got_pid == pid
    assert os.WIFEXITED(status)
    assert os.WEXITSTATUS(status) == code
    assert os.waitstatus_to_exitcode(status) == code


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL, signal.SIGINT])
async def test_killed_by_signal(sig: signal.Signals) -> None:
    pid = await spawn_python("import time; time.sleep(60)", setsigdef=[signal.SIGINT])
    os.kill(pid, sig)
    result = await aos.waitid(os.P_PID, pid, os.WEXITED)
    assert result is not None
    assert (result.si_pid, result.si_code, result.si_status) == (pid, os.CLD_KILLED, sig)


async def test_stopped_and_continued_through_waitpid_and_waitid() -> None:
    pid = await spawn_python("import time; time.sleep(60)")
    try:
        os.kill(pid, signal.SIGSTOP)
        got, status = await aos.waitpid(pid, os.WUNTRACED)
        assert got == pid
        assert os.WIFSTOPPED(status)
        assert os.WSTOPSIG(status) == signal.SIGSTOP
        os.kill(pid, signal.SIGCONT)
        got, status = await aos.waitpid(pid, os.WCONTINUED)
        assert (got, os.WIFCONTINUED(status)) == (pid, True)
        os.kill(pid, signal.SIGSTOP)
        result = await aos.waitid(os.P_PID, pid, os.WSTOPPED)
        assert result is not None
        assert (result.si_code, result.si_status) == (os.CLD_STOPPED, signal.SIGSTOP)
        os.kill(pid, signal.SIGCONT)
        result = await aos.waitid(os.P_PID, pid, os.WCONTINUED)
        assert result is not None
        assert result.si_code == os.CLD_CONTINUED
        os.kill(pid, signal.SIGSTOP)
        got, status, rusage = await aos.wait4(pid, os.WUNTRACED)
        assert (got, os.WIFSTOPPED(status)) == (pid, True)
        assert rusage.ru_utime >= 0
    finally:
        os.kill(pid, signal.SIGKILL)
        result = await aos.waitid(os.P_PID, pid, os.WEXITED | os.WSTOPPED | os.WCONTINUED)
        while result is not None and result.si_code != os.CLD_KILLED:
            result = await aos.waitid(os.P_PID, pid, os.WEXITED | os.WSTOPPED | os.WCONTINUED)


async def test_wnowait_leaves_the_status() -> None:
    pid = await spawn_python("import sys; sys.exit(7)")
    first = await aos.waitid(os.P_PID, pid, os.WEXITED | os.WNOWAIT)
    second = await aos.waitid(os.P_PID, pid, os.WEXITED)
    assert first == second
    assert first is not None
    assert (first.si_pid, first.si_status) == (pid, 7)


async def test_wnohang() -> None:
    pid = await spawn_python("import time; time.sleep(60)")
    try:
        assert await aos.waitpid(pid, os.WNOHANG) == (0, 0)
        assert await aos.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG) is None
        assert (await aos.wait4(pid, os.WNOHANG))[:2] == (0, 0)
        assert (await aos.wait3(os.WNOHANG))[:2] == (0, 0)
    finally:
        os.kill(pid, signal.SIGKILL)
        assert (await aos.waitpid(pid, 0))[0] == pid


async def test_p_pidfd() -> None:
    pid = await spawn_python("import sys; sys.exit(4)")
    pidfd = os.pidfd_open(pid)
    try:
        assert os.get_blocking(pidfd)
        result = await aos.waitid(os.P_PIDFD, pidfd, os.WEXITED)
        assert os.get_blocking(pidfd)  # uvloop sets O_NONBLOCK on what it watches: not on this
    finally:
        os.close(pidfd)
    assert result is not None
    assert (result.si_pid, result.si_status) == (pid, 4)


async def test_p_pidfd_opened_nonblocking_says_eagain_as_os() -> None:
    pid = await aos.posix_spawn("/bin/sleep", ["sleep", "30"], ENV)
    pidfd = os.pidfd_open(pid)
    try:
        os.set_blocking(pidfd, False)  # as pidfd_open(pid, PIDFD_NONBLOCK) makes it
        expected = await sync_error(os.waitid, os.P_PIDFD, pidfd, os.WEXITED)
        assert isinstance(expected, BlockingIOError)
        with anyio.fail_after(10), pytest.raises(BlockingIOError) as got:  # not a wait for the exit
            await aos.waitid(os.P_PIDFD, pidfd, os.WEXITED)
        assert_same_error(got.value, expected)
    finally:
        os.close(pidfd)
        os.kill(pid, signal.SIGKILL)
        assert (await aos.waitpid(pid, 0))[0] == pid


async def test_an_interrupted_kill_and_reap_leaves_no_zombie() -> None:
    """Cleanup that is itself interrupted (a second native cancel on asyncio, a
    KeyboardInterrupt) hands the reaping to a worker."""
    pid = await aos.posix_spawn("/bin/sleep", ["sleep", "30"], ENV)
    with anyio.CancelScope() as scope:
        scope.cancel()
        await _process._kill_and_reap(pid)  # the cancel interrupts its wait for the child
    assert scope.cancelled_caught
    with anyio.fail_after(10):
        while await aos.path.exists(f"/proc/{pid}"):  # noqa: ASYNC110 - listed until reaped
            await anyio.sleep(0.01)


WNOTHREAD = 0x20000000  # Linux: only children of the calling thread (os passes it through)


async def test_wnothread_waits_see_the_loop_threads_children() -> None:
    """``__WNOTHREAD`` waits for the children of the thread that waits: the loop's. A worker
    would see none (it raised ChildProcessError at once, where os waits); and a child of another
    thread, reported until it is reaped, does not end such a wait."""
    started: list[int] = []
    done = threading.Event()

    def parent() -> None:  # alive throughout: a thread's children go to another when it ends
        started.append(os.posix_spawn("/bin/true", ["true"], ENV))
        done.wait()

    other = threading.Thread(target=parent)
    other.start()
    try:
        while not started:  # noqa: ASYNC110 (a thread, not a task, is awaited)
            await anyio.sleep(0.001)
        (foreign,) = started
        await aos.waitid(os.P_PID, foreign, os.WEXITED | os.WNOWAIT)  # exited, not reaped
        for options in [WNOTHREAD, os.WUNTRACED | WNOTHREAD]:
            r, w = os.pipe()
            actions = [(os.POSIX_SPAWN_DUP2, r, 0)]
            pid = await spawn_python("import sys; sys.stdin.read()", file_actions=actions)
            os.close(r)

            async def close_soon(w: int = w) -> None:
                await anyio.sleep(0.05)  # (the wait has looked, found nothing, and waits)
                os.close(w)

            async with anyio.create_task_group() as tg:
                tg.start_soon(close_soon)
                with anyio.fail_after(20):
                    waited = await aos.waitpid(-1 if options == WNOTHREAD else pid, options)
            assert waited == (pid, 0)
        assert await aos.waitpid(foreign, 0) == (foreign, 0)
    finally:
        done.set()
        await off_loop(other.join)


async def test_p_pgid_and_p_all_and_negative_pids() -> None:
    first = await spawn_python("import sys; sys.exit(1)", setpgroup=0)
    second = await spawn_python("import sys; sys.exit(2)", setpgroup=first)
    seen = {}
    result = await aos.waitid(os.P_PGID, first, os.WEXITED)
    assert result is not None
    seen[result.si_pid] = result.si_status
    got, status = await aos.waitpid(-first, 0)
    seen[got] = os.WEXITSTATUS(status)
    assert seen == {first: 1, second: 2}

    third = await spawn_python("import sys; sys.exit(3)")
    result = await aos.waitid(os.P_ALL, 0, os.WEXITED)
    assert result is not None
    assert (result.si_pid, result.si_status) == (third, 3)
    fourth = await spawn_python("import sys; sys.exit(4)")
    assert await aos.wait() == (fourth, 4 << 8)
    fifth = await spawn_python("import sys; sys.exit(5)")
    got, status, _ = await aos.wait3(0)
    assert (got, status) == (fifth, 5 << 8)
    sixth = await spawn_python("import sys; sys.exit(6)")
    assert await aos.waitpid(-1, 0) == (sixth, 6 << 8)
    seventh = await spawn_python("import sys; sys.exit(7)")  # our own process group
    assert await aos.waitpid(0, 0) == (seventh, 7 << 8)


# --- errors -------------------------------------------------------------------------------


async def test_wait_errors_are_those_of_os() -> None:
    reaped = await aos.posix_spawn("/bin/true", ["true"], ENV)
    await aos.waitpid(reaped, 0)
    cases: list[tuple[str, tuple[Any, ...]]] = [
        ("waitpid", (1, 0)),  # not our child
        ("waitpid", (reaped, 0)),  # already reaped
        ("waitpid", (-1, 0)),  # no children at all
        ("waitpid", (os.getpid(), 0)),
        ("wait", ()),
        ("wait3", (0,)),
        ("wait4", (1, 0)),
        ("waitid", (os.P_PID, 1, os.WEXITED)),
        ("waitid", (os.P_ALL, 0, os.WEXITED)),
        ("waitid", (os.P_PID, 1, 0)),  # no event asked for
        ("waitid", (os.P_PIDFD, 12345, os.WEXITED)),  # not an fd
        ("waitpid", (1, 0x7FFF)),  # unknown option bits
        ("waitpid", ("1", 0)),
        ("waitpid", (1, 0.0)),
        ("waitid", (os.P_PID, "1", os.WEXITED)),
        ("wait4", (None, 0)),
        ("wait3", ("0",)),
        ("waitpid", (2**70, 0)),
        # (beyond what waitid can name: waitpid's own answer, not the translation's overflow)
        ("waitpid", (-(2**31), 0)),  # ESRCH
        ("waitpid", (-(2**31) - 1, 0)),
        ("waitpid", (-1, -(2**31))),  # __WCLONE, bit 31
        ("wait4", (-(2**31), 0)),
        ("wait4", (-1, -(2**31))),
        ("wait3", (-(2**31),)),
        ("wait3", (2**31,)),
    ]
    for name, args in cases:
        expected = await sync_error(getattr(os, name), *args)
        with pytest.raises(type(expected)) as info:
            await getattr(aos, name)(*args)
        assert_same_error(info.value, expected)


async def test_posix_spawn_errors_are_those_of_os(tmp_path: Path) -> None:
    missing = str(tmp_path / "missing")
    not_exec = tmp_path / "plain"
    await off_loop(not_exec.write_text, "")
    cases: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = [
        ("posix_spawn", (missing, [missing], ENV), {}),
        ("posix_spawn", (str(not_exec), ["x"], ENV), {}),
        ("posix_spawnp", ("no-such-program-aos", ["x"], ENV), {}),
        ("posix_spawn", ("/bin/true", [], ENV), {}),
        ("posix_spawn", ("/bin/true", "true", ENV), {}),
        ("posix_spawn", ("/bin/true", ["true"], ENV), {"file_actions": [(99,)]}),
        (
            "posix_spawn",
            ("/bin/true", ["true"], ENV),
            {"file_actions": [(os.POSIX_SPAWN_OPEN, 0, missing, os.O_RDONLY, 0)]},
        ),
        ("posix_spawn", ("/bin/true", ["true"], ENV), {"setsigdef": [999]}),
    ]
    await assert_spawn_errors_are_those_of_os(cases)


async def assert_spawn_errors_are_those_of_os(
    cases: list[tuple[str, tuple[Any, ...], dict[str, Any]]],
) -> None:
    """Each ``(name, args, kwargs)`` spawn fails in aos exactly as in os."""
    for name, args, kwargs in cases:

        def run(name: str = name, args: Any = args, kwargs: Any = kwargs) -> BaseException:
            try:
                pid = getattr(os, name)(*args, **kwargs)
            except BaseException as exc:
                return exc
            os.waitpid(pid, 0)
            raise AssertionError(f"{name}{args} did not raise")

        expected = await off_loop(run)
        with pytest.raises(type(expected)) as info:
            await getattr(aos, name)(*args, **kwargs)
        assert_same_error(info.value, expected)


# --- spawning -----------------------------------------------------------------------------


async def test_posix_spawn_file_actions_and_posix_spawnp(tmp_path: Path) -> None:
    out = tmp_path / "out"
    actions = [(os.POSIX_SPAWN_OPEN, 1, str(out), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)]
    pid = await aos.posix_spawnp("echo", ["echo", "hello"], ENV, file_actions=actions)
    assert await aos.waitpid(pid, 0) == (pid, 0)
    assert await off_loop(out.read_bytes) == b"hello\n"
    pid = await aos.posix_spawn(
        PY, python("import os; print(os.getpgid(0) == os.getpid())"), ENV,
        file_actions=actions, setpgroup=0,
    )  # fmt: skip
    assert await aos.waitpid(pid, 0) == (pid, 0)
    assert await off_loop(out.read_bytes) == b"True\n"


async def test_spawn_family(tmp_path: Path) -> None:
    code = "import os, sys; sys.exit(int(os.environ.get('AOS_CODE', '9')))"
    env = {**ENV, "AOS_CODE": "5"}
    assert await aos.spawnv(os.P_WAIT, PY, python(code)) == 9
    assert await aos.spawnve(os.P_WAIT, PY, python(code), env) == 5
    assert await aos.spawnl(os.P_WAIT, PY, PY, "-c", code) == 9
    assert await aos.spawnle(os.P_WAIT, PY, PY, "-c", code, env) == 5
    assert await aos.spawnvp(os.P_WAIT, "sh", ["sh", "-c", "exit 6"]) == 6
    assert await aos.spawnlp(os.P_WAIT, "sh", "sh", "-c", "exit 6") == 6
    # spawnvpe searches the PATH of the env it is given, as os.execvpe does.
    bindir = tmp_path / "bin"
    await off_loop(bindir.mkdir)
    script = bindir / "aos-only-here"
    await off_loop(script.write_text, "#!/bin/sh\nexit 8\n")
    await off_loop(script.chmod, 0o755)
    here = {**ENV, "PATH": str(bindir)}
    assert await aos.spawnvpe(os.P_WAIT, "aos-only-here", ["x"], here) == 8
    assert await aos.spawnlpe(os.P_WAIT, "aos-only-here", "x", here) == 8
    assert await aos.spawnvp(os.P_WAIT, "aos-only-here", ["x"]) == 127  # not on our PATH
    # killed by a signal: -signal, as os
    assert await aos.spawnv(os.P_WAIT, PY, python("import os; os.kill(os.getpid(), 9)")) == -9
    # P_NOWAIT: the pid, the caller reaps
    pid = await aos.spawnv(os.P_NOWAIT, PY, python("import sys; sys.exit(2)"))
    assert await aos.waitpid(pid, 0) == (pid, 2 << 8)


async def test_spawn_family_hands_on_the_environment_exec_would(tmp_path: Path) -> None:
    """``os.spawnv`` execs with libc's environment, which ``os.putenv`` and ``os.unsetenv``
    change without ``os.environ`` seeing it: so does ``aos.spawnv`` (it passed ``os.environ``)."""
    script = 'echo "PUT=${AOS_TEST_PUT-unset} GONE=${AOS_TEST_GONE-unset}" > "$0"'
    os.putenv("AOS_TEST_PUT", "1")
    os.environ["AOS_TEST_GONE"] = "1"
    os.unsetenv("AOS_TEST_GONE")
    try:
        by_os, by_aos = tmp_path / "os", tmp_path / "aos"
        await off_loop(os.spawnv, os.P_WAIT, "/bin/sh", ["sh", "-c", script, str(by_os)])
        assert await aos.spawnv(os.P_WAIT, "/bin/sh", ["sh", "-c", script, str(by_aos)]) == 0
        assert await off_loop(by_aos.read_text) == await off_loop(by_os.read_text)
        assert await off_loop(by_aos.read_text) == "PUT=1 GONE=unset\n"
    finally:
        os.unsetenv("AOS_TEST_PUT")
        os.environ.pop("AOS_TEST_GONE", None)


NAMELESS_ENTRY_CHILD = """
import os, sys, anyio, aos
if "AOS_TEST_REEXECED" not in os.environ:  # (os.execve lets a name begin with "=")
    env = {"=X": "1", "AOS_TEST_REEXECED": "1", "PYTHONPATH": os.environ.get("PYTHONPATH", "")}
    os.execve(sys.executable, [sys.executable, "-c", sys.argv[1], sys.argv[1]], env)
for backend in ("asyncio", "trio"):
    assert anyio.run(aos.spawnv, os.P_WAIT, "/bin/true", ["true"], backend=backend) == 0
"""


def test_a_nameless_entry_in_the_environment_does_not_stop_the_spawn_family() -> None:
    """libc's environment may hold an entry without a name (``=X=1``), which ``posix_spawn``
    refuses: it is left out, where the child used to exit 127 without running."""
    run_child(NAMELESS_ENTRY_CHILD, NAMELESS_ENTRY_CHILD)


async def test_spawn_of_what_cannot_be_executed_exits_127_as_os(tmp_path: Path) -> None:
    missing = str(tmp_path / "missing")
    if sys.version_info < (3, 12):  # later versions warn about fork() in a threaded process
        assert await off_loop(os.spawnv, os.P_WAIT, missing, [missing]) == 127
    assert await aos.spawnv(os.P_WAIT, missing, [missing]) == 127
    not_an_argv: list[object] = ["true", object()]  # an item that is not a path, on purpose
    assert await aos.spawnv(os.P_WAIT, "/bin/true", not_an_argv) == 127  # type: ignore[arg-type]
    pid = await aos.spawnvp(os.P_NOWAIT, "no-such-program-aos", ["x"])
    assert await aos.waitpid(pid, 0) == (pid, 127 << 8)


async def test_spawn_argument_errors_are_those_of_os() -> None:
    for args in [(os.P_WAIT, PY, "not a list"), (os.P_WAIT, PY, []), (os.P_WAIT, PY, [""])]:
        expected = await sync_error(os.spawnv, *args)
        with pytest.raises(type(expected)) as info:
            await aos.spawnv(*args)  # type: ignore[arg-type]  # an argv that is not a list, on purpose
        assert_same_error(info.value, expected)
    # The l forms with too few arguments: an empty argv (ValueError), no env (IndexError).
    l_forms: list[tuple[str, tuple[object, ...]]] = [
        ("spawnl", (os.P_WAIT, PY)),
        ("spawnlp", (os.P_WAIT, "true")),
        ("spawnle", (os.P_WAIT, PY)),
        ("spawnle", (os.P_WAIT, PY, ENV)),
        ("spawnlpe", (os.P_WAIT, "true")),
        ("spawnlpe", (os.P_WAIT, "true", ENV)),
    ]
    for name, l_args in l_forms:
        expected = await sync_error(getattr(os, name), *l_args)
        with pytest.raises(type(expected)) as info:
            await getattr(aos, name)(*l_args)
        assert_same_error(info.value, expected)


async def test_spawn_with_an_env_of_none_exits_127_as_os() -> None:
    """``os.spawnve``'s child calls ``execve(file, args, None)``, which raises: it exits 127
    (``spawnv``, which has no env, inherits it)."""
    if sys.version_info < (3, 12):  # later versions warn about fork() in a threaded process
        assert await off_loop(os.spawnve, os.P_WAIT, "/bin/true", ["true"], None) == 127
    assert await aos.spawnve(os.P_WAIT, "/bin/true", ["true"], None) == 127  # type: ignore[arg-type]
    assert await aos.spawnvpe(os.P_WAIT, "true", ["true"], None) == 127  # type: ignore[arg-type]
    assert await aos.spawnle(os.P_WAIT, "/bin/true", "true", None) == 127
    assert await aos.spawnlpe(os.P_WAIT, "true", "true", None) == 127
    assert await aos.spawnv(os.P_WAIT, "/bin/true", ["true"]) == 0


async def test_system() -> None:
    assert await aos.system("exit 3") == 3 << 8
    assert await aos.system(b"true") == 0
    expected = await sync_error(os.system, None)
    with pytest.raises(TypeError) as info:
        await aos.system(None)  # type: ignore[arg-type]
    assert_same_error(info.value, expected)


# --- cancellation -------------------------------------------------------------------------


async def test_cancelled_wait_reaps_nothing() -> None:
    waits: list[Callable[[int], Awaitable[object]]] = [
        lambda pid: aos.waitpid(pid, 0),
        lambda pid: aos.waitid(os.P_PID, pid, os.WEXITED),
        lambda pid: aos.waitpid(-1, 0),
        lambda pid: aos.waitid(os.P_ALL, 0, os.WEXITED),
        lambda pid: aos.waitpid(pid, os.WUNTRACED),
        lambda pid: aos.wait4(pid, 0),
    ]
    for waiting in waits:
        r, w = os.pipe()
        pid = await aos.posix_spawn(
            PY,
            python("import sys; sys.stdin.read()"),
            ENV,
            file_actions=[(os.POSIX_SPAWN_DUP2, r, 0)],
        )
        os.close(r)
        with anyio.move_on_after(0.05) as scope:
            await waiting(pid)
        assert scope.cancelled_caught
        os.close(w)  # the child exits now; its status must still be there
        assert await aos.waitpid(pid, 0) == (pid, 0)


@pytest.mark.parametrize(
    "waiting",
    [
        lambda pid: aos.waitpid(pid, 0),
        lambda pid: aos.waitpid(pid, os.WNOHANG),
        lambda pid: aos.wait(),
        lambda pid: aos.wait4(pid, 0),
        lambda pid: aos.waitid(os.P_PID, pid, os.WEXITED),
    ],
    ids=["waitpid", "waitpid-WNOHANG", "wait", "wait4", "waitid"],
)
async def test_a_cancel_next_to_a_finished_wait_never_loses_the_status(
    waiting: Callable[[int], Awaitable[object]],
) -> None:
    """The wait of a child that has exited already, cancelled by a sibling task in the same loop
    iteration, as the loop's own cancel (``asyncio.timeout``, ``Task.cancel``: no anyio shield
    holds it back). It reaped, then yielded, and the cancel took the status with it."""
    for _ in range(5):
        pid = await aos.posix_spawn("/bin/true", ["true"], ENV)
        await aos.waitid(os.P_PID, pid, os.WEXITED | os.WNOWAIT)  # exited, not reaped
        if await waited_and_cancelled_at_once(waiting(pid)):
            assert await aos.waitpid(pid, os.WNOHANG) == (pid, 0)
        else:
            with pytest.raises(ChildProcessError):
                await aos.waitpid(pid, os.WNOHANG)


async def waited_and_cancelled_at_once(waiting: Awaitable[object]) -> bool:
    """Await ``waiting`` in a task that a sibling cancels at its first yield, as its loop
    cancels tasks; whether the cancel came through (else ``waiting`` returned)."""
    cancels: list[Callable[[], object]] = []
    ready = anyio.Event()
    cancelled = False

    async def wait_for_it() -> None:
        nonlocal cancelled
        with anyio.CancelScope() as scope:
            cancels.append(native_cancel(scope))
            ready.set()
            try:
                await waiting
            except anyio.get_cancelled_exc_class():
                cancelled = True

    async def cancel_it() -> None:
        await ready.wait()
        cancels[0]()

    async with anyio.create_task_group() as tg:
        tg.start_soon(cancel_it)  # waits first: woken as the waiter yields for the first time
        tg.start_soon(wait_for_it)
    return cancelled


async def lets_others_run(call: Awaitable[object]) -> bool:
    """Whether awaiting ``call`` let the loop run something else (a scheduling point)."""
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:  # trio
        import trio.testing

        with trio.testing.assert_checkpoints():
            await call
        return True
    ran: list[bool] = []
    loop.call_soon(ran.append, True)  # runs at this task's first yield
    await call
    return ran == [True]


@pytest.mark.parametrize("hang", [0, os.WNOHANG])
async def test_a_wait_that_finds_a_status_at_once_is_a_scheduling_point(hang: int) -> None:
    """(A loop that polls with ``WNOHANG`` must let the child's other end run; the yield comes
    before the reap, where a cancel loses nothing.)"""
    pid = await aos.posix_spawn("/bin/true", ["true"], ENV)
    await aos.waitid(os.P_PID, pid, os.WEXITED | os.WNOWAIT)
    assert await lets_others_run(aos.waitpid(pid, hang))
    pid = await aos.posix_spawn("/bin/true", ["true"], ENV)
    await aos.waitid(os.P_PID, pid, os.WEXITED | os.WNOWAIT)
    assert await lets_others_run(aos.wait())
    pid = await spawn_python("import time; time.sleep(0.2)")
    assert await lets_others_run(aos.waitpid(pid, os.WNOHANG))
    assert await aos.waitpid(pid, 0) == (pid, 0)


@contextlib.asynccontextmanager
async def busy_sibling() -> AsyncIterator[Callable[[], int]]:
    """A sibling task, always ready to run, that counts its steps: how many there were so far."""
    steps = 0
    started = anyio.Event()

    async def busy() -> None:
        nonlocal steps
        started.set()
        while True:
            steps += 1
            await anyio.lowlevel.checkpoint()

    async with anyio.create_task_group() as tg:
        tg.start_soon(busy)
        await started.wait()
        yield lambda: steps
        tg.cancel_scope.cancel()


async def test_back_to_back_lone_spawns_let_the_loop_run(monkeypatch: pytest.MonkeyPatch) -> None:
    """A lone spawn holds the loop's thread for 0.1-1 ms: once a slice has passed and the loop
    has not run since, the next one lets other tasks run first."""
    monkeypatch.setattr(_loop_slice, "INLINE_SLICE", 0.0)  # every slice has passed
    pids: list[int] = []

    async def spawn() -> None:
        pids.append(await aos.posix_spawn("/bin/true", ["true"], ENV))

    try:
        await spawn()
        for _ in range(3):
            assert await lets_others_run(spawn())
    finally:
        for pid in pids:
            assert await aos.waitpid(pid, 0) == (pid, 0)


async def test_a_lone_spawn_after_a_wait_that_suspended_needs_no_yield(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The wait for a running child let the loop run: the spawn that follows makes no
    scheduling point of its own (a loop iteration, 1-3% of a spawn and wait of ``/bin/true``),
    yet still raises a cancel that came meanwhile, and spawns nothing."""
    monkeypatch.setattr(_loop_slice, "INLINE_SLICE", 0.0)  # every slice has passed
    pids: list[int] = []
    try:
        async with busy_sibling() as steps:
            pids.append(await aos.posix_spawn("/bin/sleep", ["sleep", "0.05"], ENV))
            for _ in range(3):
                before = steps()
                assert await aos.waitpid(pids[-1], 0) == (pids.pop(), 0)  # it suspends
                assert steps() > before
                before = steps()
                pids.append(await aos.posix_spawn("/bin/sleep", ["sleep", "0.05"], ENV))
                assert steps() == before
            with anyio.CancelScope() as scope:
                assert await aos.waitpid(pids[-1], 0) == (pids.pop(), 0)
                scope.cancel()
                pids.append(await aos.posix_spawn("/bin/true", ["true"], ENV))
            assert scope.cancelled_caught
            assert not pids
    finally:
        for pid in pids:
            assert await aos.waitpid(pid, 0) == (pid, 0)


async def test_a_caller_cancelled_already_starts_no_system_command(tmp_path: Path) -> None:
    ran = tmp_path / "ran"
    with anyio.CancelScope() as scope:
        scope.cancel()
        await aos.system(f"touch {ran}")
    assert scope.cancelled_caught
    for _ in range(1000):  # until a call that began has finished
        if WAIT_LANE.is_idle():
            break
        await anyio.sleep(0.01)
    assert not await off_loop(ran.exists)


async def test_waits_cancelled_in_a_loop_leave_no_thread_each() -> None:
    """A ``waitid(..., WNOWAIT)`` that has begun runs on until a child changes state: the
    waits that time out, one after another, share the one still in flight."""
    r, w = os.pipe()
    pid = await spawn_python(
        "import sys; sys.stdin.read()", file_actions=[(os.POSIX_SPAWN_DUP2, r, 0)]
    )
    os.close(r)
    pidfd = os.pidfd_open(pid)
    try:
        before = threading.active_count()
        waits: list[Callable[[], Awaitable[object]]] = [
            aos.wait,
            lambda: aos.waitpid(pid, os.WUNTRACED),
            lambda: aos.waitid(os.P_PIDFD, pidfd, os.WEXITED | os.WSTOPPED),
        ]
        for waiting in waits * 20:
            with anyio.move_on_after(0.005):
                await waiting()
        assert threading.active_count() <= before + len(waits)  # one for each, at most
    finally:
        os.close(pidfd)
        os.close(w)
    assert await aos.waitpid(pid, 0) == (pid, 0)


async def test_a_wait_on_a_pidfd_whose_number_named_another_child_sees_its_own() -> None:
    """A cancelled wait on a pidfd runs on in a worker, watching its child. Once that pidfd is
    closed, its number may name another child: a wait on it must not join the call in flight
    (shared by arguments, it never saw the new child's exit)."""
    options = os.WEXITED | os.WSTOPPED  # (stops: a worker's wait, not the loop's)
    r, w = os.pipe()
    first = await spawn_python(
        "import sys; sys.stdin.read()", file_actions=[(os.POSIX_SPAWN_DUP2, r, 0)]
    )
    os.close(r)
    try:
        watched = os.pidfd_open(first)
        with anyio.move_on_after(0.05):
            await aos.waitid(os.P_PIDFD, watched, options)
        os.close(watched)
        second = await aos.posix_spawn("/bin/true", ["true"], ENV)
        reused = os.pidfd_open(second)
        try:
            assert reused == watched  # (the lowest free number)
            with anyio.fail_after(20):
                result = await aos.waitid(os.P_PIDFD, reused, options)
            assert result is not None
            assert (result.si_pid, result.si_code) == (second, os.CLD_EXITED)
        finally:
            os.close(reused)
    finally:
        os.close(w)
    assert await aos.waitpid(first, 0) == (first, 0)


def test_a_wait_that_joins_a_look_which_finds_no_child_looks_again() -> None:
    """A wait joined a shared ``waitid(WNOWAIT)`` whose call had found no child (before its
    own child existed): it got ChildProcessError. It gets ``None`` now, and attempts again."""
    lane = SharedWaits()
    began, go_on = threading.Event(), threading.Event()

    def peek(*args: object) -> object:
        began.set()
        go_on.wait()
        raise ChildProcessError(errno.ECHILD, os.strerror(errno.ECHILD))

    outcomes: list[tuple[object, BaseException | None]] = []
    finished = threading.Semaphore(0)

    def finish(job: Job) -> None:
        outcomes.append((job.value, job.error))
        finished.release()

    subject = (os.P_ALL, 0, os.WEXITED | os.WNOWAIT)
    lane.submit(Job(peek, subject, {}, finish))
    assert began.wait(10)
    lane.submit(Job(peek, subject, {}, finish))  # joins the call that has begun
    go_on.set()
    assert finished.acquire(timeout=10)
    assert finished.acquire(timeout=10)
    assert outcomes == [(None, None), (None, None)]


async def test_random_cancellations_never_lose_a_status() -> None:
    rng = random.Random(7)
    kinds = ["pidfd", "waitid", "all", "stopped"]
    for round_ in range(24):
        kind = kinds[round_ % len(kinds)]
        delay = rng.uniform(0, 0.03)
        pid = await spawn_python(f"import time; time.sleep({rng.uniform(0, 0.03)})")
        got: list[int] = []
        with anyio.move_on_after(delay):
            if kind == "pidfd":
                got.append((await aos.waitpid(pid, 0))[0])
            elif kind == "waitid":
                result = await aos.waitid(os.P_PID, pid, os.WEXITED)
                assert result is not None
                got.append(result.si_pid)
            elif kind == "all":
                got.append((await aos.waitpid(-1, 0))[0])
            else:
                got.append((await aos.waitpid(pid, os.WUNTRACED))[0])
        if got:
            assert got == [pid]
        else:  # cancelled: the status is still there, seen exactly once
            assert await aos.waitpid(pid, 0) == (pid, 0)
        with pytest.raises(ChildProcessError):
            await aos.waitpid(pid, os.WNOHANG)


async def test_cancelled_spawn_leaves_no_child() -> None:
    with anyio.CancelScope() as scope:
        scope.cancel()
        await aos.posix_spawn("/bin/true", ["true"], ENV)
    assert scope.cancelled_caught
    # A cancelled P_WAIT: the caller never had the pid, so aos kills and reaps the child.
    with anyio.move_on_after(0.2) as scope:
        await aos.spawnv(os.P_WAIT, PY, python("import time; time.sleep(60)"))
    assert scope.cancelled_caught
    with pytest.raises(ChildProcessError):
        await aos.waitpid(-1, os.WNOHANG)


async def test_cancelled_system_lets_its_command_finish(tmp_path: Path) -> None:
    done = tmp_path / "done"
    with anyio.move_on_after(0.05) as scope:
        await aos.system(f"sleep 0.3; touch {done}")
    assert scope.cancelled_caught
    for _ in range(400):
        await anyio.sleep(0.05)
        if await off_loop(done.exists):
            break
    for _ in range(400):  # system(3) reaps its child right after
        if not await off_loop(children_of_this_process):
            break
        await anyio.sleep(0.05)
    assert await off_loop(done.exists)


# --- no thread per child ------------------------------------------------------------------


async def test_a_thousand_children_waited_on_without_a_thread_each() -> None:
    count = 1000
    r, w = os.pipe()
    pids: list[int] = []
    results: dict[int, tuple[int, int]] = {}
    try:
        actions = [
            (os.POSIX_SPAWN_DUP2, r, 0),
            (os.POSIX_SPAWN_OPEN, 1, "/dev/null", os.O_WRONLY, 0),
        ]
        for _ in range(count):
            pids.append(await aos.posix_spawnp("cat", ["cat"], ENV, file_actions=actions))
        before = threading.active_count()

        async def waiter(pid: int) -> None:
            results[pid] = await aos.waitpid(pid, 0)

        async with anyio.create_task_group() as tg:
            for pid in pids:
                tg.start_soon(waiter, pid)
            for _ in range(20):  # let every waiter reach its wait
                await anyio.sleep(0.01)
            during = threading.active_count()
            os.close(w)
            w = -1
        assert during - before <= 2, (before, during)
        assert results == {pid: (pid, 0) for pid in pids}
    finally:
        os.close(r)
        if w != -1:
            os.close(w)
            for pid in pids:
                if pid not in results:
                    await aos.waitpid(pid, 0)
