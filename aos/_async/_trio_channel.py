"""The trio side of a completion channel: a system task drains, ``reschedule`` wakes waiters."""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import trio
import trio.lowlevel

from aos._async._completions import (
    RING_WATCH_S,
    Channel,
    RingRequest,
    after_completion,
    outcome,
)
from aos._async._turns import Waiter
from aos._async._workers import Job, Lane, Pool


class TrioChannel(Channel):
    """Channel of a trio run."""

    def __init__(self, token: object) -> None:
        super().__init__(token)
        self._batch_ender: trio.lowlevel.Task | None = None  # parked until a batch ends
        self._ender_alive = True
        self._ending = False  # the run is ending: _serve delivers until nobody waits
        self._ring_watcher: trio.lowlevel.Task | None = None  # parked while the ring is idle
        self._ring_watched = False  # the watcher task was started
        trio.lowlevel.spawn_system_task(self._serve, name="aos completions")
        trio.lowlevel.spawn_system_task(self._end_batches, name="aos batch ends")

    async def checkpoint(self) -> None:
        await trio.lowlevel.checkpoint()

    async def let_loop_run(self) -> None:
        await trio.lowlevel.checkpoint()
        await trio.lowlevel.checkpoint()

    checkpoint_if_cancelled = staticmethod(trio.lowlevel.checkpoint_if_cancelled)  # anyio's: 3x

    def current_task(self) -> object:
        return trio.lowlevel.current_task()

    def turn_handle(self) -> trio.lowlevel.Task:
        return trio.lowlevel.current_task()

    async def wait_for_turn(self, waiter: Waiter) -> None:
        def leave(_: object) -> trio.lowlevel.Abort:
            self.turns.leave(waiter, self)  # now: a wake-up before the cancel lands would fail
            return trio.lowlevel.Abort.SUCCEEDED

        await trio.lowlevel.wait_task_rescheduled(leave)

    def wake_for_turn(self, waiter: Waiter) -> None:
        trio.lowlevel.reschedule(waiter.handle)  # type: ignore[arg-type]

    def ki_protected(self, turn: Awaitable[None]) -> Awaitable[None]:
        return _ki_protected(turn)

    async def wait_readable(self, fd: int) -> None:
        await trio.lowlevel.wait_readable(fd)

    def watch_ring_soon(self) -> None:
        watcher, self._ring_watcher = self._ring_watcher, None
        if watcher is not None:
            trio.lowlevel.reschedule(watcher)
        elif not self._ring_watched:  # (else it watches already, or the run is ending)
            self._ring_watched = True
            trio.lowlevel.spawn_system_task(self._watch_ring, name="aos ring watch")

    async def _watch_ring(self) -> None:
        """Call :meth:`watch_ring` every :data:`RING_WATCH_S` while operations are in the ring;
        parked while there are none."""
        while True:
            while True:
                await trio.sleep(RING_WATCH_S)
                if not self.watch_ring():
                    break
            self._ring_watcher = trio.lowlevel.current_task()
            await trio.lowlevel.wait_task_rescheduled(self._ring_watch_aborted)

    def _ring_watch_aborted(self, _: object) -> trio.lowlevel.Abort:
        self._ring_watcher = None
        return trio.lowlevel.Abort.SUCCEEDED

    async def _next_wake(self) -> None:
        """At the run's end, with the watcher gone: wait for the eventfd, watching the ring."""
        while self._in_ring:
            with trio.move_on_after(RING_WATCH_S) as watch:
                await trio.lowlevel.wait_readable(self._fd)
            if not watch.cancelled_caught:
                return
            self.watch_ring()
        await trio.lowlevel.wait_readable(self._fd)

    def end_batch_later(self) -> None:
        if not self._ender_alive:  # the run is ending: end the batch at the next batch
            # (not now: handing the turn on asks for the next batch's end, endlessly)
            try:
                self.key.run_sync_soon(self.end_batch)  # type: ignore[attr-defined]
            except trio.RunFinishedError:  # (no task is left to hand the turn to)
                self._batch_ending = False
                self.flush()
            return
        ender, self._batch_ender = self._batch_ender, None
        if ender is not None:  # else it has not started yet, and ends the batch when it does
            trio.lowlevel.reschedule(ender)  # runs after the tasks of this batch

    async def _end_batches(self) -> None:
        """End each scheduling batch that asked for it (see :meth:`Channel.end_batch`)."""
        try:
            while True:
                self.end_batch()
                if self._batch_ending:  # it asked for the next batch's end: no one to wake
                    await trio.lowlevel.checkpoint()
                    continue
                self._batch_ender = trio.lowlevel.current_task()
                await trio.lowlevel.wait_task_rescheduled(self._ender_aborted)
        finally:
            self._batch_ender = None
            self._ender_alive = False
            self.end_batch()  # what was queued for it

    def _ender_aborted(self, _: object) -> trio.lowlevel.Abort:
        """The run is ending: from now on batches end at once, never by rescheduling the ender
        (already rescheduled with its cancellation: a second reschedule would fail)."""
        self._batch_ender = None
        self._ender_alive = False
        return trio.lowlevel.Abort.SUCCEEDED

    def _idle(self) -> None:
        if self._ending and self.open:  # wake _serve: it waits for a delivery nobody needs
            os.eventfd_write(self._fd, 1)

    def is_current(self) -> bool:
        try:
            return self.open and trio.lowlevel.current_trio_token() is self.key
        except RuntimeError:
            return False

    def resume(self, job: Job) -> None:
        task = job.waiter
        if task is not None:
            job.waiter = None
            self._unpark()
            trio.lowlevel.reschedule(task)

    async def _serve(self) -> None:
        try:
            while True:
                try:
                    await trio.lowlevel.wait_readable(self._fd)
                except trio.Cancelled:
                    # The run is ending. Callers still parked here (a system task's shielded
                    # cleanup, say) get their answers first; abandoned calls are not waited for.
                    self._ending = True
                    with trio.CancelScope(shield=True):
                        while self._parked:
                            await self._next_wake()
                            self.drain()
                    raise
                self.drain()
        finally:
            if self.open:
                trio.lowlevel.notify_closing(self._fd)
            self.close()

    # KI-protected: a KeyboardInterrupt raised between submit and the park would leave the job
    # naming a task that is no longer waiting for it, and the delivery would reschedule a busy
    # task. Protected, trio delivers it at the park, through the abort function.
    @trio.lowlevel.enable_ki_protection
    async def run_abandonable(
        self,
        pool: Lane,
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: Mapping[str, Any],
    ) -> Any:
        task = trio.lowlevel.current_task()
        job = self.submit(pool, fn, args, kwargs, task)

        def abandon(_: object) -> trio.lowlevel.Abort:
            job.waiter = None
            job.abandoned = True
            self._unpark()
            return trio.lowlevel.Abort.SUCCEEDED

        await trio.lowlevel.wait_task_rescheduled(abandon)
        return outcome(job)

    @trio.lowlevel.enable_ki_protection
    async def run_to_completion(
        self,
        pool: Pool,
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: Mapping[str, Any],
        release: Callable[[Any], object] | None,
        ring: RingRequest | None,
        *,
        withdrawable: bool = True,
    ) -> Any:
        task = trio.lowlevel.current_task()
        job = self.submit(pool, fn, args, kwargs, task, ring=ring, release=release)

        def withdraw_or_wait(_: object) -> trio.lowlevel.Abort:
            if withdrawable and self.withdraw(pool, job):  # never ran: nothing to wait for
                return trio.lowlevel.Abort.SUCCEEDED
            return trio.lowlevel.Abort.FAILED  # a cancel waits for the call

        await trio.lowlevel.wait_task_rescheduled(withdraw_or_wait)
        return await after_completion(job, None, trio.lowlevel.checkpoint_if_cancelled)


@trio.lowlevel.enable_ki_protection
async def _ki_protected(awaitable: Awaitable[None]) -> None:
    """Await ``awaitable`` with KeyboardInterrupt held back to a checkpoint: one raised after a
    waiter joined the queue, or after it was given its turn, would leave the turn taken."""
    await awaitable
