"""stat and lstat answered on the loop's thread: same answers as os, a cancellation point all the
same, and the loop's turn once a slice has passed."""

from __future__ import annotations

import asyncio
import math
import os
import threading
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import anyio
import anyio.lowlevel
import pytest

import aos
from aos._async import _completions, _engine, _inline, _loop_slice
from aos._async._completions import INLINE_AT_ONCE
from tests.aio._helpers import error_facts, off_loop, os_error, take_route

pytestmark = [
    pytest.mark.anyio,
    pytest.mark.skipif(not _inline.enabled, reason="no openat2/statmount on this kernel"),
]


def fields(result: os.stat_result) -> dict[str, object]:
    return {name: getattr(result, name) for name in dir(result) if name.startswith("st_")}


@pytest.fixture(params=["ext4", "tmpfs"])
def place(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Path]:
    """A directory on the machine's ext4 (``/tmp``) or tmpfs (``/dev/shm``), with a file and a link."""
    if request.param == "tmpfs":
        shm = Path("/dev/shm")
        if not shm.is_dir():
            pytest.skip("no /dev/shm")
        place = shm / f"aos-inline-{os.getpid()}-{id(request)}"
    else:
        place = tmp_path / "place"
    place.mkdir()
    (place / "file").write_bytes(b"12345")
    (place / "link").symlink_to("file")
    yield place
    for name in ("link", "file"):
        (place / name).unlink()
    place.rmdir()


async def test_cached_paths_are_answered_inline_like_os(
    place: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    answered = take_route("inline", monkeypatch)
    calls: list[tuple[Path | str | bytes, bool]] = [
        (place / "file", True), (place / "link", False), (place, True),
        (str(place / "file"), True), (os.fsencode(place / "link"), False),
    ]  # fmt: skip
    # os first: the link is never read through, so no atime changes between the two.
    expected = await off_loop(lambda: [fields(os.stat(p, follow_symlinks=f)) for p, f in calls])
    got = [fields(await aos.stat(p, follow_symlinks=f)) for p, f in calls]
    assert got == expected
    assert answered() == len(calls)


async def test_a_missing_name_fails_like_os(place: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = [
        ("lstat", place / "missing"), ("stat", str(place / "file" / "below")),
        ("stat", os.fsencode(place / "missing")),
    ]  # fmt: skip
    # os first: the kernel then caches the misses, so aos can answer them inline.
    expected = [await os_error(getattr(os, name), path) for name, path in calls]
    taken = take_route("inline", monkeypatch)
    for (name, path), (kind, facts) in zip(calls, expected, strict=True):
        with pytest.raises(kind) as caught:
            await getattr(aos, name)(path)
        assert error_facts(caught.value) == facts, (name, path)
    if not str(place).startswith("/dev/shm"):  # tmpfs keeps no negative dentries; ext4 does,
        assert taken() == 2  # so both ENOENT misses are answered inline (ENOTDIR is not)


async def test_other_filesystems_go_to_a_worker(monkeypatch: pytest.MonkeyPatch) -> None:
    answered = take_route("inline", monkeypatch)
    expected = await off_loop(os.stat, "/proc")
    assert await aos.stat("/proc") == expected  # procfs is not on the in-memory list
    assert answered() == 0


EVERY_TIME = 0.0  # a slice that has always passed: every inline answer lets the loop run
NEVER = math.inf  # one that never passes: no answer lets the loop run, not even the first


@pytest.fixture(params=[EVERY_TIME, NEVER], ids=["slice-passed", "within-slice"])
def loop_slice(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> float:
    """The time inline answers may keep the loop, so that both of their await points run."""
    slice_: float = request.param
    monkeypatch.setattr(_loop_slice, "INLINE_SLICE", slice_)
    return slice_


async def count_ticks_during(work: Callable[[], Awaitable[object]]) -> int:
    """How many times another task ran while ``work`` was awaited."""
    ticks = 0

    async def tick() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await anyio.lowlevel.checkpoint()

    async with anyio.create_task_group() as tg:
        tg.start_soon(tick)
        await anyio.lowlevel.checkpoint()  # the ticker is running
        ticks = 0
        await work()
        counted = ticks  # (the ticker may run once more as the group exits)
        tg.cancel_scope.cancel()
    return counted


async def test_an_inline_answer_raises_a_pending_cancel(
    place: Path, monkeypatch: pytest.MonkeyPatch, loop_slice: float
) -> None:
    answered = take_route("inline", monkeypatch)
    with anyio.CancelScope() as scope:
        scope.cancel()
        await aos.stat(place / "file")
    assert scope.cancelled_caught
    assert answered() == 1  # answered, then its await point raised the cancel


async def test_inline_answers_let_the_loop_run_once_their_slice_has_passed(
    place: Path, monkeypatch: pytest.MonkeyPatch, loop_slice: float
) -> None:
    answered = take_route("inline", monkeypatch)

    async def stat_50_times() -> None:
        for _ in range(50):
            await aos.stat(place / "file")

    await aos.stat(place / "file")  # the slice starts (if it began long ago, this lets it run)
    ticks = await count_ticks_during(stat_50_times)
    assert answered() == 51
    if loop_slice == EVERY_TIME:
        assert ticks >= 49  # the loop ran other tasks after every answer (trio may run the
        # last answer's batch with the caller first)
    else:
        assert ticks == 0  # and never within the slice


async def test_while_answers_let_the_loop_run_one_iteration_answers_only_a_few_inline(
    place: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_loop_slice, "INLINE_SLICE", EVERY_TIME)
    answered = take_route("inline", monkeypatch)
    results: list[os.stat_result] = []

    async def look() -> None:
        results.append(await aos.stat(place / "file"))

    async with anyio.create_task_group() as tg:
        for _ in range(4 * INLINE_AT_ONCE):
            tg.start_soon(look)  # all start in the same loop iteration
    assert answered() == INLINE_AT_ONCE  # the others went to the engine
    assert len(results) == 4 * INLINE_AT_ONCE
    assert {r.st_size for r in results} == {5}


async def test_a_caller_cancelled_after_its_inline_answer_gives_its_slot_back(
    place: Path, monkeypatch: pytest.MonkeyPatch, loop_slice: float
) -> None:
    """The await point after an inline answer raises the cancel; the slot the answer held is
    free again, so later calls are still answered inline."""
    answered = take_route("inline", monkeypatch)
    for _ in range(2 * INLINE_AT_ONCE):
        with anyio.CancelScope() as scope:
            scope.cancel()
            await aos.stat(place / "file")
        assert scope.cancelled_caught
    assert answered() == 2 * INLINE_AT_ONCE
    assert (await aos.stat(place / "file")).st_size == 5
    assert answered() == 2 * INLINE_AT_ONCE + 1


class DrivenClock:
    """The slice's clock, moved on by 0.4 of a slice at each reading (one per answer, one per
    restart): a slice holds three inline answers, wherever this machine's time goes."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        self.now += _loop_slice.INLINE_SLICE / 10 * 4
        return self.now


@pytest.fixture
def driven_clock(monkeypatch: pytest.MonkeyPatch) -> DrivenClock:
    clock = DrivenClock()
    monkeypatch.setattr(_loop_slice, "_now", clock)
    return clock


async def answer_side_by_side(
    path: Path, tasks: int, calls: int, events: list[str] | None = None
) -> list[int]:
    """``tasks`` tasks make ``calls`` inline ``stat`` calls each, back to back; returns how many
    each had made when the first was done. ``events`` gets an "a" per answer."""
    made = [0] * tasks
    when_first_done: list[int] = []

    async def caller(i: int) -> None:
        for _ in range(calls):
            await aos.stat(path)
            made[i] += 1
            if events is not None:
                events.append("a")
        if not when_first_done:
            when_first_done.extend(made)

    async with anyio.create_task_group() as tg:
        for i in range(tasks):
            tg.start_soon(caller, i)
    return when_first_done


async def test_tasks_answered_inline_back_to_back_take_turns(
    place: Path, monkeypatch: pytest.MonkeyPatch, driven_clock: DrivenClock
) -> None:
    """Each slice goes to the waiting task served longest ago: restarted by whoever resumed
    first, it went on asyncio to the task that had just used one up (73 calls to 3000)."""
    answered = take_route("inline", monkeypatch)
    made = await answer_side_by_side(place / "file", tasks=4, calls=60)
    assert answered() == 4 * 60
    assert min(made) >= 60 * 3 // 4, made  # in turns of three answers each


async def test_tasks_answered_inline_share_one_slice_per_loop_turn(
    place: Path,
    monkeypatch: pytest.MonkeyPatch,
    driven_clock: DrivenClock,
    anyio_backend: tuple[str, object],
) -> None:
    """Between two runs of another task, the inline answers are one slice's (three with this
    clock) and at most one more per waiting task: not a slice for each task that waited. Trio
    runs each batch of tasks in either order, so two of its batches can fall between ticks."""
    take_route("inline", monkeypatch)
    turns = 2 if anyio_backend[0] == "trio" else 1
    events: list[str] = []
    tasks = 8

    async def tick() -> None:
        while True:
            events.append("t")
            await anyio.lowlevel.checkpoint()

    async with anyio.create_task_group() as tg:
        tg.start_soon(tick)
        await answer_side_by_side(place / "file", tasks=tasks, calls=30, events=events)
        tg.cancel_scope.cancel()
    runs = [len(run) for run in "".join(events).split("t")]
    assert max(runs) <= (3 + tasks) * turns, runs


async def test_an_answer_after_the_loop_ran_needs_no_scheduling_point(
    place: Path, monkeypatch: pytest.MonkeyPatch, anyio_backend: tuple[str, object]
) -> None:
    """Its slice long over, a call that comes after the caller let the loop run (a server
    awaiting its next request) starts a new slice at once where the channel can tell that the
    loop ran (asyncio, uvloop); on trio it passes a scheduling point."""
    monkeypatch.setattr(_loop_slice, "INLINE_SLICE", EVERY_TIME)
    answered = take_route("inline", monkeypatch)
    await aos.stat(place / "file")  # a slice begins
    channel = _completions.current()
    scheduling_points = 0
    loops_own = channel.checkpoint

    async def counted() -> None:
        nonlocal scheduling_points
        scheduling_points += 1
        await loops_own()

    monkeypatch.setattr(channel, "checkpoint", counted)
    await anyio.sleep(0.001)  # the loop runs (a server awaits its next request)
    await aos.stat(place / "file")
    assert answered() == 2
    assert scheduling_points == (1 if anyio_backend[0] == "trio" else 0)


async def test_a_native_asyncio_cancel_lands_at_an_inline_answer(
    place: Path, monkeypatch: pytest.MonkeyPatch, anyio_backend: tuple[str, object]
) -> None:
    """``task.cancel()`` of the running task (asyncio.Runner's on Ctrl-C, a task cancelling
    itself) is raised by the next inline answer, as by any await that yields, not a slice
    later: anyio's own check sees only anyio's cancel scopes."""
    if anyio_backend[0] != "asyncio":
        pytest.skip("a native asyncio cancel: trio's cancels are its scopes' (tested above)")
    monkeypatch.setattr(_loop_slice, "INLINE_SLICE", NEVER)
    answered = take_route("inline", monkeypatch)
    returned = 0

    async def cancelled_by_itself() -> None:
        nonlocal returned
        await aos.stat(place / "file")  # the slice starts
        task = asyncio.current_task()
        assert task is not None
        task.cancel()
        for _ in range(5):
            await aos.stat(place / "file")
            returned += 1

    task = asyncio.ensure_future(cancelled_by_itself())
    with pytest.raises(asyncio.CancelledError):
        await task
    assert returned == 0
    assert answered() == 2  # the second answer raised the cancel


async def test_calls_the_kernel_cannot_answer_inline_hold_their_slots_until_answered() -> None:
    """A refused attempt has run its syscalls on the loop's thread (on overlayfs, say): its
    slot stays taken until its worker answers, so such attempts stay as few as answers."""
    gate = threading.Event()
    attempts = 0

    def refuse(value: int) -> None:
        nonlocal attempts
        attempts += 1

    def gated(value: int) -> int:
        gate.wait(10.0)
        return value

    results: list[int] = []

    async def ask(value: int) -> None:
        results.append(await _engine.run_query(gated, (value,), {}, refuse))

    try:
        async with anyio.create_task_group() as tg:
            for value in range(4 * INLINE_AT_ONCE):
                tg.start_soon(ask, value)
            for _ in range(10):  # every task has made its call, none has been answered
                await anyio.lowlevel.checkpoint()
            assert attempts == INLINE_AT_ONCE
            gate.set()
    finally:
        gate.set()
    assert sorted(results) == list(range(4 * INLINE_AT_ONCE))
    assert attempts >= INLINE_AT_ONCE


async def test_the_route_can_be_switched_off(monkeypatch: pytest.MonkeyPatch) -> None:
    assert _inline._probe()  # this kernel has every piece (the module is skipped otherwise)
    monkeypatch.setenv(_inline.ENV_SWITCH, "0")
    assert not _inline._probe()


async def test_is_symlink_answers_as_islink_for_every_kind_of_path(place: Path) -> None:
    """The walk's symlink check: a directory takes one syscall, anything else the full statx;
    every answer given is ``os.path.islink``'s (a ``None`` sends the caller to a worker)."""
    links = {"dir-link": "dir", "dangling": "nowhere", "loop": "loop"}

    def make() -> None:
        (place / "dir").mkdir()
        for name, target in links.items():
            (place / name).symlink_to(target)

    def remove() -> None:
        for name in links:
            (place / name).unlink()
        (place / "dir").rmdir()

    names = ["dir", "dir-link", "dir-link/", "dir-link/.", "file", "link", "dangling", "loop",
             "missing", "file/below", "dir/../link"]  # fmt: skip
    paths: list[str | bytes] = [f"{place}/{name}" for name in names]
    paths.append(os.fsencode(place / "dir-link"))
    await off_loop(make)
    try:
        expected = await off_loop(lambda: [os.path.islink(p) for p in paths])  # warms the cache
        answers = [_inline.is_symlink(p) for p in paths]
        if answers[0] is None:
            pytest.skip("the kernel does not answer for this filesystem from its caches")
        assert [a for a in answers if a is not None] == [
            e for a, e in zip(answers, expected, strict=True) if a is not None
        ]
        assert answers[:2] == [False, True]  # the walk's cases
        assert answers[-1] is True
    finally:
        await off_loop(remove)
