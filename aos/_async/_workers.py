"""Worker threads: a pool that grows on demand up to a limit and lets idle threads exit.

A pool knows nothing about event loops: it runs :class:`Job` objects, and each job reports its
own completion (see :mod:`aos._async._completions`). Two pools exist: the bounded filesystem
pool, the unbounded wait lane, so a ``WAIT`` call never holds a thread that filesystem calls
need, and the spawners, whose threads never exit (a child's parent is the thread that spawned it:
see :data:`SPAWNERS`). Threads are daemon threads; after ``fork()`` the child starts with empty
pools.
"""

from __future__ import annotations

import os
import threading
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any, Final, Protocol, cast

IDLE_TIMEOUT: float = 10.0
"""Seconds an idle worker waits for a job before its thread exits."""

ENV_MAX_WORKERS: Final = "AOS_MAX_WORKERS"

COMPACT_AFTER: Final = 64
"""Jobs taken back that may stay in a pool's queue, skipped by workers, before they are cleared
out; beyond it, once they are half the queue. Taking one back is then constant time on average
(it was a search of the queue: cancelling 20,000 queued calls held the pool's lock for 1 s)."""


def default_max_workers() -> int:
    """The filesystem pool's size: ``$AOS_MAX_WORKERS``, else one per CPU, from 2 to 8.

    On cached calls more threads only take turns at the GIL: on 2 cores, 64 concurrent
    ``aos.stat`` cost 7.6x sync with 2 workers, 11x with 4 and 16x with 8 (asyncio; trio 10.7x,
    12.8x, 18.4x). Raise it for slow (network) filesystems, where threads mostly wait.
    """
    chosen = chosen_max_workers()
    return max(2, min(8, os.cpu_count() or 1)) if chosen is None else chosen


def chosen_max_workers() -> int | None:
    """The pool's size as ``$AOS_MAX_WORKERS`` chooses it, or ``None`` where it is not set."""
    raw = os.environ.get(ENV_MAX_WORKERS, "").strip()
    if not raw:
        return None
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value < 1:
        raise ValueError(f"{ENV_MAX_WORKERS} must be a positive integer, got {raw!r}")
    return value


class Job:
    """One call to run on a worker; ``finish`` hands the finished job back to its loop."""

    __slots__ = (
        "abandoned",
        "args",
        "delivered",
        "error",
        "finish",
        "fn",
        "kwargs",
        "notify",
        "queue",
        "release",
        "request",
        "taken",
        "value",
        "waiter",
    )

    def __init__(
        self,
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: Mapping[str, Any],
        finish: Callable[[Job], None],
    ) -> None:
        self.fn: Callable[..., Any] | None = fn
        self.args = args
        self.kwargs = kwargs
        self.finish = finish
        self.value: Any = None
        self.error: BaseException | None = None
        self.waiter: Any = None  # loop side: an asyncio future or a trio task
        self.delivered = False  # loop side: the loop has taken the finished job back
        self.abandoned = False  # loop side: its caller has given up waiting (a cancel)
        self.request: Any = None  # loop side: the io_uring operation it runs as, if any
        self.notify: Callable[[Job], None] | None = None  # loop side: called instead of a waiter
        self.release: Callable[[Any], object] | None = None  # frees a value nobody will take
        self.queue: Pool | None = None  # the pool whose queue it waits in (under its lock)
        self.taken = False  # a worker has it (or it joined a call that will finish it)

    def run(self) -> None:
        """Run the call (on a worker), keep its outcome, and report completion.

        Once reported, the worker's frames hold nothing of the call's (no local names the
        function or its value): the caller that resumes may drop the last reference to an
        object whose method ran, and :func:`os.scandir`'s rule holds, that an iterator dropped
        unclosed warns at once, not when the worker gets round to its next job.
        """
        try:
            self.value = cast("Callable[..., Any]", self.fn)(*self.args, **self.kwargs)
        except HandOver as move:  # the call may wait for good: it moves to the wait lane
            self.fn = move.fn
            del move  # (its traceback holds this frame)
            try:
                WAIT_LANE.submit(self)
            except BaseException as exc:  # no thread could start: the caller gets the error
                self.error = _beyond(exc)
                self._report()
            return
        except BaseException as exc:  # handed over unchanged, raised in the caller
            self.error = _beyond(exc)
        self._report()

    def complete(self, value: Any, error: BaseException | None) -> None:
        """Keep the call's outcome and report completion (on the thread that made the call)."""
        self.value = value
        self.error = error
        self._report()

    def _report(self) -> None:
        """Report completion, with the call's function and arguments dropped."""
        self.fn = None
        self.args = ()
        self.kwargs = {}
        self.finish(self)


class Lane(Protocol):
    """Where a job is queued to run: a :class:`Pool`, or a lane with rules of its own."""

    def submit(self, job: Job, /) -> None: ...


class HandOver(Exception):
    """Raised by a job's function on a worker of the filesystem pool: the call it was about to
    make, ``fn``, may wait for good (open a FIFO). The same job then runs ``fn`` in the wait
    lane, where it holds no worker that filesystem calls need; its caller notices nothing."""

    def __init__(self, fn: Callable[..., Any]) -> None:
        super().__init__()
        self.fn = fn


def hands_over_if(waits: Callable[..., bool], fn: Callable[..., Any]) -> Callable[..., Any]:
    """``fn``, made on a worker only if ``waits`` (given the same arguments, on the worker too)
    says it will not wait for good; otherwise handed over to the wait lane (:class:`HandOver`)."""

    def unless_it_waits(*args: Any, **kwargs: Any) -> Any:
        if waits(*args, **kwargs):
            raise HandOver(fn)
        return fn(*args, **kwargs)

    return unless_it_waits


def _beyond(error: BaseException) -> BaseException:
    """``error``, its traceback without :meth:`Job.run`'s frame: that frame holds the job, which
    holds the error until it is delivered, and the cycle would wait for the garbage collector
    (a Python function's frames below still lead to it, through their ``f_back``, until then)."""
    tb = error.__traceback__
    return error.with_traceback(tb.tb_next if tb is not None else None)


def offer_cpu() -> None:
    """Let a thread that waits for this worker's CPU run now (call between the steps of a long job).

    On 2 cores a woken event-loop thread is often queued on the CPU of the worker that woke it
    (by releasing the GIL), while the other CPU idles; the scheduler then lets the worker finish
    its time slice first, and the loop waited 3-4 ms. Measured on a 100k-entry ``aos.walk``
    with ``perf sched`` events; yielding after each directory cut the longest loop stall to
    1.2-1.7 ms, for about 0.5 us per directory when nothing waits.
    """
    os.sched_yield()


def drop(job: Job) -> None:
    """A job's hand-back for a job nobody waits for: the worker finishes it, the result goes."""


class _Worker:
    """A worker thread's wake-up switch: a lock held while it sleeps, released to wake it."""

    __slots__ = ("wake",)

    def __init__(self) -> None:
        self.wake = threading.Lock()
        self.wake.acquire()


class Pool:
    """Threads that take jobs from one queue; at most ``limit`` of them (``None``: no limit).

    Idle threads exit after :data:`IDLE_TIMEOUT` seconds, unless the pool ``keeps`` them.
    """

    def __init__(
        self, name: str, limit: int | None, *, keeps: bool = False, chosen: bool = False
    ) -> None:
        self.name = name
        self.limit = limit
        self.limit_chosen = chosen  # the user chose the limit (set_limit, an env variable)
        self.keeps = keeps
        self._lock = threading.Lock()  # guards the fields below; held for a few bytecodes only
        self._jobs: deque[Job] = deque()
        self._withdrawn = 0  # jobs taken back but still in _jobs (see withdraw)
        self._idle: list[_Worker] = []  # LIFO: the warmest thread is woken first, cold ones expire
        self._threads = 0
        self._waking = 0  # woken or started, not yet back at the queue
        self._starting: set[threading.Thread] = set()  # started, not yet back at the queue

    def submit(self, job: Job) -> None:
        """Queue ``job``; wake an idle worker or start one if no worker is on its way."""
        worker = None
        thread = None
        with self._lock:
            job.queue = self
            self._jobs.append(job)
            if self._waiting() > self._waking:
                if self._idle:
                    worker = self._idle.pop()
                    self._waking += 1
                elif self.limit is None or self._threads < self.limit:
                    thread = threading.Thread(
                        target=self._work, name=f"aos-{self.name}", daemon=True
                    )
                    self._threads += 1
                    self._waking += 1
                    self._starting.add(thread)  # (last: an interrupt before it counts nothing)
        if worker is not None:
            worker.wake.release()
        elif thread is not None:
            self._start_thread(thread, job)

    def _waiting(self) -> int:
        """How many queued jobs wait for a worker (under the lock): the queue also holds jobs
        taken back (see :meth:`withdraw`), which workers skip."""
        return len(self._jobs) - self._withdrawn

    def _start_thread(self, thread: threading.Thread, job: Job) -> None:
        """Start ``thread`` for ``job``; if it cannot start, take ``job`` back and raise, unless
        a worker took it meanwhile (then it runs, and its caller gets its result).

        An interrupt (Ctrl-C) raised while it starts is raised on, never taken for a thread
        that could not start: the thread may have begun, or may not; until it is back at the
        queue it is not counted, and it counts itself in if it comes. ``job`` is taken back
        if no worker has it (``job.taken`` says which); the caller sees to the rest."""
        try:
            thread.start()
        except BaseException as exc:
            with self._lock:
                if thread in self._starting:
                    self._starting.discard(thread)
                    self._threads -= 1
                    self._waking -= 1
                taken_back = self._take_back(job)
            if taken_back or not isinstance(exc, Exception):
                raise

    def _work(self) -> None:
        """A worker thread's life: run queued jobs, sleep when there are none, exit when idle."""
        me = _Worker()
        lock = self._lock
        arrived = True  # counted in _waking until it reaches the queue
        begun: threading.Thread | None = threading.current_thread()  # until first back
        while True:
            with lock:
                if arrived:
                    arrived = False
                    if begun is None:
                        self._waking -= 1
                    elif begun in self._starting:
                        self._starting.discard(begun)
                        self._waking -= 1
                    else:  # an interrupted start() wrote it off: it counts itself in
                        self._threads += 1
                    begun = None
                if self.limit is not None and self._threads > self.limit:
                    self._threads -= 1  # the pool was shrunk: leave, even amid a steady load
                    if self._idle and self._waiting() > self._waking:
                        self._idle.pop().wake.release()  # (its jobs are another's now)
                        self._waking += 1
                    return
                job = self._next_job()
                if job is None:
                    self._idle.append(me)
            if job is not None:
                job.run()
                del job
                continue
            if me.wake.acquire(timeout=-1 if self.keeps else IDLE_TIMEOUT):
                arrived = True
                continue
            with lock:
                try:
                    self._idle.remove(me)
                except ValueError:  # a submitter picked us just as we timed out: consume its wake
                    pass
                else:
                    self._threads -= 1
                    return
            me.wake.acquire()
            arrived = True

    def _next_job(self) -> Job | None:
        """The next job to run, off the queue (under the lock); ``None`` if none waits."""
        jobs = self._jobs
        while jobs:
            job = jobs.popleft()
            if job.queue is self:
                job.queue = None
                job.taken = True
                return job
            self._withdrawn -= 1  # (taken back: skipped)
        return None

    def withdraw(self, job: Job) -> bool:
        """Take ``job`` back out of the queue; ``False`` if a worker has taken it already."""
        with self._lock:
            return self._take_back(job)

    def _take_back(self, job: Job) -> bool:
        """:meth:`withdraw` under the lock, in constant time: the job stays in the queue, marked,
        until a worker skips it, or until taken-back jobs fill half the queue (then they go)."""
        if job.queue is not self:  # taken by a worker (perhaps handed over to another pool)
            return False
        job.queue = None
        self._withdrawn += 1
        jobs = self._jobs
        if self._withdrawn > COMPACT_AFTER and 2 * self._withdrawn > len(jobs):
            waiting = [queued for queued in jobs if queued.queue is self]
            jobs.clear()
            jobs.extend(waiting)
            self._withdrawn = 0
        return True

    def set_limit(self, limit: int) -> None:
        """Change the most threads (the user's choice); idle threads beyond it are woken so they
        exit."""
        with self._lock:
            self.limit = limit
            self.limit_chosen = True
            surplus = self._idle[: max(0, self._threads - limit)]
            del self._idle[: len(surplus)]
            self._waking += len(surplus)
        for worker in surplus:
            worker.wake.release()

    def threads(self) -> int:
        """How many worker threads this pool has now."""
        return self._threads

    def is_idle(self) -> bool:
        """Whether no job is queued or running (abandoned calls finish in the background)."""
        with self._lock:
            return not self._waiting() and len(self._idle) == self._threads

    def after_fork_in_child(self) -> None:
        """Forget the parent's threads and queue: none of them exist in the child."""
        for job in self._jobs:  # (the child's only thread: no lock needed, nor safe)
            job.queue = None  # not this pool's to take back any more
        self._lock = threading.Lock()
        self._jobs = deque()
        self._withdrawn = 0
        self._idle = []
        self._threads = 0
        self._waking = 0
        self._starting = set()


FILESYSTEM: Final = Pool("worker", default_max_workers(), chosen=chosen_max_workers() is not None)
WAIT_LANE: Final = Pool("wait", None)
SPAWNERS: Final = Pool("spawn", max(2, min(8, 2 * (os.cpu_count() or 1))), keeps=True)
"""Threads that spawn children without the GIL (see :mod:`aos._async._native_spawn`).

They never exit: the kernel counts the spawning *thread* as a child's parent, so a child that
asked for ``PR_SET_PDEATHSIG`` (``bwrap --die-with-parent``, for one) would be killed when an
idle thread left. Two per core, because a spawn mostly waits for its child's ``exec``: at 16
children in flight on 2 cores, 1 spawner cost 1.13x a sync loop, 2 cost 1.05x, 4 cost 0.92-1.03x
and 6 to 16 no better than 4."""


def _usable_cpus() -> int:
    """How many CPUs this process may run on (its affinity, as a container's cpuset sets it)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


_USABLE_CPUS: Final = _usable_cpus()


def ring_workers() -> int:
    """How many kernel threads (io_uring's io-wq) may run the ring's operations at once.

    As many as the filesystem pool's threads where the user chose that number
    (``AOS_MAX_WORKERS``, :func:`aos.set_max_workers`: more for a network filesystem, where
    they mostly wait); by default, as many but one CPU fewer than the process may use (at least
    one), which is left to the loop's thread. The kernel runs these operations in its own
    threads, which a kernel built without preemption (``PREEMPT_NONE``, common on servers) does
    not stop for a woken loop thread until its next tick: on 2 cores, 64 tasks making
    ``symlink`` + ``unlink`` pairs in one ext4 directory with two such threads kept the loop
    thread waiting for a CPU for 4-6 ms at a time (``perf sched``), and a 1 ms heartbeat's
    99th-percentile lateness was 4.4-4.9 ms; with one thread, 0.75-1.6 ms, for as many pairs a
    second (the loop's thread, not the kernel's, is what they wait for; 2026-12-07). The cost:
    on 2 cores one slow operation (a network filesystem's) holds up the others until the user
    chooses more.
    """
    limit = FILESYSTEM.limit or 1
    if FILESYSTEM.limit_chosen:
        return limit
    return max(1, min(limit, _USABLE_CPUS - 1))


def _after_fork_in_child() -> None:
    for pool in (FILESYSTEM, WAIT_LANE, SPAWNERS):
        pool.after_fork_in_child()


os.register_at_fork(after_in_child=_after_fork_in_child)
