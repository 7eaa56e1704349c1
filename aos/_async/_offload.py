"""The one primitive of the async layer: ``offload(fn, policy)``.

``offload`` turns a blocking function into an ``async def`` with the identical signature that
runs the function on a worker and applies a cancellation policy:

- ``QUERY``: read-only. A cancel returns at once; the worker finishes in the background and its
  result is dropped.
- ``MUTATE``: side effects; the caller knows whether the call happened. A cancel scope's
  cancel takes back a call that no worker has started (every worker busy): it is raised at
  once, and nothing ran. A call that has begun is waited for; its value (or error) is returned,
  and the scope's cancel (anyio's, trio's) lands at the next checkpoint, as with their
  ``to_thread``. asyncio's own ``Task.cancel()``, delivered once, waits for the call even if
  queued (it gets through anyio's shields: a shielded cleanup still runs), then is raised.
  With ``release``, a resource (an fd, a pair of fds, a lock) is released and the cancel
  raised, so nothing leaks.
- ``WAIT``: may wait forever (``waitpid``, a blocking read). Runs in its own unbounded lane so
  it never holds a worker that filesystem calls need; a cancel returns at once.

Every call is a checkpoint: a caller cancelled already gets the cancel, and nothing runs; but
``close`` and ``closerange``, which run and then raise it, so that cleanup frees its fd.
"""

from __future__ import annotations

import enum
import functools
import os
from collections.abc import Callable, Coroutine
from typing import Any, Final, ParamSpec, TypeVar

from aos._async import _engine
from aos._async._completions import RingRequest
from aos._async._workers import FILESYSTEM, WAIT_LANE, hands_over_if

P = ParamSpec("P")
T = TypeVar("T")


class Policy(enum.Enum):
    """How a call behaves when its caller is cancelled."""

    QUERY = "query"
    MUTATE = "mutate"
    WAIT = "wait"


QUERY: Final = Policy.QUERY
MUTATE: Final = Policy.MUTATE
WAIT: Final = Policy.WAIT

_PATH_MODULES: Final = frozenset(
    {os.path.__name__, "genericpath"}
)  # where os.path's functions live

_POLICY_SENTENCE: Final = {
    Policy.QUERY: "Cancellation returns at once; the call finishes in a worker and its result is dropped.",
    Policy.MUTATE: (
        "Cancellation takes back a call not started yet; else it waits until the call has"
        " returned, which then returns its result, and the cancel lands at the next checkpoint"
        " (asyncio's own ``Task.cancel()`` is raised)."
    ),
    Policy.WAIT: "Runs in the unbounded wait lane; cancellation returns at once.",
}
_RELEASING_SENTENCE: Final = (
    "Cancellation takes back a call not started yet; else it waits until the call has"
    " returned, closes what it opened, then is raised."
)
_RUNS_WHEN_CANCELLED_SENTENCE: Final = (
    "It runs even when its caller is cancelled already (cleanup that forgot its shield still"
    " frees the fd), then the cancel is raised."
)


async def call(
    policy: Policy,
    release: Callable[[T], object] | None,
    fn: Callable[P, T],
    /,
    *args: P.args,
    **kwargs: P.kwargs,
) -> T:
    """Run ``fn(*args, **kwargs)`` on a worker under ``policy``; the building block of hand-written calls."""
    if policy is Policy.MUTATE:
        return await _engine.run_to_completion(fn, args, kwargs, release)
    return await _engine.run_abandonable(fn, args, kwargs, wait_lane=policy is Policy.WAIT)


def offload(
    fn: Callable[P, T],
    policy: Policy,
    *,
    release: Callable[[T], object] | None = None,
    ring: RingRequest | None = None,
    inline: Callable[P, tuple[T | None, BaseException | None] | None] | None = None,
    waits: Callable[P, bool] | None = None,
    waits_on_worker: Callable[P, bool] | None = None,
    runs_when_cancelled: bool = False,
) -> Callable[P, Coroutine[Any, Any, T]]:
    """Make the async face of the blocking function ``fn``: same signature, run on a worker.

    ``release`` (``MUTATE`` only) frees a result that a cancelled caller is not handed.
    ``ring`` (``MUTATE`` only) builds the call's io_uring form from its arguments (see
    :mod:`aos._async._ring_requests`); where it does, the kernel runs the call, not a worker.
    ``inline`` (``QUERY`` only) answers the call on the loop's thread when the kernel promises
    not to block (see :mod:`aos._async._inline`): it returns ``(value, error)``, or ``None``
    to send the call on. An inline answer still raises a pending cancellation (see
    :func:`aos._async._loop_slice.slice_point`).
    ``waits`` (``MUTATE`` only), given the call's arguments: ``True`` if it may wait for good
    (on a blocking pipe or socket); it then runs in the wait lane, where it holds no worker that
    filesystem calls need (see :mod:`aos._async._may_wait`).
    ``waits_on_worker`` (``MUTATE`` only): the same, for a check that looks a path up, which
    may block: it is made on the filesystem worker, just before the call, and a ``True`` moves
    the call to the wait lane from there (an ``open`` of a FIFO).
    ``runs_when_cancelled`` (``MUTATE`` only): a caller cancelled already gets the call made all
    the same, then the cancel (``close``: cleanup that forgot its shield still frees the fd);
    every other call is a checkpoint first and does not run.
    """
    if release is not None and policy is not Policy.MUTATE:
        raise ValueError(
            "release goes with MUTATE: only a call that runs to completion can hand it back"
        )
    if ring is not None and policy is not Policy.MUTATE:
        raise ValueError("ring goes with MUTATE: a worker answers a query sooner")
    if inline is not None and policy is not Policy.QUERY:
        raise ValueError("inline goes with QUERY: only a query may be answered before a cancel")
    if (
        waits is not None or waits_on_worker is not None or runs_when_cancelled
    ) and policy is not Policy.MUTATE:
        raise ValueError("waits, waits_on_worker and runs_when_cancelled go with MUTATE")
    check_first = not runs_when_cancelled
    job = fn if waits_on_worker is None else hands_over_if(waits_on_worker, fn)

    if policy is Policy.MUTATE:

        async def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
            pool = WAIT_LANE if waits is not None and waits(*args, **kwargs) else FILESYSTEM
            return await _engine.run_to_completion(
                job, args, kwargs, release, ring, pool=pool, check_first=check_first
            )

    elif inline is not None:
        wrapper = _engine.answering_inline(fn, inline)

    else:
        wait_lane = policy is Policy.WAIT

        async def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
            return await _engine.run_abandonable(fn, args, kwargs, wait_lane=wait_lane)

    functools.update_wrapper(wrapper, fn)  # __name__, __qualname__, __doc__, __wrapped__
    home, original = (
        ("aos.path", "os.path")
        if getattr(fn, "__module__", None) in _PATH_MODULES
        else ("aos", "os")
    )
    wrapper.__module__ = home  # (where pickle finds it)
    name = getattr(fn, "__name__", repr(fn))
    sentence = (
        _RUNS_WHEN_CANCELLED_SENTENCE
        if runs_when_cancelled
        else _RELEASING_SENTENCE
        if release is not None
        else _POLICY_SENTENCE[policy]
    )
    wrapper.__doc__ = f"Like :func:`{original}.{name}`, but async. {sentence}"
    wrapper.__aos_policy__ = policy  # type: ignore[attr-defined]
    wrapper.__aos_ring__ = ring  # type: ignore[attr-defined]
    wrapper.__aos_inline__ = inline  # type: ignore[attr-defined]
    return wrapper


def home_in_aos(*funcs: Callable[..., Any]) -> None:
    """Give hand-written async calls their public home, ``aos``, as ``offload`` does."""
    for func in funcs:
        func.__module__ = "aos"


def answers_inline(func: object) -> bool:
    """Whether an offloaded function may be answered on the loop's thread (see ``inline``)."""
    return getattr(func, "__aos_inline__", None) is not None


def runs_on_ring(func: object) -> bool:
    """Whether an offloaded function has an io_uring form (used when the kernel offers it)."""
    return getattr(func, "__aos_ring__", None) is not None


def policy_of(func: object) -> Policy | None:
    """The policy an offloaded function was made with, or ``None`` for any other object."""
    policy = getattr(func, "__aos_policy__", None)
    return policy if isinstance(policy, Policy) else None
