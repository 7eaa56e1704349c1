"""The offload engine: results, errors, cancellation policies, lanes, pool growth, loops, fork."""

from __future__ import annotations

import asyncio
import collections
import gc
import os
import random
import sys
import threading
import time
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import anyio
import anyio.lowlevel
import anyio.to_thread
import pytest
import trio
import trio.lowlevel

import aos
import aos._async._tuning as tuning
from aos._async import _completions, _engine, _inline, _loop_slice, _workers
from aos._async._offload import QUERY, call
from aos._async._workers import Job, Pool, drop
from tests.aio._helpers import (
    end_a_loop_in_a_cleanup,
    loop_factories,
    loop_not_woken,
    native_cancel,
    run_child,
    until,
)
from tests.conftest import child_pids, eager_loop, open_fds, pool_size_kept

pytestmark = pytest.mark.anyio

REAL_STAT = os.stat  # blockbuster's wrapper raises inside an except block, setting __context__
WAIT_S = 10.0  # a generous bound for waiting on worker threads; never a timing assertion


def gated(
    value: str, started: threading.Event, gate: threading.Event, ran: list[str] | None = None
) -> Callable[[], str]:
    """A call that says it has begun, waits until ``gate`` is set, notes in ``ran`` that it
    returned, and returns ``value``."""

    def call() -> str:
        started.set()
        gate.wait(WAIT_S)
        if ran is not None:
            ran.append("syscall returned")
        return value

    return call


@pytest.fixture(scope="module", autouse=True)
def _uvloop_warmed_up() -> None:
    """uvloop opens a pipe pair on its first loop and keeps it for the process: not a leak."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is optional
        return
    loop = uvloop.new_event_loop()
    loop.run_until_complete(asyncio.sleep(0))
    loop.close()


@pytest.fixture
def max_workers() -> Iterator[None]:
    """Restore the pool size a test changes."""
    with pool_size_kept():
        yield
        limit = tuning.max_workers()
    # threads told to exit by a shrink are gone before the next test looks at this process
    assert until(lambda: _alive("aos-worker") <= max(limit, _workers.FILESYSTEM.threads()))


def _alive(name: str) -> int:
    return sum(1 for t in threading.enumerate() if t.name == name)


# results and errors


async def test_result_is_the_functions_result(tmp_path: Any) -> None:
    expected = await anyio.to_thread.run_sync(os.stat, tmp_path)
    assert await _engine.run_abandonable(os.stat, (tmp_path,), {}, wait_lane=False) == expected
    assert await _engine.run_to_completion(os.stat, (tmp_path,), {}, None) == expected
    assert await _engine.run_abandonable(os.stat, (tmp_path,), {}, wait_lane=True) == expected


async def test_kwargs_are_passed() -> None:
    def fn(a: int, *, b: int) -> tuple[int, int]:
        return a, b

    assert await _engine.run_abandonable(fn, (1,), {"b": 2}, wait_lane=False) == (1, 2)
    assert await _engine.run_to_completion(fn, (3,), {"b": 4}, None) == (3, 4)


@pytest.mark.parametrize("policy", ["abandonable", "wait_lane", "to_completion"])
async def test_exception_propagates_unchanged(policy: str, tmp_path: Any) -> None:
    error = OSError(2, "No such file or directory", str(tmp_path / "x"))

    def fail() -> None:
        raise error

    if policy == "to_completion":
        call = _engine.run_to_completion(fail, (), {}, None)
    else:
        call = _engine.run_abandonable(fail, (), {}, wait_lane=policy == "wait_lane")
    with pytest.raises(OSError, match="No such file") as info:
        await call
    assert info.value is error
    assert error.__cause__ is None
    assert error.__context__ is None


async def test_real_os_error_fields(tmp_path: Any) -> None:
    missing = str(tmp_path / "missing")
    with pytest.raises(FileNotFoundError) as info:
        await _engine.run_abandonable(REAL_STAT, (missing,), {}, wait_lane=False)
    assert info.value.errno == 2
    assert info.value.filename == missing
    assert info.value.__context__ is None


def test_outside_an_event_loop_gives_anyios_error() -> None:
    def run_bare(coro: Any) -> BaseException:
        try:
            coro.send(None)
        except BaseException as exc:
            return exc
        finally:
            coro.close()
        raise AssertionError("the coroutine ran without an event loop")

    reference = run_bare(anyio.to_thread.run_sync(os.getpid))
    ours = run_bare(_engine.run_abandonable(os.getpid, (), {}, wait_lane=False))
    mutate = run_bare(_engine.run_to_completion(os.getpid, (), {}, None))
    assert type(ours) is type(reference)
    assert type(mutate) is type(reference)
    assert str(ours) == str(reference)


# cancellation


async def test_query_cancel_returns_at_once_and_drops_the_result() -> None:
    started, gate, finished = threading.Event(), threading.Event(), threading.Event()

    def blocked() -> str:
        started.set()
        gate.wait(WAIT_S)
        finished.set()
        return "dropped"

    outcome: list[str] = []

    async def caller() -> None:
        outcome.append(await _engine.run_abandonable(blocked, (), {}, wait_lane=False))

    async with anyio.create_task_group() as tg:
        tg.start_soon(caller)
        await anyio.to_thread.run_sync(started.wait, WAIT_S)
        tg.cancel_scope.cancel()
    assert not finished.is_set()  # the cancel came back while the worker still ran
    gate.set()
    await anyio.to_thread.run_sync(finished.wait, WAIT_S)
    assert outcome == []
    # the engine keeps working after an abandoned call
    assert await _engine.run_abandonable(os.getpid, (), {}, wait_lane=False) == os.getpid()


async def test_wait_lane_cancel_returns_at_once() -> None:
    started, gate = threading.Event(), threading.Event()

    def blocked() -> None:
        started.set()
        gate.wait(WAIT_S)

    with anyio.CancelScope() as scope:
        async with anyio.create_task_group() as tg:
            tg.start_soon(_abandonable, blocked, True)
            await anyio.to_thread.run_sync(started.wait, WAIT_S)
            scope.cancel()
    assert scope.cancelled_caught
    assert not gate.is_set()
    gate.set()


@pytest.mark.parametrize("with_release", [True, False], ids=["resource", "value"])
async def test_mutate_cancel_waits_for_the_call(with_release: bool) -> None:
    """A scope's cancel while the call runs: the call returns first. A resource is released and
    the cancel raised; a value is the caller's (as anyio's and trio's ``to_thread`` return it),
    and the cancel lands at its next checkpoint, so it knows the call happened."""
    started, gate = threading.Event(), threading.Event()
    released: list[str] = []
    returned: list[str] = []
    events: list[str] = []

    mutate = gated("result", started, gate, events)

    scope = anyio.CancelScope()

    async def caller() -> None:
        with scope:
            returned.append(
                await _engine.run_to_completion(
                    mutate, (), {}, released.append if with_release else None
                )
            )
            await anyio.lowlevel.checkpoint()
            events.append("ran past the next checkpoint")
        events.append("caller returned")

    async with anyio.create_task_group() as tg:
        tg.start_soon(caller)
        await anyio.to_thread.run_sync(started.wait, WAIT_S)
        scope.cancel()
        await anyio.sleep(0.01)  # give a wrong engine the chance to return early
        events.append("still waiting")
        gate.set()
    assert scope.cancelled_caught
    assert events == ["still waiting", "syscall returned", "caller returned"]
    assert returned == ([] if with_release else ["result"])
    assert released == (["result"] if with_release else [])


async def test_mutate_error_is_raised_not_released_on_cancel() -> None:
    started, gate = threading.Event(), threading.Event()
    error = PermissionError(13, "Permission denied")
    released: list[object] = []

    def mutate() -> None:
        started.set()
        gate.wait(WAIT_S)
        raise error

    caught: list[BaseException] = []

    async def caller() -> None:
        try:
            await _engine.run_to_completion(mutate, (), {}, released.append)
        except PermissionError as exc:
            caught.append(exc)

    with anyio.CancelScope() as scope:
        async with anyio.create_task_group() as tg:
            tg.start_soon(caller)
            await anyio.to_thread.run_sync(started.wait, WAIT_S)
            scope.cancel()
            gate.set()
    assert len(caught) == 1
    assert caught[0] is error
    assert released == []


async def test_mutate_without_cancel_keeps_its_result() -> None:
    released: list[object] = []
    assert await _engine.run_to_completion(lambda: 7, (), {}, released.append) == 7
    assert released == []


class _Holder:
    """An object whose method runs on a worker: nothing of aos may keep it once the call is over."""

    def answer(self, fail: bool) -> int:
        if fail:
            raise FileNotFoundError(2, "No such file or directory")
        return 7

    def release(self, value: object) -> None:
        """(a MUTATE call's release: the job holds it until the caller takes the value)"""


@pytest.mark.parametrize(
    ("policy", "fail"),
    [("query", False), ("query", True), ("mutate", False), ("mutate", True)],
    ids=["query", "query-error", "mutate", "mutate-error"],
)
async def test_a_finished_call_holds_nothing_of_the_callers(
    policy: str, fail: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Once a call has returned, the worker that ran it (still finishing up, here held back
    after reporting) keeps no reference to its function, value or release: an object dropped
    by the caller goes at once, as an ``os.scandir`` iterator dropped unclosed warns at once."""
    checked = threading.Event()
    real_finish = _completions.Channel.finish

    def finish_and_linger(self: _completions.Channel, job: Job) -> None:
        real_finish(self, job)
        checked.wait(WAIT_S)  # (on the worker, after the caller was handed the job)

    monkeypatch.setattr(_completions.Channel, "finish", finish_and_linger)
    holder = _Holder()
    gone = weakref.ref(holder)
    try:
        try:
            if policy == "query":
                value = await call(QUERY, None, holder.answer, fail)
            else:
                value = await _engine.run_to_completion(holder.answer, (fail,), {}, holder.release)
        except FileNotFoundError:
            assert fail
        else:
            assert (value, fail) == (7, False)
        del holder
        gc.collect()
        assert gone() is None
    finally:
        checked.set()


def test_mutate_waits_through_a_native_asyncio_cancel() -> None:
    started, gate = threading.Event(), threading.Event()
    released: list[str] = []

    mutate = gated("fd", started, gate)

    async def main() -> list[str]:
        task = asyncio.ensure_future(_engine.run_to_completion(mutate, (), {}, released.append))
        await asyncio.to_thread(started.wait, WAIT_S)
        task.cancel()
        await asyncio.sleep(0.01)
        order = ["done" if task.done() else "waiting"]
        gate.set()
        with pytest.raises(asyncio.CancelledError):
            await task
        return order

    assert asyncio.run(main()) == ["waiting"]
    assert released == ["fd"]


@pytest.mark.parametrize("factory", loop_factories())
def test_asyncio_timeout_around_a_mutate_call_times_out_and_leaves_no_cancel(
    factory: Callable[[], asyncio.AbstractEventLoop],
) -> None:
    """asyncio's own cancel is delivered once: a call that has a value but no resource still
    raises it after the call has returned, so ``asyncio.timeout`` raises ``TimeoutError`` and
    the task runs on uncancelled (a cancel re-armed for the next await would outlive the block
    on 3.11 and 3.12)."""
    started, gate = threading.Event(), threading.Event()
    done: list[str] = []

    mutate = gated("value", started, gate, done)

    expiries: list[asyncio.Future[None]] = []

    async def expire_once_running(deadline: asyncio.Timeout) -> None:
        await asyncio.to_thread(started.wait, WAIT_S)
        deadline.reschedule(asyncio.get_running_loop().time())  # (the call has begun)
        await asyncio.sleep(0.01)
        gate.set()

    async def call_timed() -> None:
        async with asyncio.timeout(None) as deadline:
            expiries.append(asyncio.ensure_future(expire_once_running(deadline)))
            await _engine.run_to_completion(mutate, (), {}, None)

    async def main() -> None:
        with pytest.raises(TimeoutError):
            await call_timed()
        await expiries[0]
        assert done == ["syscall returned"]
        task = asyncio.current_task()
        assert task is not None
        assert task.cancelling() == 0
        await asyncio.sleep(0)  # no cancel left to land here
        assert await _engine.run_to_completion(lambda: "value", (), {}, None) == "value"

    with asyncio.Runner(loop_factory=factory) as runner:
        runner.run(main())


@pytest.mark.parametrize("factory", loop_factories())
def test_an_asyncio_timeout_within_a_cancelled_anyio_scope_is_caught_by_the_scope(
    factory: Callable[[], asyncio.AbstractEventLoop],
) -> None:
    """An anyio scope's cancel, then an ``asyncio.timeout`` within the scope, both while one
    call runs: the scope catches the cancel, as it does around ``anyio.to_thread.run_sync``.
    The cancel raised was the timeout's own, which the timeout, counting two requests, let
    through, and which anyio's scope did not take for its own: it ended the task."""
    started, gate = threading.Event(), threading.Event()
    events: list[object] = []

    async def caller(scope: anyio.CancelScope, timeouts: list[asyncio.Timeout]) -> None:
        with scope:
            try:
                async with asyncio.timeout(None) as timeout:
                    timeouts.append(timeout)
                    events.append(await _engine.run_to_completion(mutate, (), {}, None))
                    await anyio.lowlevel.checkpoint()
                    events.append("ran past the checkpoint")
            except TimeoutError:
                events.append("TimeoutError")
        events.append(("scope caught", scope.cancelled_caught))
        task = asyncio.current_task()
        assert task is not None
        events.append(("cancelling", task.cancelling()))

    mutate = gated("value", started, gate)

    async def main() -> None:
        scope = anyio.CancelScope()
        timeouts: list[asyncio.Timeout] = []
        task = asyncio.ensure_future(caller(scope, timeouts))
        await asyncio.to_thread(started.wait, WAIT_S)
        scope.cancel()
        await asyncio.sleep(0.01)  # anyio delivers its cancel
        timeouts[0].reschedule(asyncio.get_running_loop().time())
        await asyncio.sleep(0.01)  # the timeout cancels the task too
        gate.set()
        await task

    with asyncio.Runner(loop_factory=factory) as runner:
        runner.run(main())
    assert events == [("scope caught", True), ("cancelling", 0)]


@pytest.mark.parametrize("kind", ["native", "anyio"])
@pytest.mark.parametrize("factory", loop_factories())
def test_a_cancel_that_meets_the_delivery_leaves_the_channel_balanced(
    factory: Callable[[], asyncio.AbstractEventLoop], kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A MUTATE caller cancelled (``task.cancel()``, or its anyio scope), then its delivery in
    the same loop iteration, before the task's step: the call's result is released, the cancel
    raised, and the channel no longer counts the caller as waiting, so the loop can still end."""
    released: list[str] = []

    async def caller(scope: anyio.CancelScope) -> None:
        with scope:
            await _engine.run_to_completion(lambda: "fd", (), {}, released.append)
        assert scope.cancelled_caught  # (anyio's cancel; a native one leaves the scope)

    async def main() -> None:
        channel = _completions.current()
        scope = anyio.CancelScope()
        with loop_not_woken(channel, monkeypatch) as until_finished:
            task = asyncio.ensure_future(caller(scope))
            await until_finished(1)
        if kind == "native":
            task.cancel()
        else:
            scope.cancel()
        channel.drain()  # finds the waiter cancelled
        if kind == "native":
            with pytest.raises(asyncio.CancelledError):
                await task
        else:
            await task
        assert channel._parked == 0

    with asyncio.Runner(loop_factory=factory) as runner:
        runner.run(main())
    assert released == ["fd"]


@pytest.mark.parametrize("native_first", [True, False], ids=["native-first", "anyio-first"])
@pytest.mark.parametrize("factory", loop_factories())
def test_a_native_cancel_beside_an_anyio_one_is_raised_when_the_call_fails(
    factory: Callable[[], asyncio.AbstractEventLoop], native_first: bool
) -> None:
    """``task.cancel()`` and an enclosing anyio scope's cancel in the same loop iteration, and
    the call fails: asyncio delivers its cancel once, so the task ends as it does around a
    plain await cancelled the same way (anyio 4.7's scope swallows the native cancel when its
    own came first; later versions let it through), never with the call's error, which would
    leave the scope while the task runs on as if never cancelled."""
    started, gate = threading.Event(), threading.Event()

    def fail() -> None:
        started.set()
        gate.wait(WAIT_S)
        raise FileNotFoundError(2, "No such file or directory")

    async def plain() -> None:
        started.set()
        await asyncio.sleep(WAIT_S)

    async def through_aos() -> None:
        await _engine.run_to_completion(fail, (), {}, None)

    async def outcome(call: Callable[[], Awaitable[None]]) -> list[str]:
        events: list[str] = []

        async def caller(scope: anyio.CancelScope) -> None:
            try:
                with scope:
                    await call()
            except FileNotFoundError:
                events.append("error")
            events.append("ran on")

        scope = anyio.CancelScope()
        task = asyncio.ensure_future(caller(scope))
        await asyncio.to_thread(started.wait, WAIT_S)
        cancels = [task.cancel, scope.cancel]
        for cancel in cancels if native_first else reversed(cancels):
            cancel()
        gate.set()
        try:
            await task
        except asyncio.CancelledError:
            events.append("cancelled")
        started.clear()
        gate.clear()
        return events

    async def main() -> tuple[list[str], list[str]]:
        return await outcome(plain), await outcome(through_aos)

    try:
        with asyncio.Runner(loop_factory=factory) as runner:
            expected, got = runner.run(main())
    finally:
        gate.set()
    assert "error" not in got
    assert got == expected


# lanes and the pool


async def test_wait_calls_never_starve_filesystem_calls(max_workers: None, tmp_path: Any) -> None:
    tuning.set_max_workers(1)
    gate = threading.Event()
    entered = threading.Semaphore(0)

    def wait_forever() -> None:
        entered.release()
        gate.wait(WAIT_S)

    try:
        async with anyio.create_task_group() as tg:
            for _ in range(3):  # more blocked WAIT calls than filesystem workers
                tg.start_soon(_abandonable, wait_forever, True)
            for _ in range(3):
                await anyio.to_thread.run_sync(entered.acquire)
            expected = await anyio.to_thread.run_sync(os.stat, tmp_path)
            assert (
                await _engine.run_abandonable(os.stat, (tmp_path,), {}, wait_lane=False) == expected
            )
            gate.set()
    finally:
        gate.set()


async def test_filesystem_pool_is_bounded(max_workers: None) -> None:
    tuning.set_max_workers(2)
    lock = threading.Lock()
    running = [0, 0]  # now, most

    def call() -> None:
        with lock:
            running[0] += 1
            running[1] = max(running[1], running[0])
        time.sleep(0.005)
        with lock:
            running[0] -= 1

    async with anyio.create_task_group() as tg:
        for _ in range(12):
            tg.start_soon(_abandonable, call, False)
    assert running[1] <= 2
    assert _workers.FILESYSTEM.threads() <= 2


async def _abandonable(fn: Any, wait_lane: bool) -> None:
    await _engine.run_abandonable(fn, (), {}, wait_lane=wait_lane)


def _finishing_job(fn: Any, done: threading.Semaphore) -> Job:
    return Job(fn, (), {}, lambda job: done.release())


def test_pool_grows_on_demand_and_idle_threads_exit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_workers, "IDLE_TIMEOUT", 0.05)
    pool = Pool("test", 3)
    assert pool.threads() == 0
    gate, done = threading.Event(), threading.Semaphore(0)
    for _ in range(5):
        pool.submit(_finishing_job(lambda: gate.wait(WAIT_S), done))
    assert pool.threads() == 3  # grew to its limit, no further
    gate.set()
    for _ in range(5):
        assert done.acquire(timeout=WAIT_S)
    assert until(lambda: pool.threads() == 0)  # all idle threads left
    assert not [t for t in threading.enumerate() if t.name == "aos-test"]


async def test_a_cancel_is_not_lost_when_a_mutating_call_fails() -> None:
    """asyncio delivers a native ``task.cancel()`` once: if the call it waited for fails, the
    cancel is raised, not the call's error. anyio's and trio's cancels stay pending in their
    scope: the error is raised, and the cancel lands at the next checkpoint."""
    outcome: list[str] = []

    def fail_slowly() -> None:
        time.sleep(0.1)
        raise FileExistsError(17, "File exists")

    async def victim(task_status: Any) -> None:
        try:
            with anyio.CancelScope() as scope:
                task_status.started(native_cancel(scope))
                try:
                    await _engine.run_to_completion(fail_slowly, (), {}, None)
                except FileExistsError:
                    outcome.append("error")
                await anyio.sleep(5)
                outcome.append("survived the cancel")
        except anyio.get_cancelled_exc_class():
            outcome.append("cancelled")

    async with anyio.create_task_group() as tg:
        cancel = await tg.start(victim)
        await anyio.sleep(0.02)  # the call is running
        cancel()
    assert "survived the cancel" not in outcome
    assert outcome in (["cancelled"], ["error"])


def test_a_job_whose_thread_cannot_start_is_taken_back(monkeypatch: pytest.MonkeyPatch) -> None:
    """The submitter gets the error, and the job never runs later (its caller is gone)."""
    monkeypatch.setattr(_workers, "IDLE_TIMEOUT", 0.05)
    pool = Pool("nostart", 1)
    ran: list[str] = []
    done = threading.Semaphore(0)
    start = threading.Thread.start

    def refuse(thread: threading.Thread) -> None:
        raise RuntimeError("can't start new thread")

    monkeypatch.setattr(threading.Thread, "start", refuse)
    with pytest.raises(RuntimeError, match="can't start new thread"):
        pool.submit(_finishing_job(lambda: ran.append("refused"), done))
    assert pool.threads() == 0
    assert pool.is_idle()
    monkeypatch.setattr(threading.Thread, "start", start)
    pool.submit(_finishing_job(lambda: ran.append("next"), done))
    assert done.acquire(timeout=WAIT_S)
    assert not done.acquire(timeout=0.1)
    assert ran == ["next"]
    assert until(lambda: pool.threads() == 0)


async def test_a_call_whose_thread_cannot_start_leaves_the_channel_balanced(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    channel = _completions.current()
    pool = Pool("nostart-channel", 1)

    def refuse(thread: threading.Thread) -> None:
        raise RuntimeError("can't start new thread")

    with monkeypatch.context() as patch:
        patch.setattr(threading.Thread, "start", refuse)
        with pytest.raises(RuntimeError, match="can't start new thread"):
            await channel.run_abandonable(pool, os.getpid, (), {})
    assert not channel._busy()  # nothing counted as in flight: the ring is not used for it
    assert channel._parked == 0
    assert "proc" in await aos.listdir("/")  # the channel still answers


async def test_a_wake_up_resumes_at_most_a_batch_of_finished_calls(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Finished calls beyond DELIVER_BATCH wait for the next wake-up, which the drain signals."""
    delivered_per_drain: list[int] = []
    drain, deliver = _completions.Channel.drain, _completions.Channel._deliver

    def counting_drain(self: _completions.Channel) -> None:
        delivered_per_drain.append(0)
        drain(self)

    def counting_deliver(self: _completions.Channel, job: Job) -> None:
        delivered_per_drain[-1] += 1
        deliver(self, job)

    monkeypatch.setattr(_completions.Channel, "drain", counting_drain)
    monkeypatch.setattr(_completions.Channel, "_deliver", counting_deliver)
    channel = _completions.current()  # (the asyncio channel binds its drain when made)
    calls = 3 * _completions.DELIVER_BATCH + 1
    arrived: list[Job] = []
    all_arrived = anyio.Event()

    def notify(job: Job) -> None:
        arrived.append(job)
        if len(arrived) == calls:
            all_arrived.set()

    with loop_not_woken(channel, monkeypatch) as until_finished:
        for _ in range(calls):
            channel.start(os.getpid, (), notify)
        await until_finished(calls)
    assert len(channel._done) == calls
    os.eventfd_write(channel._fd, 1)
    with anyio.fail_after(WAIT_S):
        await all_arrived.wait()
    assert sum(delivered_per_drain) == calls
    assert max(delivered_per_drain) == _completions.DELIVER_BATCH
    assert len([n for n in delivered_per_drain if n]) == 4


def test_pool_is_idle_only_when_no_job_is_queued_or_running(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(_workers, "IDLE_TIMEOUT", 0.05)
    pool = Pool("idle", 1)
    assert pool.is_idle()
    gate, done = threading.Event(), threading.Semaphore(0)
    for _ in range(2):  # one runs, one waits in the queue
        pool.submit(_finishing_job(lambda: gate.wait(WAIT_S), done))
    assert not pool.is_idle()
    gate.set()
    for _ in range(2):
        assert done.acquire(timeout=WAIT_S)
    assert until(pool.is_idle)
    assert until(lambda: pool.threads() == 0)


def test_jobs_taken_back_never_run_and_leave_the_queue(monkeypatch: pytest.MonkeyPatch) -> None:
    """Taking a queued job back only marks it; workers skip it, and once taken-back jobs are
    half the queue they are cleared out, so the queue does not keep them."""
    monkeypatch.setattr(_workers, "COMPACT_AFTER", 64)
    pool = Pool("withdraw", 1)
    gate, done = threading.Event(), threading.Semaphore(0)
    pool.submit(_finishing_job(lambda: gate.wait(WAIT_S), done))  # the sole worker, busy
    ran: list[int] = []
    jobs = [_finishing_job(lambda i=i: ran.append(i), done) for i in range(1000)]
    for job in jobs:
        pool.submit(job)
    kept = list(range(0, 1000, 7))
    taken_back = [i for i in range(1000) if i % 7]
    random.Random(5).shuffle(taken_back)
    assert all(pool.withdraw(jobs[i]) for i in taken_back)
    assert not pool.withdraw(jobs[taken_back[0]])  # not twice
    assert len(pool._jobs) <= 2 * len(kept) + 64
    assert not pool.is_idle()
    gate.set()
    for _ in range(1 + len(kept)):
        assert done.acquire(timeout=WAIT_S)
    assert not done.acquire(timeout=0.1)
    assert ran == kept
    assert not pool.withdraw(jobs[0])  # it ran
    assert until(pool.is_idle)


def test_a_job_handed_over_to_the_wait_lane_is_not_taken_back_by_its_first_pool(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Once a worker has taken a job, its pool cannot take it back, even while the job waits
    in the wait lane's queue (handed over): it runs there, and both queues stay consistent."""
    wait_lane = Pool("wait-test", 1)
    monkeypatch.setattr(_workers, "WAIT_LANE", wait_lane)
    pool = Pool("hands-over", 1)
    gate, done = threading.Event(), threading.Semaphore(0)
    wait_lane.submit(_finishing_job(lambda: gate.wait(WAIT_S), done))  # its sole worker, busy
    ran: list[str] = []

    def hand_over() -> None:
        raise _workers.HandOver(lambda: ran.append("in the wait lane"))

    job = _finishing_job(hand_over, done)
    pool.submit(job)
    assert until(lambda: job.queue is wait_lane)
    assert not pool.withdraw(job)
    assert until(pool.is_idle)
    gate.set()
    for _ in range(2):
        assert done.acquire(timeout=WAIT_S)
    assert ran == ["in the wait lane"]
    assert until(wait_lane.is_idle)
    pool.submit(_finishing_job(lambda: ran.append("next"), done))  # still wakes a worker
    assert done.acquire(timeout=WAIT_S)
    assert ran == ["in the wait lane", "next"]


def test_shrinking_the_pool_lets_extra_threads_exit() -> None:
    pool = Pool("shrink", 4)
    gate, done = threading.Event(), threading.Semaphore(0)
    for _ in range(4):
        pool.submit(_finishing_job(lambda: gate.wait(WAIT_S), done))
    gate.set()
    for _ in range(4):
        assert done.acquire(timeout=WAIT_S)
    pool.set_limit(1)
    assert until(lambda: pool.threads() == 1)
    pool.submit(_finishing_job(lambda: None, done))
    assert done.acquire(timeout=WAIT_S)


def test_a_pool_shrunk_while_its_queue_is_full_runs_no_more_than_its_new_limit() -> None:
    """Threads beyond the new limit leave as they come back to the queue, full or not: before,
    they left only once it was empty, which a steady load never lets happen."""
    pool = Pool("shrink-busy", 4)
    gate, done = threading.Event(), threading.Semaphore(0)
    running = peak = 0
    lock = threading.Lock()

    def counted() -> None:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
        time.sleep(0.01)
        with lock:
            running -= 1

    for _ in range(4):  # four threads, all busy
        pool.submit(_finishing_job(lambda: gate.wait(WAIT_S), done))
    pool.set_limit(1)
    for _ in range(8):
        pool.submit(_finishing_job(counted, done))
    gate.set()
    for _ in range(12):
        assert done.acquire(timeout=WAIT_S)
    assert peak == 1
    assert until(lambda: pool.threads() == 1)


def test_worker_threads_are_daemons() -> None:
    pool = Pool("daemon", 1)
    done = threading.Semaphore(0)
    pool.submit(_finishing_job(lambda: None, done))
    assert done.acquire(timeout=WAIT_S)
    workers = [t for t in threading.enumerate() if t.name == "aos-daemon"]
    assert workers
    assert all(t.daemon for t in workers)


# the completion channel


def test_one_loop_wake_up_per_batch(monkeypatch: pytest.MonkeyPatch) -> None:
    wakes: list[int] = []
    original = _completions.Channel.wake_loop

    def counting(self: _completions.Channel) -> None:
        wakes.append(1)
        original(self)

    monkeypatch.setattr(_completions.Channel, "wake_loop", counting)
    loop = asyncio.new_event_loop()
    try:
        channel = _completions.AsyncioChannel(loop)
        futures = [loop.create_future() for _ in range(20)]
        jobs = [
            channel.submit(_workers.FILESYSTEM, pow, (i, 2), {}, fut)
            for i, fut in enumerate(futures)
        ]
        assert until(lambda: channel._completed == len(jobs))  # the loop has not run: no drain
        assert wakes == [1]
        loop.run_until_complete(asyncio.wait_for(asyncio.gather(*futures), WAIT_S))
        assert [_completions.outcome(job) for job in jobs] == [i * i for i in range(20)]
        channel._guard.cancel()
        loop.run_until_complete(asyncio.gather(channel._guard, return_exceptions=True))
        assert not channel.open
    finally:
        loop.close()


@pytest.mark.parametrize("factory", loop_factories())
def test_a_loop_closed_without_shutting_down_leaves_no_channel_behind(
    factory: Callable[[], asyncio.AbstractEventLoop], caplog: pytest.LogCaptureFixture
) -> None:
    """``run_until_complete`` then ``close`` never cancels the channel's guard: the next loop
    to open a channel closes that one (eventfd, ring), and lets the closed loop go."""
    closed = factory()
    closed.run_until_complete(aos.stat("/"))
    channel = _completions._channels[id(closed)]
    closed_ref = weakref.ref(closed)
    closed.close()
    del closed
    with asyncio.Runner(loop_factory=factory) as runner:  # a loop that ends properly
        runner.run(aos.stat("/"))
        assert not channel.open
        assert channel not in _completions._channels.values()
    del channel
    gc.collect()
    assert closed_ref() is None  # nothing of aos keeps the closed loop alive
    assert "destroyed but it is pending" not in caplog.text


async def _open_and_close(path: str) -> None:
    while True:
        os.close(await aos.open(path, os.O_RDONLY))


async def _fwalk(path: str) -> None:
    while True:
        async for _ in aos.fwalk(path):
            pass


async def _spawnv(path: str) -> None:
    while True:
        await aos.spawnv(os.P_WAIT, "/bin/sleep", ["sleep", "0.02"])


@pytest.mark.parametrize("factory", loop_factories())
@pytest.mark.parametrize(
    "calls", [_open_and_close, _fwalk, _spawnv], ids=["open", "fwalk", "spawnv"]
)
def test_a_loop_closed_while_calls_wait_leaves_no_fd_or_child(
    factory: Callable[[], asyncio.AbstractEventLoop],
    calls: Callable[[str], Awaitable[None]],
    tmp_path: Any,
) -> None:
    """Tasks still awaiting aos calls when their loop is closed (``run_until_complete``, then
    ``close``) never resume: the fds their calls opened are closed (fwalk's directory fds too),
    and the children ``spawnv`` started are killed and reaped, as the calls finish, as the tasks
    are collected, or when the next loop opens a channel and closes that one."""
    for name in ("a", "b", "a/c"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "file").write_bytes(b"x")
    before = open_fds()

    path = str(tmp_path / "a" / "file" if calls is _open_and_close else tmp_path)

    async def main() -> None:
        pending = [asyncio.ensure_future(calls(path)) for _ in range(4)]
        await asyncio.sleep(0.05)
        assert not any(task.done() for task in pending)

    closed = factory()
    closed.run_until_complete(main())
    closed.close()  # the four tasks are still pending
    del closed
    gc.collect()
    with asyncio.Runner(loop_factory=factory) as runner:  # the next loop to use aos
        runner.run(aos.stat("/"))

    def released() -> bool:
        gc.collect()  # (the destroyed tasks, and what they held)
        return not child_pids() and open_fds() <= before

    assert until(released), (sorted(open_fds() - before), child_pids())


@pytest.mark.parametrize(
    "factory",
    [
        *loop_factories(),
        pytest.param(
            eager_loop,
            id="asyncio-eager",
            marks=pytest.mark.skipif(sys.version_info < (3, 12), reason="eager factories: 3.12+"),
        ),
    ],
)
def test_a_channel_first_opened_by_a_cleanup_at_the_loops_end_closes_with_the_loop(
    factory: Callable[[], asyncio.AbstractEventLoop], caplog: pytest.LogCaptureFixture
) -> None:
    """The loop's end cancels the tasks it has; a task's cleanup then opens the loop's first
    channel, whose guard task nobody cancels. The loop's ``shutdown_asyncgens`` closes it, and
    its eventfd, before the loop closes (it used to stay open until another loop's channel)."""
    with asyncio.Runner(loop_factory=factory) as runner:  # a first uvloop opens fds of its own
        runner.run(asyncio.sleep(0))
    channels: list[_completions.Channel] = []

    async def cleanup() -> None:
        assert await aos.path.isdir("/")
        channels.append(_completions.current())

    before = _open_fds()
    end_a_loop_in_a_cleanup(factory, cleanup, open_channel_first=False)
    [channel] = channels
    assert not channel.open
    assert channel not in _completions._channels.values()
    assert _open_fds() <= before
    assert "destroyed but it is pending" not in caplog.text


@pytest.mark.parametrize("factory", loop_factories())
def test_a_channel_first_opened_while_the_loop_shuts_down_async_generators_closes(
    factory: Callable[[], asyncio.AbstractEventLoop], recwarn: pytest.WarningsRecorder
) -> None:
    """An async generator's cleanup, run by the loop's ``shutdown_asyncgens``, makes the
    loop's first aos call: its channel closes once idle, before the loop closes, without the
    loop's warning about a generator first iterated after that shutdown (uvloop gives it)."""
    with asyncio.Runner(loop_factory=factory) as runner:  # a first uvloop opens fds of its own
        runner.run(asyncio.sleep(0))
    channels: list[_completions.Channel] = []
    suspended: list[AsyncIterator[None]] = []

    async def generator() -> AsyncIterator[None]:
        try:
            yield
        finally:
            assert await aos.path.isdir("/")
            channels.append(_completions.current())

    async def main() -> None:
        suspended.append(generator())
        await anext(suspended[0])  # left suspended: the loop's shutdown closes it

    before = _open_fds()
    with asyncio.Runner(loop_factory=factory) as runner:
        runner.run(main())
    [channel] = channels
    assert not channel.open
    assert _open_fds() <= before
    assert not [w for w in recwarn if issubclass(w.category, ResourceWarning)]


LATE_CALLER_CHILD = """
import asyncio, os, signal, sys, tempfile
import aos
from aos._async import _completions

signal.alarm(10)  # a hang ends the child with SIGALRM
fifo = os.path.join(tempfile.mkdtemp(), "fifo")
os.mkfifo(fifo)

async def late() -> None:  # made by a cleanup: the loop's end never cancels it
    loop = asyncio.get_running_loop()
    while loop not in _completions._ending_loops:  # the loop shuts down its async generators
        await asyncio.sleep(0)
    await aos.open(fifo, os.O_RDONLY)  # no writer ever comes

async def owner(started: asyncio.Event) -> None:
    try:
        started.set()
        await asyncio.sleep(3600)
    finally:
        await aos.path.isdir("/")  # the loop's first channel
        asyncio.get_running_loop().create_task(late())

async def main() -> None:
    started = asyncio.Event()
    asyncio.get_running_loop().create_task(owner(started))
    await started.wait()

factory = asyncio.new_event_loop
if sys.argv[1] == "uvloop":
    import uvloop
    factory = uvloop.new_event_loop
with asyncio.Runner(loop_factory=factory) as runner:
    runner.run(main())
print("ended")
os._exit(0)  # the worker stays blocked in the open
"""


@pytest.mark.parametrize("loop", [p.id for p in loop_factories()])
def test_a_call_that_never_ends_made_as_the_loop_ends_does_not_hold_the_loop_open(
    loop: str,
) -> None:
    """The loop shuts down its async generators and finds no caller waiting: the channel
    closes then, so a call that a never-cancelled task makes just after (and that never
    returns) goes to a channel of its own instead of keeping ``asyncio.run`` from ending."""
    assert run_child(LATE_CALLER_CHILD, loop) == "ended\n"


@pytest.mark.skipif(sys.version_info < (3, 12), reason="eager task factories are new in 3.12")
def test_a_channel_made_at_the_loops_end_works_with_an_eager_task_factory() -> None:
    """A channel made after the loop's end cancelled the first one closes once idle; its guard,
    run at once by an eager task factory, must not close it before its first caller parks.
    (asyncio's loop only: uvloop 0.23 refuses eager task factories.)"""
    results: list[bool] = []

    async def cleanup() -> None:
        first = _completions.current()
        for _ in range(1000):  # until the loop's end has closed the first channel
            if not first.open:
                break
            await asyncio.sleep(0)
        assert not first.open
        async with asyncio.timeout(WAIT_S):  # type: ignore[attr-defined,unused-ignore]
            results.append(await call(QUERY, None, os.path.isdir, "/"))  # on a new channel
        assert _completions.current() is not first

    end_a_loop_in_a_cleanup(eager_loop, cleanup)
    assert results == [True]


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_channel_fd_closes_when_the_loop_ends_even_with_a_call_running(backend: str) -> None:
    started, gate, finished = threading.Event(), threading.Event(), threading.Event()

    def slow() -> None:
        started.set()
        gate.wait(WAIT_S)
        finished.set()

    async def main() -> set[int]:
        with anyio.move_on_after(WAIT_S) as scope:
            async with anyio.create_task_group() as tg:
                tg.start_soon(_abandonable, slow, False)
                await anyio.to_thread.run_sync(started.wait, WAIT_S)
                scope.cancel()
        return _open_fds()

    before = _open_fds()
    during = anyio.run(main, backend=backend)
    assert during - before  # the channel's fd existed while the loop ran
    gate.set()
    assert finished.wait(WAIT_S)
    assert until(lambda: _open_fds() <= before)  # the last running job closed it


def run_with_cleanup_at_its_end(
    anyio_backend: tuple[str, dict[str, Any]],
    cleanup: Callable[[], Awaitable[None]],
    path: Any,
) -> None:
    """Run a loop whose end runs ``cleanup``: in a trio system task's shielded cleanup, or in
    an asyncio task that the shutdown of the run cancels. Fails if the run never ends."""
    backend, options = anyio_backend

    async def lingering() -> None:
        try:
            await anyio.sleep_forever()
        finally:
            with anyio.CancelScope(shield=True):
                await cleanup()

    async def main() -> None:
        if backend == "trio":
            trio.lowlevel.spawn_system_task(lingering)
        else:
            asyncio.get_running_loop().create_task(lingering())
        await aos.stat(path)  # the run's channel exists
        await anyio.sleep(0.01)

    done = threading.Event()

    def run() -> None:
        anyio.run(main, backend=backend, backend_options=options)
        done.set()

    runner = threading.Thread(target=run, daemon=True)
    runner.start()
    assert done.wait(WAIT_S), "the run never ended"
    runner.join()


@pytest.mark.parametrize("late", [False, True], ids=["channel-open", "channel-closed"])
def test_a_call_made_by_cleanup_while_the_run_ends_is_answered(
    anyio_backend: tuple[str, dict[str, Any]],
    late: bool,
    tmp_path: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """trio: a system task's shielded cleanup; asyncio: a task the shutdown of the run cancels.
    The run's own channel is still closing, or has closed already (a new one serves)."""
    monkeypatch.setattr(_inline, "enabled", False)  # a worker answers: the channel must serve
    answers: list[object] = []

    async def cleanup() -> None:
        if late:
            await anyio.sleep(0.05)  # the run's channel has closed by now
        answers.append((await aos.stat(tmp_path)).st_ino)
        await aos.mkdir(tmp_path / "made")  # a mutation, too
        answers.append(await aos.path.isdir(tmp_path / "made"))
        answers.append([top async for top, _, _ in aos.walk(tmp_path)])  # and read-ahead
        async with anyio.create_task_group() as tg:  # more at once than a wake-up resumes
            for i in range(3 * _completions.DELIVER_BATCH + 1):
                tg.start_soon(aos.mkdir, tmp_path / "made" / f"d{i}")  # the ring, if usable
                tg.start_soon(aos.stat, tmp_path)
        answers.append(len(await aos.listdir(tmp_path / "made")))

    run_with_cleanup_at_its_end(anyio_backend, cleanup, tmp_path)
    assert answers == [
        os.stat(tmp_path).st_ino,
        True,
        [str(tmp_path), str(tmp_path / "made")],
        3 * _completions.DELIVER_BATCH + 1,
    ]


def test_trio_system_tasks_taking_turns_as_the_run_ends_finish_their_cleanup(
    anyio_backend_name: str, tmp_path: Any
) -> None:
    """Once trio's batch ender has stopped, a batch's end (handing the inline turn on, sending
    the ring's queue) runs at the next batch: run at once, handing the turn on asked for the
    next batch's end from within, endlessly (RecursionError; the run hung or trio failed)."""
    if anyio_backend_name != "trio":
        pytest.skip("trio's system tasks outlive the run's other tasks")
    done: list[int] = []
    target = tmp_path / "target"
    target.write_bytes(b"")

    async def worker(i: int) -> None:
        try:
            while True:
                await aos.stat(target)
        finally:
            with trio.CancelScope(shield=True):
                for _ in range(5):
                    await aos.stat(target)
                await aos.symlink(target, tmp_path / f"l{i}")  # the ring, if usable
                await aos.unlink(tmp_path / f"l{i}")
                done.append(i)

    async def main() -> None:
        for i in range(32):
            trio.lowlevel.spawn_system_task(worker, i)
        await trio.sleep(0.02)

    finished = threading.Event()

    def run() -> None:
        trio.run(main)
        finished.set()

    runner = threading.Thread(target=run, daemon=True)
    runner.start()
    assert finished.wait(WAIT_S), f"the run never ended ({len(done)} of 32 cleanups done)"
    runner.join()
    assert sorted(done) == list(range(32))


@pytest.mark.skipif(not _inline.enabled, reason="no openat2/statmount on this kernel")
def test_a_refused_inline_call_that_waited_for_its_turn_as_the_run_ended_is_answered(
    anyio_backend: tuple[str, dict[str, Any]], tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A cleanup's call the kernel cannot answer inline (procfs) waits for its turn first; the
    run's channel may close meanwhile, and its worker must then be reached through the channel
    of now (through the old one, the call was never answered and the run never ended)."""
    monkeypatch.setattr(_loop_slice, "INLINE_SLICE", 0.0)  # every inline call waits its turn
    answers: list[object] = []

    async def cleanup() -> None:
        answers.append((await aos.stat(tmp_path)).st_ino)
        await aos.mkdir(tmp_path / "made")
        answers.append(await aos.path.isdir("/proc/self"))

    run_with_cleanup_at_its_end(anyio_backend, cleanup, tmp_path)
    assert answers == [os.stat(tmp_path).st_ino, True]


def _open_fds() -> set[int]:
    return {int(fd) for fd in os.listdir("/proc/self/fd")}


def test_several_loops_in_several_threads_at_once(tmp_path: Any) -> None:
    expected = os.stat(tmp_path)
    results: dict[str, list[bool]] = {}
    backends: list[tuple[str, dict[str, Any]]] = [("asyncio", {}), ("trio", {})] * 2

    async def main(name: str) -> None:
        async def one() -> None:
            for _ in range(50):
                got = await _engine.run_abandonable(os.stat, (tmp_path,), {}, wait_lane=False)
                results[name].append(got == expected)
                await _engine.run_to_completion(os.getpid, (), {}, None)

        async with anyio.create_task_group() as tg:
            for _ in range(8):
                tg.start_soon(one)

    def run(i: int, backend: tuple[str, dict[str, Any]]) -> None:
        name = f"{backend[0]}-{i}"
        results[name] = []
        anyio.run(main, name, backend=backend[0], backend_options=backend[1])

    threads = [
        threading.Thread(target=run, args=(i, b), daemon=True) for i, b in enumerate(backends)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(WAIT_S * 6)
    assert len(results) == len(backends)
    assert all(len(r) == 400 and all(r) for r in results.values())


def test_engine_works_in_a_forked_child(tmp_path: Any) -> None:
    script = f"""
import asyncio, os, signal, sys, trio
from aos._async import _engine, _workers

async def stat():
    return await _engine.run_abandonable(os.stat, ({str(tmp_path)!r},), {{}}, wait_lane=False)

asyncio.run(stat())  # the parent has workers and (closed) channels now
assert _workers.FILESYSTEM.threads() >= 1
pid = os.fork()
if pid == 0:
    signal.alarm(30)  # a child that hangs must not outlive a failed test (the parent's timeout
    code = 1          # kills only the parent)
    try:
        assert _workers.FILESYSTEM.threads() == 0
        assert asyncio.run(stat()) == os.stat({str(tmp_path)!r})
        assert trio.run(stat) == os.stat({str(tmp_path)!r})
        code = 0
    finally:
        os._exit(code)
_, status = os.waitpid(pid, 0)
assert asyncio.run(stat()) == os.stat({str(tmp_path)!r})  # the parent goes on too
sys.exit(os.waitstatus_to_exitcode(status))
"""
    run_child(script)


# tuning


def test_set_max_workers_validates(max_workers: None) -> None:
    tuning.set_max_workers(3)
    assert tuning.max_workers() == 3
    with pytest.raises(ValueError, match="at least 1"):
        tuning.set_max_workers(0)
    with pytest.raises(TypeError):
        tuning.set_max_workers(2.0)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        tuning.set_max_workers(True)
    assert tuning.max_workers() == 3
    assert set(tuning.__all__) == {"max_workers", "set_max_workers"}


def test_max_workers_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AOS_MAX_WORKERS", "5")
    assert _workers.default_max_workers() == 5
    monkeypatch.setenv("AOS_MAX_WORKERS", "zero")
    with pytest.raises(ValueError, match="AOS_MAX_WORKERS"):
        _workers.default_max_workers()
    monkeypatch.delenv("AOS_MAX_WORKERS")
    assert _workers.default_max_workers() == max(2, min(8, os.cpu_count() or 1))


async def test_on_trio_a_job_is_submitted_under_ki_protection(
    anyio_backend_name: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    """A KeyboardInterrupt arriving between submitting a job and parking the task would leave
    the job naming a task that no longer waits for it (trio then fails to reschedule it)."""
    if anyio_backend_name != "trio":
        pytest.skip("a trio property: asyncio delivers KeyboardInterrupt outside the tasks")
    import trio

    protected: list[bool] = []
    submit = _completions.Channel.submit

    def watching_submit(self: Any, *args: Any, **kwargs: Any) -> Job:
        protected.append(trio.lowlevel.currently_ki_protected())
        return submit(self, *args, **kwargs)

    monkeypatch.setattr(_completions.Channel, "submit", watching_submit)
    assert await aos.getcwd() == await anyio.to_thread.run_sync(os.getcwd)  # QUERY
    await aos.mkdir(tmp_path / "made")  # MUTATE (a lone call: a worker)
    assert protected == [True, True]


def _spin_until(predicate: Callable[[], bool]) -> bool:
    """Wait for ``predicate`` without sleeping (on the loop's thread, as ``Thread.start`` waits
    there for the thread to begin)."""
    deadline = time.monotonic() + WAIT_S
    while not predicate():
        if time.monotonic() > deadline:
            return False
        os.sched_yield()
    return True


def _interrupting_start(
    monkeypatch: pytest.MonkeyPatch, mode: str, ready: Callable[[], bool] = lambda: True
) -> threading.Event:
    """Make the next ``Thread.start`` of an aos worker raise KeyboardInterrupt, as a Ctrl-C
    does while it waits for the thread to begin: ``took`` once the thread took its job
    (``ready()``), ``began`` while the thread is held before it is back at the queue (until
    the returned event is set), ``never`` before the thread was made."""
    real_start, real_worker = threading.Thread.start, _workers._Worker
    gate, held = threading.Event(), threading.Event()
    interrupted: list[threading.Thread] = []

    class HeldWorker(real_worker):  # type: ignore[misc,valid-type]
        def __init__(self) -> None:
            held.set()
            gate.wait(WAIT_S)
            super().__init__()

    def start(self: threading.Thread) -> None:
        if not self.name.startswith("aos-") or interrupted:
            return real_start(self)
        interrupted.append(self)
        if mode != "never":
            real_start(self)
            assert held.wait(WAIT_S) if mode == "began" else _spin_until(ready)
        raise KeyboardInterrupt

    monkeypatch.setattr(threading.Thread, "start", start)
    if mode == "began":
        monkeypatch.setattr(_workers, "_Worker", HeldWorker)
    else:
        gate.set()
    return gate


@pytest.mark.parametrize("mode", ["took", "began", "never"])
def test_a_ctrl_c_while_a_worker_starts_is_raised_and_the_pool_stays_whole(
    monkeypatch: pytest.MonkeyPatch, mode: str
) -> None:
    """The interrupt comes out of ``submit`` (it was taken for a thread that could not start,
    and lost where the thread had taken the job). A thread that began is counted once back at
    the queue, one never made is not; the job runs where the thread took it, else it is taken
    back; later jobs run."""
    pool = Pool("interrupted", 4)
    ran: list[str] = []
    job = Job(ran.append, ("ran",), {}, drop)
    gate = _interrupting_start(monkeypatch, mode, ready=lambda: job.taken)
    with pytest.raises(KeyboardInterrupt):
        pool.submit(job)
    assert job.taken == (mode == "took")
    gate.set()
    assert until(lambda: pool.is_idle() and pool.threads() == (0 if mode == "never" else 1))
    assert (pool._waking, pool._starting) == (0, set())
    done = threading.Event()
    pool.submit(Job(done.set, (), {}, drop))
    assert done.wait(WAIT_S)
    assert ran == (["ran"] if mode == "took" else [])
    pool.set_limit(0)  # (its threads leave)
    assert until(lambda: pool.threads() == 0)


@pytest.mark.parametrize("mode", ["took", "never"])
async def test_a_ctrl_c_while_a_worker_starts_leaves_the_channel_balanced_and_no_fd(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch, mode: str
) -> None:
    """The caller gets the interrupt; a call a worker had taken runs all the same, and the fd it
    opens is closed when it arrives (nobody will take it); the channel counts it, and later
    calls are answered."""
    target = tmp_path / "file"
    await anyio.to_thread.run_sync(target.touch)
    pool = Pool("interrupted", 2)
    channel = _completions.current()
    before = await anyio.to_thread.run_sync(open_fds)
    _interrupting_start(monkeypatch, mode, ready=lambda: not pool._waiting())
    with pytest.raises(KeyboardInterrupt):
        await _engine.run_to_completion(
            os.open, (str(target), os.O_RDONLY), {}, os.close, pool=pool
        )
    for _ in range(1000):  # (the delivery comes through the loop, after the count)
        closed = await anyio.to_thread.run_sync(open_fds) <= before
        if closed and channel._submitted == channel._completed:
            break
        await anyio.sleep(0.01)
    assert channel._submitted == channel._completed
    assert closed
    assert await _engine.run_to_completion(os.getpid, (), {}, None, pool=pool) == os.getpid()
    pool.set_limit(0)


class _InterruptedAppend(collections.deque):  # type: ignore[type-arg]
    """A pool's queue whose next ``append`` is interrupted (Ctrl-C) once the job is in it."""

    interrupted = False

    def append(self, job: Any) -> None:
        super().append(job)
        if not self.interrupted:
            self.interrupted = True
            raise KeyboardInterrupt


async def test_a_ctrl_c_once_a_call_is_queued_takes_it_back(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An interrupt that comes after a call was queued, before a worker was woken for it: the
    caller gets the interrupt, and the call is taken back, never to run (it ran later, when
    another call woke a worker, and the channel counted one call too few)."""
    pool = Pool("interrupted", 2)
    channel = _completions.current()
    ran: list[str] = []
    monkeypatch.setattr(pool, "_jobs", _InterruptedAppend())
    with pytest.raises(KeyboardInterrupt):
        await _engine.run_to_completion(ran.append, ("ran",), {}, None, pool=pool)
    assert await _engine.run_to_completion(os.getpid, (), {}, None, pool=pool) == os.getpid()
    assert channel._submitted == channel._completed
    assert ran == []
    pool.set_limit(0)
