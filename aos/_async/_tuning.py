"""Module-level tuning of the worker engine (never an extra keyword on an os signature)."""

from __future__ import annotations

from aos._async import _workers

__all__ = ["max_workers", "set_max_workers"]


def max_workers() -> int:
    """The most threads that run filesystem calls at once (``WAIT`` calls have their own lane).

    The default is one per CPU (from 2 to 8), or the environment variable ``AOS_MAX_WORKERS``
    read at import.
    """
    limit = _workers.FILESYSTEM.limit
    assert limit is not None
    return limit


def set_max_workers(n: int) -> None:
    """Let at most ``n`` threads run filesystem calls at once: extra threads exit when idle, or
    once the call they run has returned."""
    if isinstance(n, bool) or not isinstance(n, int):
        raise TypeError(f"max workers must be an int, not {type(n).__name__}")
    if n < 1:
        raise ValueError(f"max workers must be at least 1, got {n}")
    _workers.FILESYSTEM.set_limit(n)
