"""Whose turn it is to answer inline once a slice has passed: a queue of parked tasks.

Inline answers (see :mod:`aos._async._inline`) share a slice of the loop's time
(:data:`aos._async._loop_slice.INLINE_SLICE`). A task whose call finds the slice passed parks
here until its turn. Its turn comes after the loop has run, in order of when each waiting task
was last served: began a slice, or answered in one it shared (a task with none on record goes
early, see :data:`NEW_TASK_HEAD_START`, so a lone request is not put behind bulk callers). Only
the tasks whose turn it is are woken: polling every waiter each loop iteration cost 64
concurrent callers 63 task steps a slice.
Against polling, in one process, interleaved, 7 rounds, 64 concurrent ``aos.stat`` on asyncio
/ uvloop / trio took 10.0-8.7 / 8.3-7.3 / 8.2-9.7 us a call instead of 11.8-12.0 / 11.2-9.0 /
10.9-10.3, and a 1 ms heartbeat's longest lateness fell from 0.62-0.70 / 0.24-0.28 /
0.40-1.94 ms to 0.35-0.47 / 0.15 / 0.26-0.29 ms (the first version of this queue).

The turn passes

- from the task that used its slice up and sees it pass, to the first waiter alone (bulk
  callers each use whole slices: the others would only park again);
- from a task that came after the slice had passed, to a group of waiters
  (:attr:`Turns.share_at_once`), the first to begin a slice and the others to share it while it
  lasts (they park again once it has passed);
- if the slice's holder stops making inline calls before it passes (it awaits something else,
  or ends), nobody sees it pass: at the end of the next loop iteration, and of each while tasks
  wait (:meth:`Turns.pass_if_idle`), to a group as well.

So tasks that make one call at a time are answered several a loop iteration, not one. Of the
waiters woken together, whichever resumes first begins the slice (:meth:`Turns.begins`: trio
runs a batch of tasks in either order). A woken waiter that is cancelled before it resumes
hands its turn on: no wake-up is lost.

A group starts at :data:`SHARE_AT_ONCE` and is then sized by how the last one fared (see
:meth:`Turns._size_group`). A shared slice counts the time of its answers: its clock stands
still from the end of one answer to the next sharer's resume (see
:func:`aos._async._loop_slice.slice_point`), so other tasks' steps between them (new tasks
starting, a handler's own work) are not the slice's, for up to
:data:`~aos._async._loop_slice.SHARED_SLICE_SPAN` slices since it began. Counted in time since
the slice began, with groups of 8, on trio a task making calls back to back while 8 new
one-call tasks started every loop turn made 245-353 calls a second, and the new tasks waited
82-122 ms (median), the queue growing to thousands; now 2,600-3,900 and 2.5-3.4 ms (on asyncio
and uvloop the new tasks' longest wait fell from 36-55 ms to 2.6-3.9 ms). That stream is close
to what trio can start: an hour later, on a slower stretch of the same VM, the new tasks waited
250-287 ms before and 8-133 ms now (asyncio: 24-68 ms before, 0.7-0.8 ms now). The cost: 64 tasks
making one call a loop turn each (three runs, 1 s, asyncio / uvloop / trio) made 80-81k /
88-99k / 64-74k calls a second instead of 81-90k / 97-109k / 78-81k, and a 1 ms heartbeat's
99th-percentile lateness rose from 0.42-0.47 / 0.13 / 0.31-0.32 ms to 0.74-0.77 / 0.13-0.19 /
0.53-0.57 ms: more of them are answered in a loop turn, fewer without waiting for a turn.
Two more costs a review measured (1 s runs, instrumented): 8 tasks making calls back to back
beside 64 making one a loop turn made 13-28% fewer calls in all (bulk tasks woken in a group
use its slice up, and up to 44% of the others woken find it passed); and 64 tasks that work
0.1 ms *before* each call make as many calls, but as groups grow to about 20, that many run
their work in the next loop turn: a 1 ms heartbeat's 99th percentile went from 3.0 to 5.5 ms
(asyncio) and from 2.0 to 3.5-4.0 ms (trio). Capping groups at 16 halved neither and brought
the trio stream's waits back to 30-50 ms.
"""

from __future__ import annotations

import heapq
from itertools import count
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from aos._async._completions import Channel

SHARE_AT_ONCE: Final = 8
"""Waiters woken at once, at first (see above), but by a task that used its slice up."""

SHARE_LIMIT: Final = 256
"""The most waiters woken at once (the largest groups seen held 20-33: about what a slice's
answers take)."""

NEW_TASK_HEAD_START: Final = 0.01
"""Seconds by which a task with no slice on record goes before the tasks that began one: it
waits behind those served longer ago only, so a lone request goes before bulk callers, and a
stream of new tasks never puts a task that was served before off for longer than this."""

ANSWERED_TO_TRY: Final = 0.5
"""While fewer than this share of recent inline attempts were answered, a call tries inline
only once in :data:`RECENT` (to notice when answers come back) and otherwise goes straight to
a worker. On a filesystem the kernel cannot answer from memory (procfs; overlayfs, NFS and FUSE
alike) every attempt is refused after its syscalls, and waiting for a turn before each only
delays its worker: 64 tasks making ``stat`` calls of a procfs file back to back made 30% fewer
calls than with the route off."""

RECENT: Final = 16
"""Inline attempts that the answered share mostly reflects (each weighs 1/16 in it)."""

_FEWEST_SHARING: Final = 2  # the smallest group: one to begin the slice, one to share it
_ALL_ANSWERED: Final = 0.999  # an answered share above this counts as all
_SERVED_KEPT: Final = 256  # tasks whose last slice a loop remembers, at least


class Group:
    """Waiters woken together to share a slice, and how those woken to share it fared."""

    __slots__ = ("answered", "late", "size", "used")

    def __init__(self) -> None:
        self.size = 1  # waiters woken
        self.answered = 0  # woken to share, resumed in time to answer in the slice
        self.late = 0  # ...and resumed to find it passed
        self.used = 0.0  # share of the slice used as the last of them resumed in time


class Waiter:
    """One task parked for a turn; :attr:`handle` is the loop's own (a future, a trio task)."""

    __slots__ = ("gone", "group", "handle", "task_id", "woken")

    def __init__(self, task_id: int, handle: object) -> None:
        self.task_id = task_id
        self.handle = handle
        self.woken = False  # its wake-up is on its way (it may still be cancelled)
        self.gone = False  # it left the queue before its turn (cancelled)
        self.group: Group | None = None  # woken with these (one given the turn, the rest to share)


class Turns:
    """The waiting tasks of one loop, and the one whose turn it is (loop thread only)."""

    def __init__(self) -> None:
        self._queue: list[tuple[float, int, Waiter]] = []  # heap: (served, order, waiter)
        self._order = count()
        self._waiting = 0  # entries of the queue whose task still waits
        self.granted: Waiter | None = None  # woken to begin the next slice, not resumed yet
        self._served: dict[int, float] = {}  # task id -> when the slice it last answered in began
        self._served_limit = _SERVED_KEPT  # pruned of tasks that do not wait when it grows to this
        self.answered = 1.0  # share of recent inline attempts that were answered
        self._skipped = 0  # attempts skipped (see ANSWERED_TO_TRY)
        self.share_at_once = SHARE_AT_ONCE  # waiters woken together (see _size_group)
        self._last_group: Group | None = None

    def busy(self) -> bool:
        """Whether a task waits for a turn, or has been given one: a call must queue."""
        return self.granted is not None or self._waiting > 0

    def skip_attempt(self) -> bool:
        """Recent attempts were mostly refused: whether this call skips its attempt (all but
        one in :data:`RECENT` do)."""
        self._skipped += 1
        return self._skipped % RECENT != 0

    def note_attempt(self, answered: bool) -> None:
        """An inline attempt was answered, or refused."""
        share = self.answered + (answered - self.answered) / RECENT
        self.answered = 1.0 if share > _ALL_ANSWERED else share

    def join(self, waiter: Waiter, now: float) -> None:
        """Queue ``waiter`` by when its task was last served (see
        :data:`NEW_TASK_HEAD_START` for a task with none on record)."""
        served = self._served.get(waiter.task_id, now - NEW_TASK_HEAD_START)
        heapq.heappush(self._queue, (served, next(self._order), waiter))
        self._waiting += 1

    def _pop(self) -> Waiter | None:
        while self._queue:
            waiter = heapq.heappop(self._queue)[2]
            if not waiter.gone:
                self._waiting -= 1
                return waiter
        return None

    def grant_next(self, channel: Channel, me: Waiter | None = None, *, share: bool) -> bool:
        """Give the turn to the task served longest ago, waking it, and with ``share`` a group
        of up to :attr:`share_at_once` with it to share its slice; ``True`` if ``me`` (the
        caller, running: it lets the loop run itself, never woken) is among them."""
        grantee = self.granted = self._pop()
        if grantee is None:
            return False
        woken = [grantee]
        if share:
            group = grantee.group = Group()  # (it counts as a sharer if another begins)
            size = self._size_group()
            while len(woken) < size and (waiter := self._pop()) is not None:
                waiter.group = group
                woken.append(waiter)
            group.size = len(woken)
            self._last_group = group
        for waiter in woken:
            waiter.woken = True
            if waiter is not me:
                channel.wake_for_turn(waiter)
        return me is not None and me.woken

    def _size_group(self) -> int:
        """The waiters to wake together: as many as answered in the last group's slice if some
        of it found the slice passed; if those of a full group that resumed so far all answered,
        as many as would use the slice up at the rate they used it (at most twice as many, and
        :data:`SHARE_LIMIT`). (Those of the last group that resume after this count for it: on
        trio the next group is often chosen before the last one's last member resumes.) Growing
        by a quarter instead, 64 tasks making one call a loop turn woke twice as many that found
        their slice passed."""
        size, last = self.share_at_once, self._last_group
        if last is not None:
            if last.late:
                size = max(_FEWEST_SHARING, 1 + last.answered)
            elif last.size == size and last.answered:
                answered, used = last.answered, last.used
                fill = 2 * size if used * 2 * size <= answered else 1 + int(answered / used)
                size = min(SHARE_LIMIT, max(size, fill))
            self.share_at_once = size
        return size

    def pass_if_idle(self, channel: Channel) -> None:
        """Called at the end of each loop iteration while tasks wait: if the last slice began
        since the loop last ran and nobody handed the turn on, wake a group of the first
        waiters, the first of them to begin a slice (or whichever of them resumes first: see
        :meth:`begins`)."""
        if not self._waiting:
            return
        if self.granted is None:
            self.grant_next(channel, share=True)
        if self._waiting:
            channel.pass_turn_later()

    def held_the_slice(self, task_id: int, began: float) -> bool:
        """Whether the task ``task_id`` began, or answered in, the slice that began at ``began``
        (so it used it up: it hands the turn to one waiter)."""
        return self._served.get(task_id) == began

    def begins(self, waiter: Waiter) -> bool:
        """Whether ``waiter``, resumed, begins a slice: it was given the turn, or woken with the
        one given it, which has not resumed yet (trio runs each batch of tasks in either order:
        those resumed before it found the last slice passed, and parked again)."""
        granted, group = self.granted, waiter.group
        return granted is not None and (
            granted is waiter or (group is not None and granted.group is group)
        )

    def leave(self, waiter: Waiter, channel: Channel) -> None:
        """``waiter`` gives up (cancelled): out of the queue, its turn handed on if it had it."""
        if self.granted is waiter:
            self.grant_next(channel, share=False)
        elif not waiter.woken and not waiter.gone:
            waiter.gone = True
            self._waiting -= 1

    def begin(self, waiter: Waiter, now: float) -> None:
        """``waiter``'s task begins a slice at ``now``."""
        self.granted = None
        self._served_at(waiter, now)

    def shared(self, waiter: Waiter, began: float, used: float) -> None:
        """``waiter``, woken to share the slice that began at ``began``, resumed once ``used``
        of it was: at most all, in time to answer in it (its task is served then), else it
        found it passed."""
        group = waiter.group
        in_time = used <= 1.0
        if in_time:
            self._served_at(waiter, began)
        if group is not None:
            if in_time:
                group.answered += 1
                group.used = used
            else:
                group.late += 1

    def _served_at(self, waiter: Waiter, began: float) -> None:
        served = self._served
        if len(served) >= self._served_limit:  # forget tasks that do not wait now
            waiting = {w.task_id for _, _, w in self._queue if not w.gone}
            self._served = served = {task: s for task, s in served.items() if task in waiting}
            self._served_limit = max(_SERVED_KEPT, 2 * len(served))  # (so rarely: see above)
        served[waiter.task_id] = began
