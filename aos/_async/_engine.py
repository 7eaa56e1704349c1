"""Where offloaded calls run: worker pools plus one completion channel per event loop.

Two entry points, one per cancellation behaviour, and the face of a query that may be answered
on the loop's thread (:func:`answering_inline`); see :mod:`aos._async._offload`. The pools
are in :mod:`aos._async._workers`, the per-loop wake-up in :mod:`aos._async._completions`.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Mapping
from typing import Any, ParamSpec, TypeVar

from aos._async import _completions, _inline
from aos._async._completions import RingRequest
from aos._async._loop_slice import attempt_done, slice_point
from aos._async._workers import FILESYSTEM, WAIT_LANE, Pool

P = ParamSpec("P")
T = TypeVar("T")


async def run_abandonable(
    fn: Callable[..., T],
    args: tuple[Any, ...],
    kwargs: Mapping[str, Any],
    *,
    wait_lane: bool,
) -> T:
    """Run on a worker; a cancel returns at once.

    ``wait_lane`` runs the call in the unbounded lane that filesystem calls never queue behind.
    The call is a checkpoint first, as a ``MUTATE`` call is: a caller cancelled already gets the
    cancel, and nothing starts (``system`` ran its command; a query could return its value, on
    asyncio when the worker beat anyio's delivery of the cancel).
    """
    await _completions.current().checkpoint_if_cancelled()
    channel = _completions.current()  # (anew: the check may have let the loop run, and end)
    result: T = await channel.run_abandonable(
        WAIT_LANE if wait_lane else FILESYSTEM, fn, args, kwargs
    )
    return result


async def run_to_completion(
    fn: Callable[..., T],
    args: tuple[Any, ...],
    kwargs: Mapping[str, Any],
    release: Callable[[T], object] | None,
    ring: RingRequest | None = None,
    *,
    pool: Pool = FILESYSTEM,
    check_first: bool = True,
) -> T:
    """Run on a worker of ``pool`` (or io_uring); a cancel waits for the call, then returns
    its result or releases it (see :func:`_completions.after_completion`). The call is a
    checkpoint: with ``check_first``, a caller cancelled already gets the cancel at once and
    nothing runs (as with anyio's and trio's ``to_thread``); without, the call runs, then the
    cancel is raised (``close``, so that cleanup which forgot its shield still frees the fd)."""
    if check_first:
        await _completions.current().checkpoint_if_cancelled()
    channel = _completions.current()  # (anew: the check may have let the loop run, and end)
    result: T = await channel.run_to_completion(
        pool, fn, args, kwargs, release, ring, withdrawable=check_first
    )
    if not check_first:  # (close: it runs, then it is the checkpoint)
        await channel.checkpoint_if_cancelled()
    return result


def answering_inline(
    fn: Callable[P, T], inline: Callable[P, tuple[T | None, BaseException | None] | None]
) -> Callable[P, Coroutine[Any, Any, T]]:
    """The async face of the query ``fn``: answered on the loop's thread if ``inline`` can
    (after :func:`~aos._async._loop_slice.slice_point`), else run like :func:`run_abandonable`.

    The face is this one coroutine, not one that awaits another: a frame less on every call
    (0.05-0.2 us of a sequential ``await aos.stat``'s 3.1-4.5, interleaved runs, 2026-12-07)."""

    async def query(*args: P.args, **kwargs: P.kwargs) -> T:
        channel = _completions.current()
        result: T
        turn = slice_point(channel) if _inline.enabled else None  # (tests switch it off)
        if turn is None:  # recent attempts were mostly refused: do not try
            result = await channel.run_abandonable(FILESYSTEM, fn, args, kwargs)
            return result
        await turn
        asked = _inline.asked
        try:
            answer = inline(*args, **kwargs)
        except TypeError:  # arguments os refuses: os raises its own error on the worker
            answer = None
        attempt_done(channel)
        turns = channel.turns
        # Not when all recent ones were answered and this one is (no change), nor when the
        # kernel was not asked (not a plain path).
        if (answer is None or turns.answered != 1.0) and _inline.asked != asked:
            turns.note_attempt(answer is not None)
        if answer is None:
            # Refused (its syscalls ran on the loop's thread all the same, e.g. on overlayfs,
            # within the slice): a worker answers, through the channel of now (the run may have
            # ended while the caller waited for its turn, and its channel closed).
            result = await _completions.current().run_abandonable(FILESYSTEM, fn, args, kwargs)
            return result
        try:
            value: T = _completions.settle(*answer)
            return value
        finally:
            answer = None  # an error raised from it goes through this frame: no cycle through it

    return query


async def checkpoint() -> None:
    """The running loop's own checkpoint (see :meth:`Channel.checkpoint`)."""
    await _completions.current().checkpoint()
