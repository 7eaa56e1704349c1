"""let_loop_run: what became ready while an iterator served from its buffer runs first."""

from __future__ import annotations

import time

import anyio
import pytest

from aos._async._loop_slice import let_loop_run

pytestmark = pytest.mark.anyio


async def test_a_task_whose_timer_expired_meanwhile_runs_before_the_caller_goes_on() -> None:
    """A sleeper's timer expires while the caller works without awaiting (as a walk serving its
    read-ahead does, here a 1 ms spin of the CPU); ``let_loop_run`` must let it run first.

    One checkpoint fails this on every backend: always on asyncio and uvloop, about half of the
    time on trio (hence 20 trials)."""
    for _ in range(20):
        assert await _sleeper_ran_first()


async def _sleeper_ran_first() -> bool:
    woke = False
    sleeping = anyio.Event()

    async def sleeper() -> None:
        nonlocal woke
        sleeping.set()
        await anyio.sleep(0.0003)
        woke = True

    async with anyio.create_task_group() as tg:
        tg.start_soon(sleeper)
        await sleeping.wait()
        busy_until = time.perf_counter() + 0.001
        while time.perf_counter() < busy_until:
            pass
        await let_loop_run()
        ran_first = woke  # read here: leaving the task group waits for the sleeper
    return ran_first


async def test_it_is_a_cancellation_point() -> None:
    with anyio.CancelScope() as scope:
        scope.cancel()
        await let_loop_run()
        pytest.fail("not cancelled")  # pragma: no cover
    assert scope.cancelled_caught
