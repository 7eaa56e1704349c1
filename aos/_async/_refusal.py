"""``os``'s own ``TypeError`` for arguments a hand-written face refuses by number or name.

An offloaded call hands its arguments to the ``os`` function, which refuses bad ones itself. A
face written by hand in Python binds them first, and Python words that error its own way
(``waitpid() missing 1 required positional argument: 'options'`` where ``os`` says
``waitpid() takes exactly 2 arguments (1 given)``). These decorators give ``os``'s words: on a
binding error, the arguments go to the ``os`` function, which refuses them before it does
anything, as its signature (the same as ours) says it will.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, ParamSpec, TypeVar

__all__ = ["refusing_as", "refusing_as_sync"]

P = ParamSpec("P")
T = TypeVar("T")


def refusing_as(
    os_fn: Callable[..., object],
) -> Callable[[Callable[P, Awaitable[T]]], Callable[P, Coroutine[Any, Any, T]]]:
    """For an async face of ``os_fn``: arguments it cannot bind raise ``os_fn``'s error."""

    def decorate(fn: Callable[P, Awaitable[T]]) -> Callable[P, Coroutine[Any, Any, T]]:
        @functools.wraps(fn)
        async def refusing_as_os(*args: P.args, **kwargs: P.kwargs) -> T:
            try:
                awaitable = fn(*args, **kwargs)  # (a coroutine: only the binding runs)
            except TypeError:
                pass
            else:
                return await awaitable
            _raise_as(os_fn, args, kwargs)  # (outside the except: os's error, with no context)
            return await fn(*args, **kwargs)  # (os takes them after all: the face's own error)

        return refusing_as_os

    return decorate


def refusing_as_sync(
    os_fn: Callable[..., object],
) -> Callable[[Callable[P, T]], Callable[P, T]]:
    """For a face that returns an async iterator (``scandir``): the same, raised at the call.
    ``fn`` is called again where its ``TypeError`` stands, so it must do nothing before it
    raises one."""

    def decorate(fn: Callable[P, T]) -> Callable[P, T]:
        @functools.wraps(fn)
        def refusing_as_os(*args: P.args, **kwargs: P.kwargs) -> T:
            try:
                return fn(*args, **kwargs)
            except TypeError:
                pass
            _raise_as(os_fn, args, kwargs)  # (outside the except: os's error, with no context)
            return fn(*args, **kwargs)  # (os takes them: the face's own error, again)

        return refusing_as_os

    return decorate


def _raise_as(os_fn: Callable[..., object], args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    """Raise ``os_fn``'s own error if its signature refuses ``args`` and ``kwargs``; else return
    (the ``TypeError`` came from the face's own checks, and stands)."""
    try:
        inspect.signature(os_fn).bind(*args, **kwargs)
    except TypeError:
        pass
    except ValueError:  # no signature to tell: the face's own error stands
        return
    else:
        return
    os_fn(*args, **kwargs)  # raises before it does anything
