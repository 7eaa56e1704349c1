"""Test set-up shared by every test: event-loop backends, blockbuster, leak checks."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

new_uvloop: Callable[[], asyncio.AbstractEventLoop] | None
try:
    from uvloop import new_event_loop as new_uvloop
except ImportError:  # uvloop is optional: its runs are added only where it is installed
    new_uvloop = None


def pytest_configure(config: pytest.Config) -> None:
    """Give each run a base temp dir of its own, removed at the end.

    pytest's default numbered dirs under /tmp/pytest-of-USER are shared by concurrent runs, and
    pytest 9.2's clean-up of old ones leaves a scandir iterator open (an unraisable
    ResourceWarning, which filterwarnings=error turns into a random failure after all tests).
    """
    if config.option.basetemp is None:
        config.option.basetemp = tempfile.mkdtemp(prefix="aos-tests-")
        config.stash[_OWN_BASETEMP] = config.option.basetemp
    _hear_ctrl_c()


def _hear_ctrl_c() -> None:
    """Let the children the tests start hear Ctrl-C, as they would started from a terminal.

    A shell without job control starts a background command (``.ci/run &``) with SIGINT
    ignored, children inherit that, and a Python started so never installs its handler: the
    Ctrl-C tests then found a CLI that finished its walk (status 0) and a server that never
    stopped.
    """
    if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


def pytest_unconfigure(config: pytest.Config) -> None:
    basetemp = config.stash.get(_OWN_BASETEMP, None)
    if basetemp is not None:
        try:
            shutil.rmtree(basetemp, ignore_errors=True)
        except RecursionError:  # 3.11's rmtree recurses; a test's deep tree was left behind
            subprocess.run(["rm", "-rf", "--", basetemp], check=False)


_OWN_BASETEMP = pytest.StashKey[str]()

BACKENDS: list[Any] = [
    pytest.param(("asyncio", {}), id="asyncio"),
    pytest.param(("trio", {}), id="trio"),
]
if new_uvloop is not None:
    BACKENDS.append(pytest.param(("asyncio", {"loop_factory": new_uvloop}), id="uvloop"))


def eager_loop() -> asyncio.AbstractEventLoop:
    """asyncio's loop with an eager task factory (3.12+): a new task runs at once, inside
    ``create_task``, until it first waits (an aos channel's guard once closed its channel
    that way before its first caller had parked)."""
    loop = asyncio.new_event_loop()
    loop.set_task_factory(asyncio.eager_task_factory)  # type: ignore[attr-defined,unused-ignore]
    return loop


if sys.version_info >= (3, 12):
    BACKENDS.append(pytest.param(("asyncio", {"loop_factory": eager_loop}), id="asyncio-eager"))


@pytest.fixture(params=BACKENDS)
def anyio_backend(request: pytest.FixtureRequest) -> tuple[str, dict[str, Any]]:
    """Every async test runs on asyncio and trio (and uvloop where installed).

    The list is explicit, so a missing trio fails loudly instead of being skipped.
    """
    backend: tuple[str, dict[str, Any]] = request.param
    return backend


@pytest.fixture(autouse=True, scope="session")
def _nothing_left_where_tests_run() -> Iterator[None]:
    """No test leaves anything in the directory the suite runs in (as a relative path that a
    call made would: a parity case once left 20 nested directories in the checkout)."""
    where = os.getcwd()
    before = set(os.listdir(where))
    yield
    left = set(os.listdir(where)) - before - {".pytest_cache", ".hypothesis"}
    assert not left, f"tests left {sorted(left)} in {where}"


@pytest.fixture(autouse=True, scope="session")
def _uvloop_warmed_up() -> None:
    """uvloop (0.23) opens a pipe with its first loop and keeps it for the life of the process,
    with or without aos: open it before the leak check takes its first count."""
    if new_uvloop is not None:
        new_uvloop().close()


@pytest.fixture
def pipe() -> Iterator[tuple[int, int]]:
    """A blocking pipe ``(read end, write end)``, closed after the test."""
    r, w = os.pipe()
    yield r, w
    os.close(r)
    os.close(w)


@contextlib.contextmanager
def pool_size_kept() -> Iterator[None]:
    """Give the filesystem pool back its size, and whether that size was the user's choice (the
    ring's default limit again), however the block changed them."""
    import aos  # (as the fixtures: conftest imports no aos at collection)
    from aos._async._workers import FILESYSTEM

    before, chosen = aos.max_workers(), FILESYSTEM.limit_chosen
    yield
    aos.set_max_workers(before)
    FILESYSTEM.limit_chosen = chosen


@pytest.fixture
def one_worker() -> Iterator[None]:
    """A filesystem pool of one thread: a call that held it would starve every other."""
    import aos

    with pool_size_kept():
        aos.set_max_workers(1)
        yield


def open_fds() -> set[int]:
    """The fds this process has open now."""
    return {int(fd) for fd in os.listdir("/proc/self/fd")} - {-1}


@pytest.fixture(autouse=True)
def _no_blocking_on_the_loop(request: pytest.FixtureRequest) -> Iterator[None]:
    """On asyncio, fail any async test whose event loop thread makes a blocking call."""
    if "anyio_backend" not in request.fixturenames:
        yield
        return
    backend = request.getfixturevalue("anyio_backend")
    if backend[0] != "asyncio":
        yield
        return
    from blockbuster import blockbuster_ctx

    with blockbuster_ctx():
        yield


@pytest.fixture(autouse=True)
def _no_leaked_fds_or_threads(request: pytest.FixtureRequest) -> Iterator[None]:
    """Every test leaves the fds and non-daemon threads it found, and no unreaped child."""
    before = open_fds()
    yield
    leaked = open_fds() - before
    if leaked:  # an fd may be waiting for its object to be collected, or for an abandoned
        # (cancelled QUERY) call to finish in the background: the last job of a closed loop
        # closes that loop's completion eventfd
        _wait_for_engine_idle(timeout=5.0)
        gc.collect()
        leaked = open_fds() - before
    assert not leaked, f"fds left open: {sorted(leaked)} -> {[_describe(fd) for fd in leaked]}"
    _join_finishing_threads(timeout=2.0)
    children = child_pids()
    assert not children, f"child processes left behind (running or unreaped): {children}"
    stray = [t for t in threading.enumerate() if not t.daemon and t is not threading.main_thread()]
    assert not stray, f"non-daemon threads left running: {stray}"


def _wait_for_engine_idle(timeout: float) -> None:
    """Wait until aos's workers (every pool) have no queued or running job: an abandoned call,
    such as a cancelled wait for any child, finishes a moment after its caller left."""
    from aos._async._workers import FILESYSTEM, SPAWNERS, WAIT_LANE

    deadline = time.monotonic() + timeout
    pools = (FILESYSTEM, WAIT_LANE, SPAWNERS)
    while not all(pool.is_idle() for pool in pools) and time.monotonic() < deadline:
        time.sleep(0.005)


def _join_finishing_threads(timeout: float) -> None:
    """Give non-daemon threads on their way out (AnyIO's workers leave a moment after their loop
    has closed) up to ``timeout`` seconds in all to end; ones still running then are leaks."""
    deadline = time.monotonic() + timeout
    for thread in threading.enumerate():
        if not thread.daemon and thread is not threading.main_thread():
            thread.join(max(0.0, deadline - time.monotonic()))


def child_pids() -> list[int]:
    """This process's children, running or zombie, from every thread's /proc list."""
    pids: list[int] = []
    for tid in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{tid}/children") as f:
                pids.extend(int(p) for p in f.read().split())
        except FileNotFoundError:  # the thread ended while we listed
            continue
    return pids


def _describe(fd: int) -> str:
    try:
        return os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        return "?"
