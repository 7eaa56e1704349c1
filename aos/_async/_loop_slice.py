"""How work done on the loop's own thread shares the event loop.

Serving buffered items (scandir, walk, fwalk) and answering a call inline (see
:mod:`aos._async._inline`) need no await, so they keep the loop to themselves until they let it
run: iterators once :data:`LOOP_SLICE` has passed since it last ran (:func:`let_loop_run`),
inline answers once :data:`INLINE_SLICE` has, and a cancellation still lands at once
(:func:`slice_point`).
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable
from time import perf_counter as _now  # a name of its own, for tests to drive
from typing import Final, ParamSpec, TypeVar

from aos._async import _completions
from aos._async._turns import ANSWERED_TO_TRY, Waiter

__all__ = [
    "INLINE_SLICE",
    "LOOP_SLICE",
    "answered_now",
    "let_loop_run",
    "loop_work_point",
    "slice_point",
]

P = ParamSpec("P")
T = TypeVar("T")

LOOP_SLICE: Final = 0.00025
"""Seconds of serving from a buffer (scandir, walk, fwalk) after which an iterator lets the
loop run.

Measured on a 100k-entry ``aos.walk`` (2 cores, medians of 9 rounds, longest lateness of a 1 ms
ticker / time as a multiple of ``os.walk``): 0.25 ms: 1.1-1.2 ms / 1.69-1.71x; 0.5 ms: 1.2 ms /
1.61-1.70x; 1 ms: 1.2-1.8 ms / 1.68-1.73x (the ratio moves with the os.walk baseline more than
with the slice). Later, 0.25 and 0.5 ms measured the same (1.35x / 1.42x ``os.walk`` on
asyncio / trio, 2026-12-06)."""

INLINE_SLICE: Final = 0.0001
"""Seconds of inline answers (see :func:`slice_point`) after which they let the loop run.

64 tasks making ``aos.stat`` calls back to back, 1 ms heartbeat (in one process, 5 rounds,
medians; two runs each, asyncio / trio): time per call and the heartbeat's 99th-percentile
lateness with 0.25 ms: 8.5-9.1 / 7.4-7.6 us and 0.97-0.99 / 0.69-0.76 ms; with 0.1 ms:
10.3-11.1 / 8.7-9.1 us and 0.54-0.76 / 0.61-0.62 ms; with a scheduling point after every
answer (before slices): 10.5-10.7 / 12.2-12.3 us and 0.72-0.82 / 0.32-0.49 ms. A task timer
that expires in a slice waits for up to two.

Again once waiting tasks parked for their turns (:mod:`aos._async._turns`), 7 rounds in one
process, asyncio / uvloop / trio, time per call at 64 concurrent and the heartbeat's longest
lateness: 0.05 ms: 10.6 / 9.8 / 10.1 us, 0.30 / 0.09 / 0.30 ms; 0.1 ms: 9.6 / 8.8 / 7.7 us,
0.36 / 0.16 / 0.24 ms; 0.25 ms: 8.4 / 8.5 / 7.7 us, 0.79 / 0.42 / 0.46 ms (2026-12-06)."""

SHARED_SLICE_SPAN: Final = 2
"""Slices (:data:`INLINE_SLICE`) since a slice began after which a task woken to share it finds
it passed, however little of it the answers used: the steps of those sharing it (their own work
between answers) would otherwise all run in one loop iteration. 256 tasks that each made a call
then worked for 0.1 ms, a 1 ms heartbeat (asyncio / trio, two runs each, with an earlier sizing
of groups): its 99th-percentile lateness with no such bound was 4.1-4.9 / 2.4-2.8 ms; with 5
slices, 1.8-1.9 / 1.3-1.4 ms; 2.5, 1.3 / 1.0 ms; 2, 0.93-0.97 / 0.75 ms; 1, 0.80 / 0.52 ms (with
groups as sized now and 2, 0.78-0.86 / 0.52 ms; when a slice was counted in time since it began,
0.49-0.58 / 0.36-0.43 ms, with 20% fewer calls). On trio a task making calls back to back
beside 8 new one-call tasks every loop turn needs 2: the new tasks waited 2.7 ms (median); with
1.5, 10-110 ms, with 1, 227-249 ms (2026-12-07)."""


async def let_loop_run() -> None:
    """Let every task that was ready, or whose timer expired, run before the caller goes on.

    One checkpoint is not enough: after it, asyncio and uvloop resume the caller before the
    tasks whose timers expired while it ran (their wake-up takes two loop iterations, a timer
    callback then the task's step), and trio resumes either first. In a test (a task's 0.3 ms
    sleep expiring during 1 ms of work) it ran first 0 times in 50 on asyncio and uvloop and 27
    on trio after one checkpoint; after a zero-delay timer on asyncio and uvloop, or two
    checkpoints on trio, 50 times in 50 (each loop's channel does its own). Without this, a task
    could wait two slices.
    """
    await _completions.current().let_loop_run()


def slice_point(channel: _completions.Channel) -> Awaitable[None] | None:
    """The await point before a call answered on the loop's thread: it raises the caller's
    cancellation, if any, and once :data:`INLINE_SLICE` has passed since a slice began, waits
    for the caller's turn (see :mod:`aos._async._turns`), unless the loop has run meanwhile and
    nobody waits (where the channel can tell: asyncio and uvloop). So a task making such calls
    back to back keeps other tasks waiting for about a slice, as a walk does, and a call that
    comes after the task awaited something else costs no scheduling point. ``None``: recent
    attempts were mostly refused, go to a worker (see
    :data:`~aos._async._turns.ANSWERED_TO_TRY`).

    The slice is the time from its beginning to an answer's start, less the time from the end of
    an answer (:func:`attempt_done`) until a task woken to share the slice resumed: so the steps
    of other tasks between the answers of those sharing it do not use it up, until
    :data:`SHARED_SLICE_SPAN` slices have passed since it began (see :mod:`aos._async._turns`).
    A second clock reading per call, 0.04 us.

    A scheduling point before every answer doubled the cost of a sequential ``await aos.stat``
    on trio (see ``benchmarks/RESULTS.md``). A deadline (trio's, anyio's, ``asyncio.timeout``)
    is noticed at the next scheduling point: up to a slice late. Not a coroutine itself: one
    frame less on the fast path."""
    turns = channel.turns
    if turns.answered < ANSWERED_TO_TRY and turns.skip_attempt():
        return None
    return loop_work_point(channel)


def loop_work_point(channel: _completions.Channel, *, watch: bool = True) -> Awaitable[None]:
    """The await point before work on the loop's thread that is never refused (an inline
    answer once tried, a lone ``posix_spawn``): it raises the caller's cancellation, if any,
    and once :data:`INLINE_SLICE` has passed since a slice began, waits for the caller's turn,
    unless the loop has run meanwhile and nobody waits (then a new slice begins here, watched
    for the loop's next run unless not ``watch``: see :meth:`~aos._async._completions.Channel.
    begin_slice`)."""
    now = _now()
    if now - channel.slice_start > INLINE_SLICE:
        if channel.turns.busy() or not channel.turn_seen:
            return channel.ki_protected(_take_turn(channel))
        channel.begin_slice(now, watch=watch)  # the loop ran since the last slice began
    return channel.checkpoint_if_cancelled()


def answered_now(
    channel: _completions.Channel, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs
) -> T:
    """``fn(*args, **kwargs)`` on the loop's thread, just past its await point; the slice's
    clock stands still from its end (:func:`attempt_done`)."""
    try:
        return fn(*args, **kwargs)
    finally:
        attempt_done(channel)


def _share_of_slice(elapsed: float) -> float:
    """``elapsed`` seconds as a share of :data:`INLINE_SLICE` (which tests set to 0 and to
    infinity)."""
    if elapsed <= 0.0:
        return 0.0
    return elapsed / INLINE_SLICE if INLINE_SLICE > 0.0 else math.inf


def attempt_done(channel: _completions.Channel) -> None:
    """An inline attempt (answered or refused) has just ended: from now until a sharer of the
    slice resumes, the slice's clock stands still (see :func:`_take_turn`)."""
    channel.answer_at = _now()


async def _take_turn(channel: _completions.Channel) -> None:
    """Wait until the loop has run and it is the caller's turn to begin a slice, or to share
    one that has not passed yet (see :mod:`aos._async._turns`); then raise a cancel that came
    meanwhile (on asyncio, anyio delivers its scope's cancel a loop iteration after the cancel:
    a turn granted before that was answered, although the call is a checkpoint)."""
    await _wait_for_turn(channel)
    await channel.checkpoint_if_cancelled()


async def _wait_for_turn(channel: _completions.Channel) -> None:
    """The wait of :func:`_take_turn`."""
    turns = channel.turns
    task_id = id(channel.current_task())  # (a task that reuses the number inherits its turns)
    while True:
        waiter = Waiter(task_id, channel.turn_handle())
        turns.join(waiter, _now())
        # The task that used up its slice hands it to one task; any other (it came when the
        # slice had passed) to a few, who may each have a call or two to make.
        share = not turns.held_the_slice(task_id, channel.loop_ran_at)
        mine = turns.granted is None and turns.grant_next(channel, waiter, share=share)
        try:
            if mine:
                await channel.checkpoint()  # its own hand-on chose it: let the loop run once
            else:
                await channel.wait_for_turn(waiter)
        except BaseException:
            turns.leave(waiter, channel)
            raise
        if turns.begins(waiter):
            break
        now = _now()
        # Woken to share the slice that another began: its clock stood still from the last
        # attempt's end until now, while tasks other than those answering ran.
        channel.slice_start += now - channel.answer_at
        channel.answer_at = now
        used = _share_of_slice(
            max(now - channel.slice_start, (now - channel.loop_ran_at) / SHARED_SLICE_SPAN)
        )
        turns.shared(waiter, channel.loop_ran_at, used)
        if used <= 1.0:
            return
    now = _now()
    channel.begin_slice(now)
    turns.begin(waiter, now)
    if turns.busy():
        channel.pass_turn_later()
