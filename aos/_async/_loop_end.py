"""A callback at the end of an asyncio (or uvloop) loop, for what must close with the loop.

asyncio has no hook for a loop's end, but ``loop.shutdown_asyncgens()`` closes every async
generator first iterated on the loop that is still suspended; ``asyncio.run`` and
``asyncio.Runner`` call it after cancelling the loop's tasks, before closing the loop. A
:class:`LoopEnd` is such a generator, suspended at its ``yield``: closing it awaits the callback.
It catches what a task guard cannot: a task created after the loop cancelled its tasks (by
another task's cleanup) is never cancelled.
"""

from __future__ import annotations

import contextlib
import os
import threading
import warnings
from collections.abc import AsyncGenerator, Awaitable, Callable, Iterator
from typing import Any

_STRICT_FILTERS = threading.Lock()  # held while a strict LoopEnd has changed the filters
_filters_before: list[Any] | None = None  # the filters it changed, while it has them changed


@contextlib.contextmanager
def _resource_warnings_raised() -> Iterator[None]:
    """ResourceWarning raised as an error, in one thread at a time (the filters are global)."""
    global _filters_before
    with _STRICT_FILTERS, warnings.catch_warnings():
        _filters_before = list(warnings.filters)
        try:
            warnings.simplefilter("error", ResourceWarning)
            yield
        finally:
            _filters_before = None


def _after_fork_in_child() -> None:
    """A thread that had changed the filters at the fork is gone: put them back, free its lock."""
    global _STRICT_FILTERS, _filters_before
    _STRICT_FILTERS = threading.Lock()
    if _filters_before is not None:
        warnings.filters = _filters_before
        getattr(warnings, "_filters_mutated", lambda: None)()  # (the once-registries' cue)
        _filters_before = None


os.register_at_fork(after_in_child=_after_fork_in_child)


class LoopEnd:
    """Await ``callback()`` when the running loop's ``shutdown_asyncgens`` runs (made on the
    loop's thread, while it runs).

    Raises :exc:`ResourceWarning` if the loop has shut down its async generators already (its
    hook warns so; with ``strict``, the warning is raised, else only where warnings are errors).
    ``strict`` changes the warning filters for a moment (process-wide before Python 3.14):
    for loops that do not say whether they did (uvloop). One loop at a time: where loops in two
    threads interleaved, one restored the filters the other had changed, and ResourceWarning
    stayed an error for good.
    """

    def __init__(self, callback: Callable[[], Awaitable[object]], *, strict: bool) -> None:
        self._callback: Callable[[], Awaitable[object]] | None = callback
        self._signal = self._until_end()
        # The first step runs the loop's firstiter hook, which registers the generator with it.
        with _resource_warnings_raised() if strict else contextlib.nullcontext():
            with contextlib.suppress(StopIteration):
                self._signal.asend(None).send(None)

    async def _until_end(self) -> AsyncGenerator[None, None]:
        try:
            yield
        finally:
            callback, self._callback = self._callback, None
            if callback is not None:
                await callback()

    def cancel(self) -> None:
        """Never call back, and finish the generator now: a suspended one that is collected
        would have its loop schedule its closing."""
        self._callback = None
        # RuntimeError: it is awaiting the callback right now, and finishes by itself.
        with contextlib.suppress(StopIteration, RuntimeError):
            self._signal.aclose().send(None)
