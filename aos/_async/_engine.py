"""Where offloaded calls run. This first engine sits on ``anyio.to_thread``.

Two entry points, one per cancellation behaviour; see :mod:`aos._async._offload`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from typing import Any, Final, TypeVar

import anyio
import anyio.lowlevel
import anyio.to_thread

T = TypeVar("T")

# WAIT calls may block forever: they get a lane of their own that filesystem calls never queue behind.
_WAIT_LANE: Final = anyio.CapacityLimiter(1_000_000)


async def run_abandonable(
    fn: Callable[..., T], args: tuple[Any, ...], kwargs: Mapping[str, Any], *, wait_lane: bool
) -> T:
    """Run on a worker; a cancel returns at once and the result is dropped."""
    return await anyio.to_thread.run_sync(
        functools.partial(fn, *args, **kwargs),
        abandon_on_cancel=True,
        limiter=_WAIT_LANE if wait_lane else None,
    )


async def run_to_completion(
    fn: Callable[..., T],
    args: tuple[Any, ...],
    kwargs: Mapping[str, Any],
    release: Callable[[T], object] | None,
) -> T:
    """Run on a worker; a cancel waits for the call to return, releases its result, and is raised."""
    with anyio.CancelScope(shield=True):
        result = await anyio.to_thread.run_sync(functools.partial(fn, *args, **kwargs))
    try:
        await anyio.lowlevel.checkpoint_if_cancelled()
    except BaseException:
        if release is not None:
            release(result)
        raise
    return result
