"""stat and lstat answered on the loop's thread: same answers as os, a cancellation point all the
same, and the loop's turn once a slice has passed."""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import random
import shlex
import statistics
import subprocess
import sysconfig
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import anyio
import anyio.lowlevel
import pytest

import aos
from aos._async import _completions, _engine, _inline, _loop_slice, _turns
from aos._async._kernel_form import AT_FDCWD
from tests.aio._helpers import error_facts, off_loop, os_error, take_route

pytestmark = [
    pytest.mark.anyio,
    pytest.mark.skipif(not _inline.enabled, reason="no openat2/statmount on this kernel"),
]


def fields(result: os.stat_result) -> dict[str, object]:
    """Every field: the named ones, and the sequence (whose times are whole seconds)."""
    named = {name: getattr(result, name) for name in dir(result) if name.startswith("st_")}
    return {**named, "sequence": tuple(result)}


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


@pytest.fixture(params=["C", "ctypes"])
def stat_route(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """The inline stat's syscalls and result built in C (where the module was compiled), or
    through ctypes: the same answers either way."""
    route = _inline._stat_cached_ctypes if request.param == "ctypes" else _inline.stat_cached_in_c
    if route is None:
        pytest.skip("aos was built without its C module (no C compiler)")
    monkeypatch.setattr(_inline, "_stat_cached", route)
    name: str = request.param
    return name


async def test_cached_paths_are_answered_inline_like_os(
    place: Path, monkeypatch: pytest.MonkeyPatch, stat_route: str
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


async def test_a_missing_name_fails_like_os(
    place: Path, monkeypatch: pytest.MonkeyPatch, stat_route: str
) -> None:
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


async def test_other_filesystems_go_to_a_worker(
    monkeypatch: pytest.MonkeyPatch, stat_route: str
) -> None:
    answered = take_route("inline", monkeypatch)
    expected = await off_loop(os.stat, "/proc")
    got = await aos.stat("/proc")  # procfs is not on the in-memory list
    # (/proc's link count follows the processes of the machine: it may change in between)
    assert (got.st_ino, got.st_dev, got.st_mode) == (
        expected.st_ino,
        expected.st_dev,
        expected.st_mode,
    )
    assert answered() == 0


def test_both_routes_answer_every_kind_of_file_as_os_does(tmp_path: Path) -> None:
    """The C and the ctypes route give ``os.stat``'s result for each kind of file, owner and
    group apart, times before 1970 and after 2038 included; a time past 2262 (nanoseconds beyond 64 bits) the C route
    leaves to ``os`` on a worker."""
    links = tmp_path / "links"
    links.mkdir()
    (links / "file").write_bytes(b"x" * 5000)
    (links / "link").symlink_to("file")
    (links / "dangling").symlink_to("missing")
    for link in ("link", "dangling"):
        # Following a link whose atime is due for an update (relatime: a new link's, until a
        # clock tick after the follow that updated it) leaves the cached lookup: EAGAIN, and
        # aos asks a worker. Here the answers themselves are compared: an atime not due.
        os.utime(links / link, ns=(time.time_ns() + 3_600 * 10**9, 0), follow_symlinks=False)
    os.mkfifo(links / "fifo")
    # (0.000181133 s past a second is where sec + ns * 1e-9, os's float, and sec + ns / 1e9 differ)
    times = {"epoch": 1_000_181_133, "old": -1_500_000_001, "y2100": 4_102_444_800_123_456_789}
    for name, ns in times.items():
        (links / name).touch()
        os.utime(links / name, ns=(ns + 3 * 86_400 * 10**9, ns))  # atime 3 days later
    with contextlib.suppress(PermissionError):  # (root only: else they stay the caller's)
        os.chown(links / "file", 1234, 5678)
    paths = [*sorted(links.iterdir()), links, Path("/dev/null"), Path("/"), Path("/usr/bin")]
    in_c = _inline.stat_cached_in_c
    routes: list[_inline.StatCached] = [_inline._stat_cached_ctypes]
    routes += [] if in_c is None else [in_c]
    for path in paths:
        for follow in (True, False):
            try:
                expected: object = fields(os.stat(path, follow_symlinks=follow))
            except OSError as error:
                expected = error.errno
            for route in routes:
                found = route(AT_FDCWD, os.fsencode(path), follow)
                got = fields(found[1]) if isinstance(found, tuple) else found
                assert got == expected, (route, path, follow)
    (links / "y2300").touch()
    os.utime(links / "y2300", ns=(10_413_792_000 * 10**9,) * 2)  # 2300-01-01
    y2300 = os.fsencode(links / "y2300")
    answer = _inline._stat_cached_ctypes(AT_FDCWD, y2300, True)
    assert isinstance(answer, tuple)
    assert fields(answer[1]) == fields(os.stat(links / "y2300"))
    assert in_c is None or in_c(AT_FDCWD, y2300, True) is None


def test_the_c_route_is_built_where_it_can_be(tmp_path: Path) -> None:
    """Where this Python can build the C module (a compiler, its headers, a libc that knows
    openat2), the install built it: the build hook only warns when it cannot."""
    source = Path(_inline.__file__).with_name("_inline_c.c")
    if os.environ.get("AOS_NO_EXTENSION") or not source.exists():
        pytest.skip("built without the C module on purpose, or not from this checkout")
    link = shlex.split(str(sysconfig.get_config_var("LDSHARED") or "cc -shared"))
    include = f"-I{sysconfig.get_paths()['include']}"
    try:
        done = subprocess.run(
            [*link, "-fPIC", include, str(source), "-o", str(tmp_path / "module.so")],
            capture_output=True,
            check=False,
        )
    except OSError:  # no compiler
        pytest.skip("no C compiler: the ctypes route answers")
    if done.returncode != 0:
        pytest.skip(f"this Python cannot build the C module here: {done.stderr[-200:]!r}")
    assert _inline.stat_cached_in_c is not None


def test_the_c_route_loads_in_an_isolated_subinterpreter() -> None:
    """The C module keeps its state per module (multi-phase init): an isolated subinterpreter
    (its own GIL) loads it, and its answer is that interpreter's own ``os.stat_result``, where
    a single-phase module is refused there and the ctypes route answered."""
    if _inline.stat_cached_in_c is None:
        pytest.skip("the C module is not built here: the ctypes route answers")
    interpreters = pytest.importorskip("_interpreters", reason="isolated subinterpreters: 3.13+")
    code = (
        "import os, aos._async._inline as inline\n"
        "assert inline.stat_cached_in_c is not None, 'the C module was refused'\n"
        "found = inline.stat_cached_in_c(-100, b'/', True)\n"
        "assert type(found[1]) is os.stat_result and found[1] == os.stat('/'), found\n"
    )
    for _ in range(3):  # each new interpreter imports it afresh, and frees it at the end
        interpreter = interpreters.create()
        try:
            assert interpreters.run_string(interpreter, code) is None
        finally:
            interpreters.destroy(interpreter)


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


async def runs_between_ticks(work: Callable[[list[str]], Awaitable[object]]) -> list[int]:
    """Await ``work(events)`` while another task appends a "t" to ``events`` each time it
    runs; the number of other events (``work``'s) between each two ticks."""
    events: list[str] = []

    async def tick() -> None:
        while True:
            events.append("t")
            await anyio.lowlevel.checkpoint()

    async with anyio.create_task_group() as tg:
        tg.start_soon(tick)
        await work(events)
        tg.cancel_scope.cancel()
    return [len(run) for run in "".join(events).split("t")]


async def test_an_inline_answer_raises_a_pending_cancel(
    place: Path, monkeypatch: pytest.MonkeyPatch, loop_slice: float
) -> None:
    answered = take_route("inline", monkeypatch)
    with anyio.CancelScope() as scope:
        scope.cancel()
        await aos.stat(place / "file")
    assert scope.cancelled_caught
    assert answered() == 0  # its await point, before the answer, raised the cancel


async def test_an_inline_answer_in_a_shield_is_not_cancelled_but_the_next_one_outside_is(
    place: Path, monkeypatch: pytest.MonkeyPatch, loop_slice: float
) -> None:
    """A cancelled scope outside a shield does not reach an answer inside it, nor does one
    with a deadline still to come; once out of the shield, the cancel lands before the next."""
    answered = take_route("inline", monkeypatch)
    with anyio.CancelScope() as outer:
        outer.cancel()
        with anyio.CancelScope(shield=True), anyio.CancelScope(deadline=anyio.current_time() + 60):
            result = await aos.stat(place / "file")
        assert isinstance(result, os.stat_result)
        await aos.stat(place / "file")
    assert outer.cancelled_caught
    assert answered() == 1


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


async def test_a_caller_cancelled_at_its_inline_call_leaves_no_turn_behind(
    place: Path, monkeypatch: pytest.MonkeyPatch, loop_slice: float
) -> None:
    """The await point before an inline answer raises the cancel, whether or not the caller
    had to wait for a turn; no turn stays taken, so later calls are still answered inline."""
    answered = take_route("inline", monkeypatch)
    for _ in range(16):
        with anyio.CancelScope() as scope:
            scope.cancel()
            await aos.stat(place / "file")
        assert scope.cancelled_caught
    assert answered() == 0
    assert not _completions.current().turns.busy()
    assert (await aos.stat(place / "file")).st_size == 5
    assert answered() == 1


class DrivenClock:
    """The slice's clock, moved on by 0.22 of a slice at each reading (as an inline answer
    begins and as it ends, as a task resumes for its turn): a slice holds three answers,
    wherever this machine's time goes, and has passed as the third ends (so no task woken to
    share it answers after them)."""

    def __init__(self, step: float = 0.22) -> None:
        self.now = 0.0
        self.step = step  # of a slice

    def __call__(self) -> float:
        self.now += _loop_slice.INLINE_SLICE * self.step
        return self.now


def drive_clock(monkeypatch: pytest.MonkeyPatch, clock: DrivenClock) -> DrivenClock:
    """``clock`` is the slices' clock for the test."""
    monkeypatch.setattr(_loop_slice, "_now", clock)
    return clock


@pytest.fixture
def driven_clock(monkeypatch: pytest.MonkeyPatch) -> DrivenClock:
    return drive_clock(monkeypatch, DrivenClock())


@pytest.fixture
def cheap_clock(monkeypatch: pytest.MonkeyPatch) -> DrivenClock:
    """A clock that moves 0.01 of a slice a reading: a slice holds about 50 answers."""
    return drive_clock(monkeypatch, DrivenClock(step=0.01))


def count_wakes(monkeypatch: pytest.MonkeyPatch) -> Callable[[], int]:
    """Count the running loop's wake-ups of tasks parked for a turn from now on (the result
    says how many so far), checking that none wakes the task handing the turn on: it may be
    among those it chooses, but it is running and lets the loop run itself (woken as well,
    trio would fail on its next cancel)."""
    channel = _completions.current()
    wakes = 0
    wake = channel.wake_for_turn

    def counted(waiter: _turns.Waiter) -> None:
        nonlocal wakes
        wakes += 1
        assert waiter.task_id != id(channel.current_task())
        wake(waiter)

    monkeypatch.setattr(channel, "wake_for_turn", counted)
    return lambda: wakes


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
    clock): not a slice for each task that waited, nor an answer more for each (before it
    waits for its turn, a call makes no attempt). Trio runs each batch of tasks in either
    order, so two of its batches can fall between ticks."""
    take_route("inline", monkeypatch)
    turns = 2 if anyio_backend[0] == "trio" else 1
    runs = await runs_between_ticks(
        lambda events: answer_side_by_side(place / "file", tasks=8, calls=30, events=events)
    )
    assert max(runs) <= 3 * turns, runs


async def test_waiters_get_their_turns_when_the_holder_stops_mid_slice(
    place: Path, monkeypatch: pytest.MonkeyPatch, driven_clock: DrivenClock
) -> None:
    """Nobody sees a slice pass if its holder stops making inline calls before it has (it
    awaits something else): the tasks parked for a turn are woken all the same."""
    take_route("inline", monkeypatch)
    others_finished = anyio.Event()
    finished: list[int] = []

    async def stops_after(calls: int, index: int) -> None:
        for _ in range(calls):
            await aos.stat(place / "file")
        if index == 0:
            await others_finished.wait()  # holds no turn while it waits, whatever it held
        finished.append(index)
        if len(finished) == 5:
            others_finished.set()

    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            for index in range(6):
                tg.start_soon(stops_after, 2 + index % 3, index)
    assert sorted(finished) == list(range(6))
    assert not _completions.current().turns.busy()


@pytest.mark.parametrize("seed", range(6))
async def test_cancels_at_any_point_of_the_turns_lose_no_turn(
    place: Path,
    monkeypatch: pytest.MonkeyPatch,
    driven_clock: DrivenClock,
    anyio_backend: tuple[str, object],
    seed: int,
) -> None:
    """Tasks answered inline in turns, awaiting other things between calls, are cancelled at
    random points (waiting for a turn, woken for one but not yet resumed, holding one); on
    asyncio also by ``task.cancel()``. The others still finish, and no turn stays taken."""
    take_route("inline", monkeypatch)
    rng = random.Random(seed)
    scopes: list[anyio.CancelScope] = []
    tasks: list[asyncio.Task[object]] = []
    finished = 0

    async def caller() -> None:
        nonlocal finished
        task = asyncio.current_task() if anyio_backend[0] != "trio" else None
        if task is not None:
            tasks.append(task)
        try:
            with anyio.CancelScope() as scope:
                scopes.append(scope)
                for _ in range(rng.randrange(1, 40)):
                    await aos.stat(place / "file")
                    if rng.random() < 0.1:
                        await anyio.lowlevel.checkpoint()
            finished += 1
        except asyncio.CancelledError:  # (trio's Cancelled stops at the scope)
            finished += 1

    async def canceller() -> None:
        for _ in range(200):
            await anyio.lowlevel.checkpoint()
            if rng.random() < 0.3 and scopes:
                rng.choice(scopes).cancel()
            if rng.random() < 0.1 and tasks:
                rng.choice(tasks).cancel()

    with anyio.fail_after(20):
        async with anyio.create_task_group() as tg:
            tg.start_soon(canceller)
            for _ in range(24):
                tg.start_soon(caller)
    assert finished == 24
    channel = _completions.current()
    assert not channel.turns.busy()
    for _ in range(3):  # and the next caller is answered inline at once
        assert (await aos.stat(place / "file")).st_size == 5


async def test_a_task_that_waits_rarely_goes_before_bulk_callers(
    place: Path, monkeypatch: pytest.MonkeyPatch, driven_clock: DrivenClock
) -> None:
    """A turn goes to the waiting task that began a slice longest ago, or never: a lone call
    among 8 tasks making calls back to back waits for about a slice, not a slice per task."""
    take_route("inline", monkeypatch)
    events: list[str] = []

    async def bulk() -> None:
        for _ in range(40):
            await aos.stat(place / "file")
            events.append("b")

    async with anyio.create_task_group() as tg:
        for _ in range(8):
            tg.start_soon(bulk)
        while events.count("b") < 40:  # the bulk callers take turns by now
            await anyio.lowlevel.checkpoint()
        events.append("<")
        await aos.stat(place / "file")
        events.append(">")
    waited = "".join(events).split("<")[1].split(">")[0]
    assert len(waited) <= 2 * 3, waited  # a slice holds three answers with this clock


async def test_only_the_task_whose_turn_it_is_is_woken(
    place: Path, monkeypatch: pytest.MonkeyPatch, driven_clock: DrivenClock
) -> None:
    """Tasks parked for a turn are not polled: 16 tasks making 30 calls each, three to a slice,
    wake about once per slice, plus a few when a task ends its last slice early (then waiters
    are woken to share what is left of it)."""
    take_route("inline", monkeypatch)
    wakes = count_wakes(monkeypatch)
    await answer_side_by_side(place / "file", tasks=16, calls=30)
    slices = 16 * 30 / 3
    assert wakes() <= slices + 16 * _turns.SHARE_AT_ONCE, wakes()  # polled: 15 each iteration


async def test_on_trio_turns_are_taken_under_ki_protection(
    place: Path, monkeypatch: pytest.MonkeyPatch, anyio_backend: tuple[str, object]
) -> None:
    """A KeyboardInterrupt raised after a waiter joined the queue would leave it there (its task
    gone, trio then fails to reschedule it), and after a task was given its turn, the turn
    taken (every later inline call would wait for ever)."""
    if anyio_backend[0] != "trio":
        pytest.skip("a trio property: asyncio delivers KeyboardInterrupt outside the tasks")
    import trio

    monkeypatch.setattr(_loop_slice, "INLINE_SLICE", EVERY_TIME)
    take_route("inline", monkeypatch)
    protected: dict[str, list[bool]] = {"join": [], "begin": []}
    for name, seen in protected.items():
        step = getattr(_turns.Turns, name)

        def watching(self: _turns.Turns, *args: Any, _step: Any = step, _seen: Any = seen) -> Any:
            _seen.append(trio.lowlevel.currently_ki_protected())
            return _step(self, *args)

        monkeypatch.setattr(_turns.Turns, name, watching)
    await answer_side_by_side(place / "file", tasks=3, calls=5)
    assert protected["join"]
    assert protected["begin"]
    assert all(protected["join"] + protected["begin"]), protected


async def test_a_call_in_a_cancelled_scope_is_not_answered_when_its_turn_comes(
    place: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every call is a checkpoint: one made in a scope cancelled already raises the cancel, even
    when it waits for its turn among tasks answered inline (on asyncio, anyio delivers a cancel
    to a waiting task a loop iteration later: a turn granted before that was answered)."""
    monkeypatch.setattr(_loop_slice, "INLINE_SLICE", EVERY_TIME)
    answered = take_route("inline", monkeypatch)
    done = False
    returned = 0

    async def busy() -> None:
        while not done:
            await aos.stat(place / "file")

    async with anyio.create_task_group() as tg:
        for _ in range(8):
            tg.start_soon(busy)
        for _ in range(300):
            with anyio.CancelScope() as scope:
                scope.cancel()
                await aos.stat(place / "file")
                returned += 1
        done = True
    assert answered()
    assert returned == 0


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
    assert answered() == 1  # the second call's await point raised the cancel, unanswered


async def test_attempts_wait_for_turns_whether_answered_or_refused(
    monkeypatch: pytest.MonkeyPatch, anyio_backend: tuple[str, object]
) -> None:
    """A refused attempt has run its syscalls on the loop's thread all the same (on overlayfs,
    say): attempts wait for their turns like answers, so with a slice that has always passed,
    32 tasks that call at once make one attempt a loop turn, not one each. Trio runs each batch
    of tasks in either order, so two of its batches can fall between ticks."""
    monkeypatch.setattr(_loop_slice, "INLINE_SLICE", EVERY_TIME)
    turns = 2 if anyio_backend[0] == "trio" else 1
    results: list[int] = []

    async def ask_32(events: list[str]) -> None:
        def refuse_some(value: int) -> tuple[int, None] | None:
            events.append("a")
            return None if value % 4 == 1 else (value, None)

        async def ask(value: int) -> None:
            results.append(await _engine.answering_inline(lambda value: value, refuse_some)(value))

        async with anyio.create_task_group() as callers:
            for value in range(32):
                callers.start_soon(ask, value)  # all start in the same loop iteration

    runs = await runs_between_ticks(ask_32)
    assert sorted(results) == list(range(32))
    assert sum(runs) == 32
    assert max(runs) <= 2 * turns, runs


async def test_calls_stop_trying_inline_while_the_kernel_keeps_refusing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Where every attempt is refused (procfs; overlayfs in a container), its syscalls on the
    loop's thread and its wait for a turn are wasted: calls go to a worker at once, but for one
    attempt in 16; once answers come back, every call tries again."""
    monkeypatch.setattr(_loop_slice, "INLINE_SLICE", NEVER)
    attempts = 0
    answering = False

    def attempt(value: int) -> tuple[int, None] | None:
        nonlocal attempts
        attempts += 1
        _inline.asked += 1  # as the kernel is, for a plain path
        return (value, None) if answering else None

    async def ask(value: int) -> int:
        return await _engine.answering_inline(lambda value: value, attempt)(value)

    assert [await ask(v) for v in range(200)] == list(range(200))  # (workers answer)
    refused_at_first = 11  # while the answered share falls from 1 to below a half
    assert refused_at_first < attempts <= refused_at_first + (200 - refused_at_first) // 16 + 1
    answering = True
    attempts = 0
    assert [await ask(v) for v in range(300)] == list(range(300))
    assert attempts >= 300 - 16 * 16  # sampled back above a half, then every call tries
    attempts = 0
    assert [await ask(v) for v in range(50)] == list(range(50))
    assert attempts == 50


async def test_arguments_that_are_not_plain_paths_do_not_count_as_refusals(
    place: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``aos.stat(fd)`` is never put to the kernel inline (only paths are): a program that
    stats its open files must not stop path calls from trying inline."""
    answered = take_route("inline", monkeypatch)
    fd = await off_loop(os.open, place / "file", os.O_RDONLY)
    try:
        for _ in range(100):
            assert (await aos.stat(fd)).st_size == 5
    finally:
        await off_loop(os.close, fd)
    assert _completions.current().turns.answered == 1.0
    assert answered() == 0
    for _ in range(16):
        await aos.stat(place / "file")
    assert answered() == 16


async def test_a_stream_of_new_tasks_does_not_starve_a_task_served_before(
    place: Path, monkeypatch: pytest.MonkeyPatch, driven_clock: DrivenClock
) -> None:
    """New tasks go early, not first: a task making calls back to back still gets slices
    while 600 new tasks, started a few at a time, each make one call (with new tasks first,
    it waited for all of them). The head start is 10 ms: 455 readings of this clock."""
    take_route("inline", monkeypatch)
    events: list[str] = []

    async def bulk() -> None:
        while True:
            await aos.stat(place / "file")
            events.append("b")

    async def one_call() -> None:
        await aos.stat(place / "file")
        events.append("n")

    async with anyio.create_task_group() as tg:
        tg.start_soon(bulk)
        while "b" not in events:
            await anyio.lowlevel.checkpoint()
        async with anyio.create_task_group() as stream:
            for _ in range(150):
                for _ in range(4):
                    stream.start_soon(one_call)
                await anyio.lowlevel.checkpoint()
        tg.cancel_scope.cancel()
    during = "".join(events).split("n", 1)[1].rsplit("n", 1)[0]
    assert during.count("b") >= 2 * 3, during  # two slices at least (about one per 150)


async def test_tasks_making_one_call_at_a_time_are_answered_several_a_loop_turn(
    place: Path,
    monkeypatch: pytest.MonkeyPatch,
    driven_clock: DrivenClock,
    anyio_backend: tuple[str, object],
) -> None:
    """32 tasks that each let the loop run between calls (as request handlers do) come when
    the slice has passed, or stop before it does: either way a few waiters are woken at once to
    share the next slice, each loop iteration. Measured: 70 loop turns for the 320 calls on
    asyncio and uvloop, 76-113 on trio (its batch order varies, and a group woken may resume a
    batch later); with a clock that moved 0.4 of a slice a reading, before a shared slice
    counted only its answers' time, 114 and 109-117 (135-155 when a task that came late woke
    only one); one answer a turn would take 320."""
    take_route("inline", monkeypatch)

    async def one_at_a_time() -> None:
        for _ in range(10):
            await aos.stat(place / "file")
            await anyio.lowlevel.checkpoint()

    async def all_32() -> None:
        async with anyio.create_task_group() as callers:
            for _ in range(32):
                callers.start_soon(one_at_a_time)

    ticks = await count_ticks_during(all_32)
    assert ticks <= (130 if anyio_backend[0] == "trio" else 90), ticks


async def test_a_shared_slice_counts_its_answers_not_the_work_between_them(
    place: Path, monkeypatch: pytest.MonkeyPatch, cheap_clock: DrivenClock
) -> None:
    """A slice that tasks woken together share is the time of their answers, within
    :data:`~aos._async._loop_slice.SHARED_SLICE_SPAN` slices since it began: of 64 tasks that
    each make one call, then work for a quarter of a slice before they end (as request handlers
    do), six or seven answer in the slice of a typical group (the median): not more, as two
    slices since it began it has passed. Counted in time since the slice began, each task's own
    work would use the others' shares up: three; not bounded in time since it began, eleven
    (asyncio, uvloop)."""
    take_route("inline", monkeypatch)
    in_time: dict[_turns.Group | None, int] = {}  # sharers that answered in its slice
    shared = _turns.Turns.shared

    def counted(turns: _turns.Turns, waiter: _turns.Waiter, began: float, used: float) -> None:
        if used <= 1.0:
            in_time[waiter.group] = in_time.get(waiter.group, 0) + 1
        shared(turns, waiter, began, used)

    monkeypatch.setattr(_turns.Turns, "shared", counted)

    async def call_then_work() -> None:
        await aos.stat(place / "file")
        cheap_clock.now += _loop_slice.INLINE_SLICE / 4  # its own work, on the loop's thread

    async with anyio.create_task_group() as tg:
        for _ in range(64):
            tg.start_soon(call_then_work)
    per_group = sorted(in_time.values())
    assert 5 <= statistics.median(per_group) <= 9, per_group  # and 2 slices are 8 tasks' work


async def test_tasks_making_one_call_a_loop_turn_are_answered_evenly(
    place: Path,
    monkeypatch: pytest.MonkeyPatch,
    driven_clock: DrivenClock,
    anyio_backend: tuple[str, object],
) -> None:
    """A task that answered in a slice it shared goes behind those not served since: when the
    first of 32 tasks making one call a loop turn has made 40, each of the others has made 38
    (asyncio, uvloop), 19-37 (trio: its batch order varies; 19-24 after hypothesis has seeded
    its scheduler). Queued by the last slice each began, the tasks that only shared kept their
    places at the front: some had made 6 (asyncio, uvloop), 13-23 (trio, whose bound here only
    catches far worse: polling once let one task make 2 calls to another's 2,000)."""
    take_route("inline", monkeypatch)
    made = [0] * 32
    when_first_done: list[int] = []

    async def one_a_turn(index: int) -> None:
        for _ in range(40):
            await aos.stat(place / "file")
            made[index] += 1
            await anyio.lowlevel.checkpoint()
        if not when_first_done:
            when_first_done.extend(made)

    async with anyio.create_task_group() as tg:
        for index in range(32):
            tg.start_soon(one_a_turn, index)
    assert min(when_first_done) >= (12 if anyio_backend[0] == "trio" else 30), when_first_done


async def test_waiters_woken_together_shrink_to_those_that_answer(
    place: Path, monkeypatch: pytest.MonkeyPatch, cheap_clock: DrivenClock
) -> None:
    """Once some of the tasks woken to share a slice find it passed, the next group is only as
    large as the number that answered: 64 tasks that each work for a slice after every call (so
    two or three answer in a shared slice) are not woken many times a call to park again."""
    take_route("inline", monkeypatch)
    wakes = count_wakes(monkeypatch)

    async def call_then_work() -> None:
        for _ in range(4):
            await aos.stat(place / "file")
            cheap_clock.now += _loop_slice.INLINE_SLICE  # its own work, on the loop's thread
            await anyio.lowlevel.checkpoint()

    async with anyio.create_task_group() as tg:
        for _ in range(64):
            tg.start_soon(call_then_work)
    assert wakes() <= 320, wakes()  # for 256 calls; measured: 259-269 (groups kept at 8: 617-651)


async def test_waiters_woken_together_grow_in_number_while_all_answer(
    place: Path, monkeypatch: pytest.MonkeyPatch, cheap_clock: DrivenClock
) -> None:
    """While every task woken to share a slice answers in it, the next group is larger (as
    many as the slice would hold at their rate, at most twice as many): 800 new tasks that each
    make one call, queued behind a task making calls back to back, get their answers in a few
    loop turns; woken 8 at a time they took 105 (asyncio, uvloop) and 150-169 (trio)."""
    take_route("inline", monkeypatch)
    started = anyio.Event()

    async def bulk() -> None:
        while True:
            await aos.stat(place / "file")
            started.set()

    async def one_call() -> None:
        await aos.stat(place / "file")

    async def all_800() -> None:
        async with anyio.create_task_group() as tg:
            for _ in range(800):
                tg.start_soon(one_call)

    async with anyio.create_task_group() as tg:
        tg.start_soon(bulk)
        await started.wait()
        ticks = await count_ticks_during(all_800)
        tg.cancel_scope.cancel()
    assert ticks <= 70, ticks  # measured: 16 (asyncio, uvloop), 18-45 (trio)


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
