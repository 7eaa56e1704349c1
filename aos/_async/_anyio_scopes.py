"""anyio's cancel scopes on asyncio, as the asyncio channel checks them before every call.

anyio's ``checkpoint_if_cancelled`` is a coroutine that first asks which library runs, then
walks the task's scopes. :func:`scopes_check` skips the question; :func:`pending_check` makes
the walk without a coroutine, so that a call with no cancel pending (nearly all) awaits nothing
at all. 64 tasks making ``aos.stat`` calls at once on Python 3.11, as a multiple of ``os.stat``
(two runs, medians of 15 rounds): asyncio 4.9-5.1x with the coroutine, 4.5-4.8x without;
uvloop 4.9-5.2x, 4.3x; sequential calls 4-9% less. On 3.12 and 3.13, whose
``asyncio.current_task`` is written in C, it measured the same either way (2026-12-07).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import anyio.lowlevel

__all__ = ["pending_check", "scopes_check"]


def scopes_check() -> Callable[[], Awaitable[None]]:
    """anyio's check of its cancel scopes on asyncio, called directly: its public
    ``checkpoint_if_cancelled`` first asks which library runs, 1 us of its 1.7 (asyncio,
    2026-12-07). Falls back to the public function if anyio has moved the backend."""
    try:
        from anyio._core._eventloop import get_async_backend

        check: Callable[[], Awaitable[None]] = get_async_backend("asyncio").checkpoint_if_cancelled
    except (ImportError, AttributeError):
        check = anyio.lowlevel.checkpoint_if_cancelled
    return check


def pending_check() -> Callable[[asyncio.Task[object]], bool] | None:
    """Whether one of anyio's cancel scopes has a cancel pending for a task, as
    :func:`scopes_check` would find it (a cancelled scope before the first shielding one, from
    the task's innermost scope out), read from anyio's asyncio backend without awaiting.

    ``None`` where that backend does not keep its scopes as anyio 4.7 to 4.16 do: then only
    :func:`scopes_check` can tell (``tests/aio/test_anyio_scopes.py`` compares the two)."""
    try:
        from anyio._backends._asyncio import CancelScope, TaskState, _task_states
    except ImportError:
        return None
    scope_probe, state_probe = CancelScope(), TaskState(None, None)
    if not (
        all(hasattr(scope_probe, name) for name in ("_cancel_called", "_shield", "_parent_scope"))
        and hasattr(state_probe, "cancel_scope")
        and callable(getattr(_task_states, "get", None))
    ):
        return None
    get_state = _task_states.get

    def pending(task: asyncio.Task[object]) -> bool:
        state = get_state(task)
        if state is None:
            return False
        scope = state.cancel_scope
        while scope is not None:
            if scope._cancel_called:
                return True
            if scope._shield:
                return False
            scope = scope._parent_scope
        return False

    return pending
