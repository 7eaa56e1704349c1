"""Arguments that ``os`` refuses for their number or their names (too many, too few, an unknown
or positional-only keyword) get ``os``'s very ``TypeError`` from every async face, offloaded or
written by hand, in :mod:`aos` and :mod:`aos.path`."""

from __future__ import annotations

import inspect
import posixpath
from collections.abc import Callable
from typing import Any

import anyio
import pytest

import aos
import aos.path
from aos import blocking

pytestmark = pytest.mark.anyio

Arguments = tuple[tuple[Any, ...], dict[str, Any]]
Refusal = tuple[type[BaseException], str, BaseException | None]  # the error, and its context


def async_faces() -> list[tuple[str, Callable[..., Any], Callable[..., Any]]]:
    """``(name, ours, os's)`` for every name whose aos face is not os's own object."""
    faces = [
        (name, getattr(aos, name), getattr(blocking, name))
        for name in sorted(blocking.__all__)
        if callable(getattr(blocking, name)) and getattr(aos, name) is not getattr(blocking, name)
    ]
    faces += [
        (f"path.{name}", getattr(aos.path, name), getattr(posixpath, name))
        for name in sorted(posixpath.__all__)
        if getattr(aos.path, name) is not getattr(posixpath, name)
    ]
    return faces


def refused_arguments(theirs: Callable[..., Any]) -> list[Arguments]:
    """Calls that ``theirs``'s signature refuses (so that ``os`` raises before doing anything)."""
    calls: list[Arguments] = [((), {"no_such_argument": 0}), ((0,) * 12, {})]
    try:
        parameters = list(inspect.signature(theirs).parameters.values())
    except ValueError:  # no signature to read: the two that refuse any signature
        return calls
    required = [
        p
        for p in parameters
        if p.default is p.empty and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
    ]
    if required:
        calls.append(((), {}))
        calls.append(((0,) * (len(required) - 1), {}))
    positional_only = [p.name for p in parameters if p.kind is p.POSITIONAL_ONLY]
    if positional_only:
        calls.append(((), dict.fromkeys(positional_only, 0)))
    return [call for call in calls if not _binds(theirs, call)]


def _binds(fn: Callable[..., Any], call: Arguments) -> bool:
    try:
        inspect.signature(fn).bind(*call[0], **call[1])
    except TypeError:
        return False
    except ValueError:  # (no signature: the calls given refuse any)
        return False
    return True


def refusal(fn: Callable[..., Any], call: Arguments) -> Refusal:
    """The error ``fn(*args, **kwargs)`` raises (driving the first step of a generator), with
    its ``__context__`` (a traceback shows it first)."""
    with pytest.raises(TypeError) as raised:
        _first_step(fn, call)
    return type(raised.value), str(raised.value), raised.value.__context__


async def our_refusal(fn: Callable[..., Any], call: Arguments) -> Refusal:
    """The error our face raises: at the call, at the await, or at the first step."""
    with anyio.fail_after(10), pytest.raises(TypeError) as raised:  # (taken: it would run)
        await _first_async_step(fn, call)
    return type(raised.value), str(raised.value), raised.value.__context__


def _first_step(fn: Callable[..., Any], call: Arguments) -> None:
    result = fn(*call[0], **call[1])
    if inspect.isgenerator(result):
        next(result)


async def _first_async_step(fn: Callable[..., Any], call: Arguments) -> None:
    result = fn(*call[0], **call[1])
    if inspect.isawaitable(result):
        await result
    elif hasattr(result, "__anext__"):
        await result.__anext__()


FACES = async_faces()


@pytest.mark.parametrize(("name", "ours", "theirs"), FACES, ids=[face[0] for face in FACES])
async def test_arguments_os_refuses_are_refused_with_its_error(
    name: str, ours: Callable[..., Any], theirs: Callable[..., Any]
) -> None:
    calls = refused_arguments(theirs)
    assert calls
    for call in calls:
        assert await our_refusal(ours, call) == refusal(theirs, call), (name, call)


def test_the_cases_cover_every_async_face() -> None:
    names = {face[0] for face in FACES}
    assert {"stat", "open", "read", "write", "waitpid", "waitid", "scandir", "walk"} <= names
    assert {"path.exists", "path.realpath"} <= names
