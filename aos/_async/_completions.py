"""Per-loop completion channels: finished jobs go back to their event loop in batches.

Each running event loop gets one :class:`Channel`: an eventfd plus a queue of finished jobs.
A worker appends its finished job and writes the eventfd only when the loop is not already
signalled, so a burst of completions costs the loop one wake-up. The loop side drains up to
:data:`DELIVER_BATCH` finished jobs per wake-up (and signals the next wake-up for the rest) and
resumes each waiter with a loop-local primitive (an asyncio future,
``trio.lowlevel.reschedule``): no per-call thread-safe callback.

Mutations that io_uring can run (see :mod:`aos._async._ring_requests`) go to the channel's
ring instead of a worker while other calls are in flight, where the kernel supports it: the ring
signals the same eventfd, and the loop reaps its completions in the same drain (up to
:data:`DELIVER_BATCH` more). They are sent in one ``io_uring_enter`` per loop iteration
(asyncio) or at once (trio).

The channel's fd lives as long as its loop: on asyncio a guard task closes it when the loop
cancels its tasks at shutdown (or, for a channel first opened after that, when the loop shuts
down its async generators), on trio a system task does. Jobs still running then (abandoned
calls) are counted, and the last of them closes the fd. A ring that still runs operations then
(only after an abnormal end) is closed by a thread of its own once they have finished. After
``fork()`` the child forgets every channel and opens new ones on demand.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import sys
import threading
import weakref
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping
from typing import Any, Final, Protocol

import anyio
import anyio.lowlevel

from aos._async import _anyio_scopes, _uring
from aos._async._fd_watch import FdWatch
from aos._async._loop_end import LoopEnd
from aos._async._ring_requests import Request
from aos._async._turns import Turns, Waiter
from aos._async._workers import FILESYSTEM, Job, Lane, Pool, ring_workers

DELIVER_BATCH = 8
"""Finished calls resumed per loop wake-up, from the workers and again from the ring; more wait
for the next wake-up, so that the loop's other work (timers, I/O) gets a turn between batches.
At 64 concurrent ``symlink``+``unlink`` pairs on the ring (2 CPUs), 16 a wake-up let a 1 ms
heartbeat on an asyncio loop wake 0.73-0.77 ms late at the median and 1.3-1.4 ms at the 99th
percentile; 8 a wake-up, 0.46 and 0.7-0.8 ms, for 0-10% more time per pair. On trio: 0.31-0.34
and 0.77-0.89 ms with 16, 0.18-0.20 and 0.40-0.52 ms with 8."""

RING_WATCH_S = 0.05
"""While operations are in the ring, how often the loop checks that some finish. On Linux 6.18,
about once in 100 runs of 64 concurrent ``aos.stat`` on trio (when ``stat`` still went to the
ring), the kernel held back the
completions of finished operations until the ring's thread entered io_uring again; with nothing
left to submit, the loop waited forever. A check that sees no progress enters io_uring once
(:meth:`~aos._async._uring.Ring.kick`), which posts them."""

RingRequest = Callable[..., Request | None]
"""Builds the io_uring form of a call from the call's own arguments, or ``None`` (use a worker)."""

Notify = Callable[[Job], None]
"""Called on the loop's thread with a job started by :meth:`Channel.start` once it finished."""

_channels: dict[int, Channel] = {}  # id(loop or trio token) -> its open channel
_channels_lock = threading.RLock()  # for looking an entry up and removing it (in a finalizer too)
_local = threading.local()  # .channel: the channel this thread used last
_closing_rings: set[_uring.Ring] = set()  # of closed channels, waiting for their operations
_ending_loops: weakref.WeakSet[asyncio.AbstractEventLoop] = weakref.WeakSet()  # see AsyncioChannel


class Channel:
    """The completion queue and eventfd of one event loop (base of the per-backend channels)."""

    def __init__(self, key: object) -> None:
        self.key = key
        self.open = True
        self._fd = os.eventfd(0, os.EFD_CLOEXEC | os.EFD_NONBLOCK)
        self._lock = threading.Lock()  # workers vs. shutdown; the loop takes it only to close
        self._done: deque[Job] = deque()
        self._signalled = False
        self._closed = False  # under _lock: no more deliveries; the last job out closes the fd
        self._submitted = 0  # loop thread only
        self._completed = 0  # under _lock
        self._parked = 0  # loop thread only: callers waiting for their call to be delivered
        # loop thread only: the io_uring ring (None: not opened yet, False: not usable)
        self._ring: _uring.Ring | bool | None = None
        self._in_ring: dict[int, Job] = {}  # user_data -> job, until its completion is reaped
        self._unsent: list[int] = []  # user_data of operations pushed but not yet submitted
        self._next_id = 0
        self._ring_limit = 0  # the io-wq limit last set on the ring
        self._ring_reaped = 0  # ring completions reaped so far...
        self._ring_reaped_seen = -1  # ...and at the last watch_ring
        # Inline answers' slices (see aos._async._loop_slice.slice_point), loop thread only:
        self.loop_ran_at = 0.0  # when the current slice began (perf_counter)
        self.slice_start = 0.0  # ...moved on by the time others ran amid it (see slice_point)
        self.answer_at = 0.0  # when the last inline attempt ended (perf_counter)
        self.turns = Turns()  # tasks waiting for a turn to answer inline
        self.turn_seen = False  # the loop has run since the slice began (see watch_for_turn)
        self._batch_ending = False  # an end_batch is scheduled

    # worker side

    def finish(self, job: Job) -> None:
        """Hand a finished job back to the loop (called on the worker). Once the channel or its
        loop is closed, nobody will take the value: it is released (a MUTATE call's fd)."""
        with self._lock:
            self._completed += 1
            gone = self._closed or self.loop_is_closed()
            if self._closed and self._completed == self._submitted:
                os.close(self._fd)
            if not gone:
                self._done.append(job)
                if not self._signalled:
                    self._signalled = True
                    self.wake_loop()
                return
            orphans = [job, *self._done]  # (the loop closed: none of them will be delivered)
            self._done.clear()
        release_orphans(orphans)

    def wake_loop(self) -> None:
        """Wake the loop side once for a batch (called on the worker with the lock held)."""
        os.eventfd_write(self._fd, 1)

    # loop side

    def submit(
        self,
        pool: Lane,
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: Mapping[str, Any],
        waiter: object,
        *,
        ring: RingRequest | None = None,
        release: Callable[[Any], object] | None = None,
    ) -> Job:
        """Queue a call on the ring if ``ring`` makes a request of it, else on ``pool``.

        ``waiter`` is resumed when the call has finished. ``release`` frees its value if nobody
        takes it (see :meth:`finish`).
        """
        request = None
        if ring is not None and self._ring is not False and self._busy():
            try:
                request = ring(*args, **kwargs)
            except TypeError:  # arguments os refuses: os raises its own error on the worker
                request = None
        job = Job(fn, args, kwargs, self.finish)
        job.waiter = waiter
        job.release = release
        on_ring = request is not None and self._push(job, request)  # may raise: count after
        if not on_ring:
            self._submitted += 1
            try:
                pool.submit(job)
            except BaseException:
                if isinstance(pool, Pool):  # an interrupt (Ctrl-C) may leave it queued:
                    pool.withdraw(job)  # taken back, it never runs
                if job.taken:  # an interrupt once a worker had it: it runs all the same,
                    job.waiter = None  # and what it makes is released when it arrives
                    job.notify = abandoned
                    raise
                self._submitted -= 1  # no thread could start (or never queued): never finishes
                raise
        if waiter is not None:
            self._parked += 1  # until the delivery resumes it, or it gives up waiting
        return job

    def withdraw(self, pool: Pool, job: Job) -> bool:
        """Take back a call that no worker of ``pool`` has started: its cancelled caller then
        knows that it never ran, and no longer waits for a delivery. ``False`` if it has started
        (or is on the ring, or the channel is closed: its last delivery closes the eventfd)."""
        if not self.open or not pool.withdraw(job):
            return False
        self._submitted -= 1
        job.fn, job.args, job.kwargs, job.release, job.waiter = None, (), {}, None, None
        self._unpark()
        return True

    def _busy(self) -> bool:
        """Whether other calls of this loop are in flight: only then does the ring pay off.

        A lone call is answered sooner by a worker thread (measured when ``stat`` still had a
        ring form: 37 us against 54 us per sequential call on asyncio); calls that overlap share
        one ``io_uring_enter`` and need no thread at all.
        """
        return bool(self._in_ring) or self._submitted != self._completed

    def _push(self, job: Job, request: Request) -> bool:
        """Queue ``job`` on the ring; ``False`` if the ring is unusable or full."""
        ring = self._ring
        if ring is None:
            ring = self._ring = self._open_ring()
        if not isinstance(ring, _uring.Ring):
            return False
        if len(self._in_ring) >= ring.cq_entries:
            return False
        if not ring.has_room():
            self.flush()
            if not ring.has_room():
                return False
        if request.audit is not None:  # os raises this audit event; a hook may refuse the call
            sys.audit(*request.audit)  # (a submission the kernel refuses reruns it in os)
        self._next_id = user_data = self._next_id + 1
        ring.push(user_data, request.opcode, request.fd, request.addr, request.length,
                  request.off, request.op_flags)  # fmt: skip
        job.request = request
        self._in_ring[user_data] = job
        if len(self._in_ring) == 1:
            self.watch_ring_soon()
        self._unsent.append(user_data)
        if len(self._unsent) == 1:
            if len(self._in_ring) == 1:
                self.flush()  # alone in flight: no batch to wait for
            else:
                self._end_batch_soon()
        return True

    def _open_ring(self) -> _uring.Ring | bool | None:
        """The loop's ring; ``False`` where there can be none, ``None`` while the process is out
        of fds (a worker does the work, and a later call tries again)."""
        try:
            if not _uring.available():
                return False
            ring = _uring.Ring(self._fd)
        except OSError as error:
            if error.errno in _uring.OUT_OF_FDS:
                return None
            return False  # e.g. the memory limit for rings: worker threads do the work
        self._limit_ring_workers(ring)
        return ring

    def _limit_ring_workers(self, ring: _uring.Ring) -> None:
        """No more kernel threads than :func:`~aos._async._workers.ring_workers`: on cached
        calls more only take the loop's CPU (measured: up to 8 io-wq threads stalled an asyncio
        loop for 6 ms)."""
        limit = ring_workers()
        try:
            ring.limit_workers(limit)
        except OSError:  # an older kernel: io-wq picks its own limit
            pass
        self._ring_limit = limit

    def flush(self) -> None:
        """Hand the ring's queued operations to the kernel; any it refuses go to a worker."""
        unsent, self._unsent = self._unsent, []
        ring = self._ring
        if not unsent or not isinstance(ring, _uring.Ring):
            return
        if self._ring_limit != ring_workers():  # aos.set_max_workers() was called
            self._limit_ring_workers(ring)
        refused = ring.submit()
        for user_data in unsent[len(unsent) - refused :]:  # the kernel took none of these
            job = self._in_ring.pop(user_data)
            job.request = None
            self._submitted += 1
            FILESYSTEM.submit(job)

    def _end_batch_soon(self) -> None:
        if not self._batch_ending:
            self._batch_ending = True
            self.end_batch_later()

    def end_batch(self) -> None:
        """Close this loop iteration's batch: submit the ring's queue, and hand the inline
        answers' turn on if its holder stopped (see :meth:`Turns.pass_if_idle`)."""
        self._batch_ending = False
        self.flush()
        self.turns.pass_if_idle(self)

    def pass_turn_later(self) -> None:
        """Tasks wait for a turn: make sure it is handed on by the end of the next iteration."""
        self._end_batch_soon()

    def end_batch_later(self) -> None:
        """Arrange one :meth:`end_batch` after the tasks of this loop iteration have run."""
        raise NotImplementedError

    def watch_ring(self) -> bool:
        """Check that the ring's operations progress (every :data:`RING_WATCH_S` while there are
        any); ``False`` once none is left to watch."""
        ring = self._ring
        if not self._in_ring or not isinstance(ring, _uring.Ring):
            return False
        if self._ring_reaped == self._ring_reaped_seen and ring.kick():
            os.eventfd_write(self._fd, 1)  # completions were held back: drain them
        self._ring_reaped_seen = self._ring_reaped
        return True

    def watch_ring_soon(self) -> None:
        """Start calling :meth:`watch_ring` every :data:`RING_WATCH_S` (an operation entered
        the idle ring)."""
        raise NotImplementedError

    def drain(self) -> None:
        """Take back up to :data:`DELIVER_BATCH` finished jobs of the workers and as many of
        the ring, and resume their waiters (one loop wake-up; it signals the next if more are
        left)."""
        try:
            os.eventfd_read(self._fd)
        except BlockingIOError:  # a spurious wake-up: the count was read by an earlier drain
            pass
        self._signalled = False  # before popping: a job appended after this signals anew
        done = self._done
        try:
            for _ in range(min(len(done), DELIVER_BATCH)):
                self._deliver(done.popleft())
            if self._in_ring:
                self._reap()
        finally:  # (also when a delivery raised: what is left must not wait for a stray wake-up)
            ring = self._ring
            if done or (self._in_ring and isinstance(ring, _uring.Ring) and ring.has_completions()):
                self._signalled = True  # the workers need not signal again
                os.eventfd_write(self._fd, 1)

    def _reap(self) -> None:
        """Resume the callers of up to :data:`DELIVER_BATCH` finished ring operations."""
        ring = self._ring
        assert isinstance(ring, _uring.Ring)
        in_ring = self._in_ring
        reaped, _ = ring.reap(DELIVER_BATCH)
        self._ring_reaped += len(reaped)
        finished: deque[Job] = deque()
        for user_data, result in reaped:
            job = in_ring.pop(user_data)
            request: Request = job.request
            job.request = job.fn = None
            job.args = ()
            job.kwargs = {}
            job.value, job.error = request.outcome(result)
            finished.append(job)
        try:
            while finished:
                self._deliver(finished.popleft())
        finally:  # a delivery raised: the others go first at the next wake-up
            self._done.extendleft(reversed(finished))

    def _deliver(self, job: Job) -> None:
        job.delivered = True
        if job.notify is not None:
            job.notify(job)
        else:
            self.resume(job)

    def start(self, fn: Callable[..., Any], args: tuple[Any, ...], notify: Notify) -> Job:
        """Run ``fn(*args)`` on the filesystem pool as a query, without waiting for it:
        ``notify(job)`` is called on the loop's thread when it has finished. To abandon the
        job, set its ``notify`` to a function that ignores it."""
        job = self.submit(FILESYSTEM, fn, args, {}, None)
        job.notify = notify
        return job

    def resume(self, job: Job) -> None:
        """Wake the job's waiter, if it still waits."""
        raise NotImplementedError

    @contextlib.contextmanager
    def awaited(self) -> Iterator[None]:
        """Count the caller as waiting for a delivery while in the block (a walk waiting for
        its read-ahead), so that a loop that is ending still delivers it."""
        self._parked += 1
        try:
            yield
        finally:
            self._unpark()

    def _unpark(self) -> None:
        """One caller less waits for a delivery."""
        self._parked -= 1
        if not self._parked:
            self._idle()

    def _idle(self) -> None:
        """Nobody waits for a delivery now: a channel that is closing may close."""

    def is_current(self) -> bool:
        """Whether this channel belongs to the loop running in this thread now."""
        raise NotImplementedError

    async def checkpoint(self) -> None:
        """The loop's own checkpoint (a scheduling and cancellation point), without anyio's
        dispatch: 6 us instead of 8 on asyncio, 5.6 instead of 8.9 on trio."""
        raise NotImplementedError

    def current_task(self) -> object:
        """The loop's own object for the running task."""
        raise NotImplementedError

    def turn_handle(self) -> object:
        """What a task parked for a turn waits on (see :class:`~aos._async._turns.Waiter`)."""
        raise NotImplementedError

    async def wait_for_turn(self, waiter: Waiter) -> None:
        """Park until :meth:`wake_for_turn` of ``waiter``; a cancel raises at once."""
        raise NotImplementedError

    def wake_for_turn(self, waiter: Waiter) -> None:
        """Resume a task parked in :meth:`wait_for_turn`, at the loop's next iteration."""
        raise NotImplementedError

    def ki_protected(self, turn: Awaitable[None]) -> Awaitable[None]:
        """``turn`` (the wait for a turn), safe from a KeyboardInterrupt landing between its
        steps where the loop raises one at any line (trio)."""
        return turn

    def begin_slice(self, now: float, *, watch: bool = True) -> None:
        """A slice of inline answers begins at ``now``. Unless ``watch``, :attr:`turn_seen` is
        set again only by a wait of aos's own that suspends the caller (no callback)."""
        self.loop_ran_at = self.slice_start = self.answer_at = now
        if watch:
            self.watch_for_turn()
        else:
            self.turn_seen = False

    def watch_for_turn(self) -> None:
        """A slice begins: set :attr:`turn_seen` once the loop has run, where that costs little
        (asyncio, uvloop: a callback); on trio it stays ``False``, and a slice ends in a
        scheduling point (its ``run_sync_soon`` would cost as much as the checkpoint). On every
        loop, a wait for a child on a pidfd sets it too: the waiting task let the loop run."""
        self.turn_seen = False

    async def let_loop_run(self) -> None:
        """Let every task that was ready, or whose timer expired, run before the caller goes on
        (see :func:`aos._async._loop_slice.let_loop_run`)."""
        raise NotImplementedError

    def checkpoint_if_cancelled(self) -> Awaitable[None]:
        """Raise the caller's cancellation, if it has one, without a scheduling point otherwise."""
        raise NotImplementedError

    def loop_is_closed(self) -> bool:
        """Whether the channel's loop has been closed, its waiting tasks with it (called on
        workers too). A trio run ends only once its tasks have."""
        return False

    async def wait_readable(self, fd: int) -> None:
        """Wait until a private ``fd`` (one no other task watches) is readable, with the loop's
        own primitive: a child's exit reaches its waiter sooner than through anyio's. Raises
        :exc:`OSError` if the fd cannot be watched (out of fds, say): wait another way."""
        raise NotImplementedError

    async def run_abandonable(
        self,
        pool: Lane,
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: Mapping[str, Any],
    ) -> Any:
        """Run on ``pool``; a cancel returns at once and the result is dropped."""
        raise NotImplementedError

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
        """Run on ``pool``. With ``withdrawable``, a cancel scope's cancel takes back a call
        that no worker has started, and is raised at once; else a cancel waits for the call
        (see :func:`after_completion`)."""
        raise NotImplementedError

    def close(self) -> None:
        """Stop deliveries and close the fd, now or when the last running job finishes."""
        if not self.open:
            return
        self.open = False
        with _channels_lock:
            if _channels.get(id(self.key)) is self:
                del _channels[id(self.key)]
        if getattr(_local, "channel", None) is self:
            _local.channel = None
        self._close_ring()
        # A worker holds the lock for a few bytecodes and an eventfd write: wait without blocking.
        while not self._lock.acquire(blocking=False):
            os.sched_yield()
        try:
            self._closed = True
            orphans = list(self._done)
            self._done.clear()
            if self._completed == self._submitted:
                os.close(self._fd)
        finally:
            self._lock.release()
        release_orphans(orphans)

    def _close_ring(self, *, wait: bool = True) -> None:
        """Close the ring; while the kernel still runs operations of it, a thread of its own
        waits for them first (closing it at once would cancel those not started yet).

        Only a run that ends abnormally leaves any (an asyncio loop closed with mutations
        pending, trio's completion task failing): a channel closes once no caller waits. Their
        memory is not needed: the kernel copied their paths when they were submitted, and
        writes back nothing but a status. ``wait=False`` (a forked child): they run in the
        parent, and the ring's memory is shared with it, so the copy is only closed.
        """
        ring, self._ring = self._ring, False
        self._in_ring.clear()
        self._unsent.clear()
        if not isinstance(ring, _uring.Ring):
            return
        if wait:
            ring.withdraw()  # queued, never sent: the kernel never sees them
        if not wait or not ring.in_flight:
            ring.close()
            return
        _closing_rings.add(ring)
        closer = threading.Thread(
            target=_close_when_done, args=(ring,), name="aos-ring-close", daemon=True
        )
        try:
            closer.start()
        except BaseException as error:
            if closer.ident is None:  # no thread: close now (what the kernel has not started is
                _closing_rings.discard(ring)  # lost); an interrupt may come after it started
                ring.close()
            if not isinstance(error, Exception):
                raise

    def forget_after_fork(self) -> None:
        """In a forked child: the workers are gone; close the fd and never deliver again."""
        self.open = False
        self._close_ring(wait=False)
        self._lock = threading.Lock()
        self._closed = True
        self._done.clear()
        try:
            os.close(self._fd)
        except OSError:  # pragma: no cover - closed already
            pass


def _close_when_done(ring: _uring.Ring) -> None:
    try:
        with contextlib.suppress(OSError):  # (a bad fd: nothing left to close)
            ring.close_when_done()
    finally:
        _closing_rings.discard(ring)


def _forget_closing_rings_after_fork() -> None:
    """In a forked child: their operations run for the parent, and no thread closes them here."""
    for ring in list(_closing_rings):
        with contextlib.suppress(OSError):  # (its closer was closing it as the fork came)
            ring.close()
    _closing_rings.clear()


def outcome(job: Job) -> Any:
    """The job's value, or raise its exception unchanged: taken out of the job, with its
    ``release``, as the worker that ran it may still hold it for a moment (see :meth:`Job.run`)."""
    value, job.value, job.release = job.value, None, None
    return settle(value, take_error(job))


class HoldsError(Protocol):
    error: BaseException | None


def take_error(holder: HoldsError) -> BaseException | None:
    """``holder.error``, taken out of it: the frames of the error's traceback, once raised,
    hold the holder, and a holder that still held the error would make a reference cycle."""
    error, holder.error = holder.error, None
    return error


def release_orphans(jobs: Iterable[Job]) -> None:
    """Release the values of finished calls that nobody will take (their loop was closed while
    their callers waited): a MUTATE call's fd is closed, as for a cancelled caller."""
    for job in jobs:
        release, job.release = job.release, None
        if release is not None and job.error is None:
            with contextlib.suppress(OSError):  # (on a worker, or while a task is collected)
                release(job.value)
        job.value = None


def abandoned(job: Job) -> None:
    """``job``'s caller will never resume (its task destroyed with its closed loop, or an
    interrupt raised as it submitted the call): release its value if it was delivered (also
    its hand-back, then); else :meth:`Channel.finish` releases it when it finishes."""
    if job.delivered:
        release_orphans([job])


def settle(value: Any, error: BaseException | None) -> Any:
    """``value``, or raise ``error`` unchanged (the traceback keeps no reference to it)."""
    if error is not None:
        try:
            raise error
        finally:
            del error
    return value


class AsyncioChannel(Channel):
    """Channel of an asyncio (or uvloop) loop: a reader callback drains, futures wake waiters."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        # The guard task below is cancelled when the loop cancels its tasks, but not if it is
        # made after that (by a task's cleanup): the loop's shutdown_asyncgens, which comes
        # next, ends it then. A channel made once the loop is ending closes as soon as nobody
        # waits for it.
        self._loop_end: LoopEnd | None = None
        told = hasattr(loop, "_asyncgens_shutdown_called")  # asyncio's loop says, uvloop not
        ending = loop in _ending_loops or (told and loop._asyncgens_shutdown_called)  # type: ignore[attr-defined]
        if not ending:
            try:
                self._loop_end = LoopEnd(self._at_loop_end, strict=not told)
            except ResourceWarning:  # its generators were shut down already
                ending = True
        if ending:
            _ending_loops.add(loop)
        try:
            super().__init__(loop)  # (out of fds: raises, and nothing may be left behind)
        except BaseException:
            if self._loop_end is not None:
                self._loop_end.cancel()
            raise
        self._loop = loop
        self._quiet: asyncio.Future[None] | None = None
        self._ring_watch: asyncio.TimerHandle | None = None
        self._fd_watch: FdWatch | None = None  # opened by the first wait_readable
        self._turn_watched = False  # a _saw_turn callback is scheduled
        self._scopes_check = _anyio_scopes.scopes_check()
        self._cancel_pending = _anyio_scopes.pending_check()
        self._nothing_pending: asyncio.Future[None] = loop.create_future()  # awaited: no yield
        self._nothing_pending.set_result(None)
        loop.add_reader(self._fd, self.drain)
        guard = self._guard_until_idle() if ending else self._guard_until_loop_ends()
        self._guard = loop.create_task(guard, name="aos completions")

    def is_current(self) -> bool:
        return self.open and asyncio._get_running_loop() is self._loop

    def end_batch_later(self) -> None:
        self._loop.call_soon(self.end_batch)

    def watch_ring_soon(self) -> None:
        if self._ring_watch is None:
            self._ring_watch = self._loop.call_later(RING_WATCH_S, self._watch_ring)

    def _watch_ring(self) -> None:
        self._ring_watch = None
        if self.open and self.watch_ring():
            self.watch_ring_soon()

    async def checkpoint(self) -> None:
        await asyncio.sleep(0)

    async def let_loop_run(self) -> None:
        # A timer due at once runs after those that expired before it (sleep(0) only yields).
        await asyncio.sleep(1e-9)

    def current_task(self) -> object:
        return asyncio.current_task(self._loop)

    def watch_for_turn(self) -> None:
        self.turn_seen = False
        if not self._turn_watched:
            self._turn_watched = True
            self._loop.call_soon(self._saw_turn)  # runs in the loop's next iteration

    def turn_handle(self) -> asyncio.Future[None]:
        return self._loop.create_future()

    async def wait_for_turn(self, waiter: Waiter) -> None:
        await waiter.handle  # type: ignore[misc]

    def wake_for_turn(self, waiter: Waiter) -> None:
        future: asyncio.Future[None] = waiter.handle  # type: ignore[assignment]
        if not future.done():  # (else cancelled: its task hands the turn on as it leaves)
            future.set_result(None)

    def _saw_turn(self) -> None:
        self._turn_watched = False
        self.turn_seen = True

    def checkpoint_if_cancelled(self) -> Awaitable[None]:
        # anyio's check sees its own cancel scopes only: a native cancel() of the running task
        # (asyncio.Runner's on Ctrl-C, a task cancelling itself) lands at the next yield.
        task = asyncio.current_task(self._loop)
        if task is None:
            return self._scopes_check()
        if task.cancelling():
            return asyncio.sleep(0)
        if self._cancel_pending is None or self._cancel_pending(task):
            return self._scopes_check()
        return self._nothing_pending

    async def wait_readable(self, fd: int) -> None:
        if self._fd_watch is None:
            self._fd_watch = FdWatch(self._loop)
        await self._fd_watch.wait_readable(fd)

    def resume(self, job: Job) -> None:
        fut: asyncio.Future[None] = job.waiter
        if not fut.done():
            fut.set_result(None)
            self._unpark()

    def _idle(self) -> None:
        if self._quiet is not None and not self._quiet.done():
            self._quiet.set_result(None)

    async def _guard_until_loop_ends(self) -> None:
        """Sleep until the loop cancels its tasks; close once no caller waits for a delivery.

        The callers still waiting then are MUTATE calls (they wait for their syscall) and the
        calls a task makes while it is being cancelled (its cleanup): both are answered first.
        """
        try:
            await self._loop.create_future()
        except asyncio.CancelledError:
            _ending_loops.add(self._loop)
            await self._guard_until_idle()
            raise

    async def _guard_until_idle(self) -> None:
        """Keep delivering until no caller waits for a delivery, then close."""
        try:
            # Not before the caller that made the channel has parked: an eager task factory
            # runs a new task at once, within its creator's create_task.
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.sleep(0)
            while self._parked:
                self._quiet = self._loop.create_future()
                try:
                    await self._quiet
                except asyncio.CancelledError:
                    continue
        finally:
            self._shut()

    async def _at_loop_end(self) -> None:
        """The loop shuts down its async generators (its tasks were cancelled): the guard ends
        now, and closes the channel before the loop closes unless a caller still waits."""
        if not self.open:
            return
        _ending_loops.add(self._loop)
        self._guard.cancel()
        if not self._parked:  # now: a call made later opens a channel that closes once idle
            self._shut()
            await asyncio.wait([self._guard])

    def loop_is_closed(self) -> bool:
        return self._loop.is_closed()

    def close_after_closed_loop(self) -> None:
        """Close, the loop being closed: its guard task will never run again, so it is not
        reported as destroyed while pending when it is collected."""
        self._guard._log_destroy_pending = False  # type: ignore[attr-defined]
        self._shut()

    def forget_after_fork(self) -> None:
        super().forget_after_fork()
        watch, self._fd_watch = self._fd_watch, None
        if watch is not None:
            watch.forget()
        self._drop_loop_end()

    def _shut(self) -> None:
        if self._ring_watch is not None:
            self._ring_watch.cancel()
            self._ring_watch = None
        watch, self._fd_watch = self._fd_watch, None
        try:
            if watch is not None:
                watch.close()
        finally:
            if self.open:
                try:
                    self._loop.remove_reader(self._fd)
                except RuntimeError:  # pragma: no cover - the loop is closed already
                    pass
            self.close()
            self._drop_loop_end()

    def _drop_loop_end(self) -> None:
        loop_end, self._loop_end = self._loop_end, None
        if loop_end is not None:
            loop_end.cancel()

    async def run_abandonable(
        self,
        pool: Lane,
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: Mapping[str, Any],
    ) -> Any:
        fut = self._loop.create_future()
        job = self.submit(pool, fn, args, kwargs, fut)
        try:
            await fut  # a cancel cancels fut; the drain then drops the job
        except BaseException:
            if fut.cancelled():  # abandoned: no delivery will unpark it
                job.abandoned = True
                self._unpark()
            raise
        return outcome(job)

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
        task = asyncio.current_task(self._loop)
        asked = task.cancelling() if task is not None else 0  # cancels requested before
        waiter = self._loop.create_future()
        job = self.submit(pool, fn, args, kwargs, waiter, ring=ring, release=release)
        try:
            await job.waiter  # resolved by the delivery only
        except asyncio.CancelledError as exc:
            cancel = exc
        except GeneratorExit:  # the task destroyed with its closed loop: the value is nobody's
            abandoned(job)
            raise
        else:
            return await after_completion(job, None, self._scopes_check)
        # (outside the except clause: the call's own error must not carry the cancel as context)
        try:
            by_anyio = _by_anyio_alone(job.waiter, task, asked)
            # A scope's cancel takes back a call not started. asyncio's own (Ctrl-C, a task
            # group's) gets through anyio's shields: a shielded cleanup's call still runs.
            if by_anyio and withdrawable and self.withdraw(pool, job):
                raise cancel
            return await self._wait_out_cancel(job, cancel, by_anyio)
        finally:
            del cancel  # raised through this frame: no cycle through its local

    async def _wait_out_cancel(
        self, job: Job, cancel: asyncio.CancelledError, by_anyio: bool
    ) -> Any:
        """The caller of a MUTATE call was cancelled while it ran: wait for it all the same.

        The shield goes up only now (anyio's cancel scope would otherwise cancel the task again
        at every loop iteration): entered for every call, it took 17% of the time of 64
        concurrent ``symlink`` + ``unlink`` pairs. An anyio cancel stays pending in its scope
        (see :func:`after_completion`); a native one is raised once the call has returned.
        """
        cancelled: BaseException | None = None if by_anyio else cancel
        try:
            with anyio.CancelScope(shield=True):
                while not job.delivered:
                    job.waiter = self._loop.create_future()
                    try:
                        await job.waiter
                    except asyncio.CancelledError as again:  # native: asyncio delivers it once
                        # Raised in anyio's words if anyio's came first: its scope, cancelled,
                        # then takes it as its own (an asyncio.timeout within it counted both).
                        cancelled = cancel if by_anyio else again
                    except GeneratorExit:  # (as in run_to_completion)
                        abandoned(job)
                        raise
            # A delivery that found the waiter cancelled did not count it as resumed.
            if job.waiter.cancelled():
                self._unpark()
            return await after_completion(job, cancelled, self._scopes_check)
        finally:
            del cancel, cancelled


_ANYIO_REASONS: Final = ("Cancelled via cancel scope ", "Cancelled by cancel scope ")
"""How anyio's cancel scopes word the cancels they deliver (seen in 4.16, and in 4.7)."""


def _by_anyio_alone(
    waiter: asyncio.Future[None], task: asyncio.Task[Any] | None, asked: int
) -> bool:
    """Whether the one cancel that woke a MUTATE caller was an anyio scope's (anyio then keeps
    it pending), not a native ``task.cancel()`` (asyncio delivers that once: it must be raised).

    An anyio scope cancels a waiting task once (its retries find the task shielded or its
    future done), and words it as its own; a second request, or a cancel that found the future
    done, or one worded otherwise, is native. If in doubt, native: the cancel is raised even
    if the call failed, and no cancel is lost.
    """
    if task is None or task.cancelling() - asked != 1 or not waiter.cancelled():
        return False
    if anyio.current_effective_deadline() != -math.inf:  # no anyio scope of the task cancelled
        return False
    reason: object = None
    try:
        waiter.result()
    except asyncio.CancelledError as error:
        reason = error.args[0] if error.args else None
    return isinstance(reason, str) and reason.startswith(_ANYIO_REASONS)


async def after_completion(
    job: Job, cancelled: BaseException | None, scopes_check: Callable[[], Awaitable[None]]
) -> Any:
    """A MUTATE call has returned: give the caller what it did, so that a cancelled caller
    knows whether it happened.

    - A native asyncio cancel (``cancelled``, caught while waiting) is raised, even if the call
      failed: asyncio delivers it only once, and a cancel re-armed for the next await would
      outlive an ``asyncio.timeout`` block that this return lets end (3.11, 3.12).
    - Else the call's value or error, as anyio's and trio's ``to_thread`` give it: their own
      cancels stay pending in their scope and land at the caller's next checkpoint. So a cancel
      never drops bytes read or the count of bytes written.
    - But a resource (a job with ``release``: an fd, a lock) is released if a scope's cancel is
      pending, and the cancel raised: a cancelled caller is not handed what it must free.
      ``scopes_check`` is the loop's check of those scopes (see
      :func:`aos._async._anyio_scopes.scopes_check`).
    """
    if cancelled is None and job.release is None:
        return outcome(job)
    failed = job.error is not None  # (outcome takes the error out of the job)
    try:
        if cancelled is not None:
            raise cancelled
        if failed:
            return outcome(job)
        await scopes_check()
    except BaseException:
        release, job.release = job.release, None
        if release is not None and not failed:
            release(job.value)
        job.value = None
        raise
    finally:
        del cancelled
    return outcome(job)


def current() -> Channel:
    """The channel of the loop running in this thread, opened on first use."""
    channel: Channel | None = getattr(_local, "channel", None)
    if channel is not None and channel.is_current():
        return channel
    return _open_current()


def _open_current() -> Channel:
    anyio.get_current_task()  # outside an event loop: anyio's own error
    channel: Channel
    # (no lowlevel while another thread imports trio: no trio run has begun yet)
    trio_lowlevel = getattr(sys.modules.get("trio"), "lowlevel", None)
    if trio_lowlevel is not None and trio_lowlevel.in_trio_task():
        from aos._async._trio_channel import TrioChannel

        token = trio_lowlevel.current_trio_token()
        found = _channels.get(id(token))
        if isinstance(found, TrioChannel) and found.key is token and found.open:
            channel = found
        else:
            channel = TrioChannel(token)
            _channels[id(token)] = channel
    else:
        loop = asyncio.get_running_loop()
        found = _channels.get(id(loop))
        if isinstance(found, AsyncioChannel) and found.key is loop and found.open:
            channel = found
        else:
            _close_channels_of_closed_loops()
            channel = AsyncioChannel(loop)
            _channels[id(loop)] = channel
    _local.channel = channel
    return channel


def _close_channels_of_closed_loops() -> None:
    """Close the channels of asyncio loops that were closed without shutting their tasks down
    (``run_until_complete`` then ``close``): their guards never ran, and each kept its eventfd,
    its ring and its loop."""
    with _channels_lock:  # (loops in other threads open and close channels meanwhile)
        closed = [
            (key, channel)
            for key, channel in _channels_now()
            if isinstance(channel, AsyncioChannel) and channel.loop_is_closed()
        ]
        for key, channel in closed:  # first: a close that fails is not met by every later loop
            if _channels.get(key) is channel:
                del _channels[key]
    for _, channel in closed:
        channel.close_after_closed_loop()


def _channels_now() -> list[tuple[int, Channel]]:
    """The table's entries. A collection in this very thread (which the lock lets in) may run
    a finalizer that closes a channel, and so removes it, while they are copied: copy again."""
    while True:
        try:
            return list(_channels.items())
        except RuntimeError:  # dictionary changed size during iteration
            continue


def _after_fork_in_child() -> None:
    global _channels_lock
    _channels_lock = threading.RLock()  # (a thread that held it at the fork is gone)
    for _, channel in _channels_now():
        channel.forget_after_fork()
    _channels.clear()
    _forget_closing_rings_after_fork()


os.register_at_fork(after_in_child=_after_fork_in_child)
