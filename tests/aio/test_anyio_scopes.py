"""The check before every call: a loop's own ``checkpoint_if_cancelled`` raises exactly where
anyio's does, and on asyncio it reads anyio's scopes without a coroutine."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from contextlib import AbstractContextManager, ExitStack

import anyio
import anyio.lowlevel
import pytest

from aos._async import _anyio_scopes, _completions

pytestmark = pytest.mark.anyio

Check = Callable[[], Awaitable[None]]


def _scopes(*layout: str) -> Callable[[ExitStack], None]:
    """Cancel scopes, outermost first: each is ``plain``, ``cancelled``, ``shield``,
    ``cancelled shield`` or ``past deadline``."""

    def enter(stack: ExitStack) -> None:
        for kind in layout:
            scope: AbstractContextManager[anyio.CancelScope]
            if kind == "past deadline":
                scope = anyio.move_on_after(-1)
            else:
                scope = anyio.CancelScope(shield="shield" in kind)
            entered = stack.enter_context(scope)
            if kind.startswith("cancelled"):
                entered.cancel()

    return enter


# scopes, outermost first -> whether the check raises
CASES = {
    "none": ((), False),
    "plain": (("plain",), False),
    "cancelled": (("cancelled",), True),
    "cancelled outside a plain one": (("cancelled", "plain"), True),
    "cancelled outside a shield": (("cancelled", "shield"), False),
    "cancelled outside two, the outer a shield": (("cancelled", "shield", "plain"), False),
    "a cancelled shield": (("plain", "cancelled shield"), True),
    "cancelled inside a shield": (("shield", "cancelled", "plain"), True),
    "past its deadline": (("past deadline",), True),
}


async def _raises(check: Check, enter: Callable[[ExitStack], None]) -> bool:
    """Whether ``check`` raises a cancel inside the scopes ``enter`` makes (which swallow it)."""
    raised = True
    with anyio.CancelScope():  # (the outermost of those entered swallows their cancel)
        with ExitStack() as stack:
            enter(stack)
            await check()
            raised = False
    await anyio.lowlevel.checkpoint()
    return raised


@pytest.mark.parametrize("read_itself", [True, False], ids=["reading", "fallback"])
@pytest.mark.parametrize("case", CASES)
async def test_the_loop_s_check_raises_where_anyio_s_does(
    case: str, read_itself: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """(The fallback: where anyio keeps its scopes otherwise, the asyncio channel always asks
    anyio's check; trio's channel has a single way.)"""
    layout, expected = CASES[case]
    channel = _completions.current()
    if not read_itself and hasattr(channel, "_cancel_pending"):
        monkeypatch.setattr(channel, "_cancel_pending", None)
    anyio_says = await _raises(anyio.lowlevel.checkpoint_if_cancelled, _scopes(*layout))
    channel_says = await _raises(channel.checkpoint_if_cancelled, _scopes(*layout))
    assert (channel_says, anyio_says) == (expected, expected)


@pytest.mark.parametrize("case", CASES)
async def test_in_a_task_group_s_task_too(case: str) -> None:
    """The same in a task started in a task group, under the caller's scopes (on 3.12's eager
    task factory it runs before its task is first stepped)."""
    layout, expected = CASES[case]
    channel = _completions.current()
    said: list[bool] = []

    async def child(check: Check) -> None:
        said.append(await _raises(check, _scopes(*layout)))

    for check in (anyio.lowlevel.checkpoint_if_cancelled, channel.checkpoint_if_cancelled):
        async with anyio.create_task_group() as tg:
            tg.start_soon(child, check)
    assert said == [expected, expected]


async def test_a_cancelled_task_group_s_tasks_are_told() -> None:
    """A task whose group's scope is cancelled while it waits gets the cancel at its next call,
    not only at a yield."""
    channel = _completions.current()
    steps: list[str] = []

    async def child(started: anyio.Event, go_on: anyio.Event) -> None:
        with anyio.CancelScope(shield=True):
            started.set()
            await go_on.wait()  # (its group is cancelled meanwhile)
        steps.append("checks")
        await channel.checkpoint_if_cancelled()
        steps.append("went on")

    async with anyio.create_task_group() as tg:
        started, go_on = anyio.Event(), anyio.Event()
        tg.start_soon(child, started, go_on)
        await started.wait()
        tg.cancel_scope.cancel()
        go_on.set()
    assert steps == ["checks"]


async def test_on_asyncio_nothing_is_awaited_when_no_cancel_is_pending(
    anyio_backend: tuple[str, object],
) -> None:
    """asyncio's channel reads anyio's scopes itself: with no cancel pending it returns a
    finished future (awaiting it makes no coroutine), and the installed anyio keeps its scopes
    as the reading expects. If anyio moves them, this fails, rather than every call quietly
    paying for a coroutine (the fallback still checks the scopes: see the tests above)."""
    if anyio_backend[0] != "asyncio":
        pytest.skip("trio's channel calls trio's own check, which makes no coroutine either")
    assert _anyio_scopes.pending_check() is not None
    channel = _completions.current()
    finished = {}
    for case, (layout, _) in CASES.items():
        with anyio.CancelScope(), ExitStack() as stack:
            _scopes(*layout)(stack)
            check = channel.checkpoint_if_cancelled()
            finished[case] = isinstance(check, asyncio.Future)
            await check
    assert finished == {case: not expected for case, (_, expected) in CASES.items()}


def test_the_asyncio_check_asks_anyio_s_asyncio_backend_itself() -> None:
    """Where a cancel is pending, the asyncio channel checks anyio's cancel scopes with the
    asyncio backend's own method: anyio's public ``checkpoint_if_cancelled`` first asks which
    library runs, 1 us of a sequential ``await aos.stat``'s 9. If anyio moves its backend, this
    fails, rather than the calls quietly slowing down."""
    check = _anyio_scopes.scopes_check()
    assert check is not anyio.lowlevel.checkpoint_if_cancelled
    assert getattr(check, "__module__", None) == "anyio._backends._asyncio"
    assert getattr(check, "__name__", None) == "checkpoint_if_cancelled"
