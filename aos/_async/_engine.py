"""Where offloaded calls run: worker pools plus one completion channel per event loop.

Two entry points, one per cancellation behaviour; see :mod:`aos._async._offload`. The pools
are in :mod:`aos._async._workers`, the per-loop wake-up in :mod:`aos._async._completions`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from aos._async import _completions
from aos._async._completions import RingRequest
from aos._async._loop_slice import slice_point
from aos._async._workers import FILESYSTEM, WAIT_LANE, Pool

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
    """
    channel = _completions.current()
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
) -> T:
    """Run on a worker of ``pool`` (or io_uring); a cancel waits for the call, releases its
    result, is raised."""
    channel = _completions.current()
    result: T = await channel.run_to_completion(pool, fn, args, kwargs, release, ring)
    return result


async def run_query(
    fn: Callable[..., T],
    args: tuple[Any, ...],
    kwargs: Mapping[str, Any],
    inline: Callable[..., tuple[T | None, BaseException | None] | None],
) -> T:
    """A query answered on the loop's thread if ``inline`` can (then
    :func:`~aos._async._loop_slice.slice_point`), else run like
    :func:`run_abandonable`."""
    channel = _completions.current()
    if not channel.take_inline_slot():
        result: T = await channel.run_abandonable(FILESYSTEM, fn, args, kwargs)
        return result
    try:
        try:
            answer = inline(*args, **kwargs)
        except TypeError:  # arguments os refuses: os raises its own error on the worker
            answer = None
        if answer is not None:
            await slice_point(channel)
            value: T = _completions.settle(*answer)
            return value
        # Refused (its syscalls ran on the loop's thread all the same, e.g. on overlayfs): the
        # slot is held until the worker answers, so refusals per iteration stay bounded too.
        result = await channel.run_abandonable(FILESYSTEM, fn, args, kwargs)
        return result
    finally:
        answer = None  # an error raised from it goes through this frame: no cycle through it
        channel.give_back_inline_slot()


async def checkpoint() -> None:
    """The running loop's own checkpoint (see :meth:`Channel.checkpoint`)."""
    await _completions.current().checkpoint()
