"""Async :func:`os.walk` and :func:`os.fwalk` with bounded, order-preserving read-ahead.

The event-loop side runs exactly the algorithm of :mod:`aos.blocking._walk` (an explicit
stack; top-down pruning reads ``dirnames`` only after the caller resumes). Only the reading of
a directory is replaced by worker jobs, each reading subtrees depth-first (the order the walk
will visit them) within a budget of entries and directories, rooted at the directory needed
now, the unread rest of earlier jobs, and the nearest unread directories on the stack. ``walk``
reads on demand while directories come from the page cache (one job, with the roots the walk
visits next, growing to ``_WARM_SCALE`` times the budget) and keeps ``_JOBS_IO`` jobs reading
ahead once one waited for a disk; ``fwalk`` starts up to ``_JOBS`` on a miss and waits for them.
Their listings wait in a cache keyed by path, which is capped, so memory stays bounded;
listings of subtrees the caller prunes are dropped (and their fds closed). The yielded sequence
is that of :func:`os.walk` on an unchanging tree; a directory changed after it was read ahead
but before the walk reaches it is seen as it was read.

``onerror`` is called in the event-loop thread, at the point of the sequence where ``os.walk``
calls it, so it must not block; what it raises ends the walk.
"""

from __future__ import annotations

import errno
import functools
import os
import resource
import sys
import time
import weakref
from collections import deque
from collections.abc import Callable, Container, Coroutine
from types import TracebackType
from typing import Any, AnyStr, Final, Generic, TypeGuard, TypeVar, cast, overload

import anyio

from aos._async import _completions, _inline
from aos._async._loop_slice import LOOP_SLICE, let_loop_run
from aos._async._offload import MUTATE, QUERY, call
from aos._async._workers import Job, drop, offer_cpu
from aos.blocking._walk import OnError, _Close, _fwalk_list, _list_for_walk, _push_subdirs, _Visit

__all__ = ["WalkIterator", "fwalk", "walk"]

T = TypeVar("T")
R = TypeVar("R")

# Read-ahead jobs in flight at once. Warm, they compete for the GIL; cold, they overlap I/O.
# Measured on 2 cores, 100k entries, 8 workers (x os.walk, warm / cold): 1 job 1.21 / 0.99-1.20,
# 2 jobs 1.44 / 0.89-0.91, 4 jobs 2.09 / 0.83-0.91. fwalk uses _JOBS. walk reads on demand while
# directories come from the page cache: a job running beside the caller only takes turns with
# it for the GIL, and each of its syscalls hands the GIL to the loop for up to a loop iteration
# (balanced 100k tree, fifth session: one job pipelined 2.1-2.2x os.walk; on demand, 256-dir
# jobs of one root 1.8-2.0x, jobs of up to 64 roots growing to 1024 dirs 1.5-1.6x, which is
# about the worker's time alone, 1.0x, plus the loop's, 0.5x). It keeps _JOBS_IO reading ahead
# once a job waited for a disk: it read blocks from one, or took longer than _IO_BOUND per
# directory over at least _IO_BOUND_DIRS directories (a network filesystem counts no block
# reads). Time alone misleads: warm jobs that waited for the GIL took up to 2.5 ms per directory
# (p90 0.1 ms), and the extra jobs they set off made the loop's longest stalls longer.
_JOBS: Final = 2
_JOBS_IO: Final = 3
_IO_BOUND: Final = 0.001
_IO_BOUND_DIRS: Final = 4
_JOB_ENTRIES: Final = 4096  # a job stops after about this many names...
_JOB_DIRS: Final = 256  # ...or this many directories (walk)
_JOB_ROOTS: Final = 64  # walk, warm: roots (the needed one and those after it) of one job
_WARM_SCALE: Final = 4  # walk, warm: jobs grow to this many times the budget
_DISK_CHECK: Final = 16  # walk, warm: directories between looks at the disk reads of a job
_FJOB_DIRS: Final = 64  # ...or this many directories (fwalk: each holds an fd)
_CACHE_ENTRIES: Final = 65536  # no read-ahead beyond the needed directory past this many names
_CACHE_FDS: Final = 512  # fwalk: no read-ahead past this many open fds in the cache
_SCAN: Final = 64  # how deep into the stack read-ahead looks for unread directories
_RECHECK: Final = 16  # walk: steps served from the cache between looks for read-ahead work


class WalkIterator(Generic[T]):
    """What :func:`aos.walk` and :func:`aos.fwalk` return: an async iterator with ``aclose`` that
    can also be used as ``async with`` (closing it on exit). Once an exception (a cancellation,
    an error from ``onerror``) has come out of it, it is finished, like an async generator.
    ``aclose`` (and so leaving ``async with``) while another task awaits a step raises
    :exc:`RuntimeError`, as ``contextlib.aclosing`` of an async generator does.
    A step served from read-ahead is a checkpoint only once 0.25 ms have passed since the walk
    last let the loop run, so a cancellation lands at the next read or within that time.
    A walk may go on under another event loop once the first has ended (jobs left with that
    loop are forgotten, what they read is read again); it is not for loops running in two
    threads at once."""

    _finished = False
    _running = False  # a step is under way (in a task that awaits it)
    _yielded_at = 0.0  # when the walk last let the event loop run

    def __aiter__(self) -> WalkIterator[T]:
        return self

    async def __anext__(self) -> T:
        if self._running:  # another task's step: refused, as an async generator refuses it
            raise RuntimeError("anext(): asynchronous generator is already running")
        if self._finished:
            raise StopAsyncIteration
        self._running = True
        try:
            if time.perf_counter() - self._yielded_at > LOOP_SLICE:
                await let_loop_run()  # serving read-ahead
                self._yielded_at = time.perf_counter()
            got = self._serve()
            return got if got is not None else await self._step()
        except BaseException:
            self._finish()
            raise
        finally:
            self._running = False

    def _serve(self) -> T | None:
        """The step, if it needs no wait (served from read-ahead, without a coroutine of its
        own); ``None`` leaves it to :meth:`_step`."""
        return None

    async def _step(self) -> T:
        raise NotImplementedError

    def _finish(self) -> None:
        self._finished = True

    async def aclose(self) -> None:
        """Stop the walk and release what it holds (fwalk: its directory fds). Refused while
        another task awaits a step, as an async generator refuses it."""
        if self._running:
            raise RuntimeError("aclose(): asynchronous generator is already running")
        self._finish()

    async def __aenter__(self) -> WalkIterator[T]:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()  # refused, like aclose, while another task awaits a step

    def __del__(self) -> None:
        self._finish()


async def _gather(jobs: list[Callable[[], Coroutine[Any, Any, R]]]) -> list[R]:
    """Run ``jobs`` concurrently and return their results in order."""
    if len(jobs) == 1:
        return [await jobs[0]()]
    results: list[Any] = [None] * len(jobs)
    errors: list[Exception | None] = [None] * len(jobs)

    async def run(i: int) -> None:
        try:
            results[i] = await jobs[i]()
        except Exception as exc:  # raised as it is, not in an ExceptionGroup
            errors[i] = exc

    async with anyio.create_task_group() as tg:
        for i in range(len(jobs)):
            tg.start_soon(run, i)
    first = next((error for error in errors if error is not None), None)
    errors.clear()
    if first is not None:
        raise first
    return results


# ---------------------------------------------------------------- walk

# Listings wait in the cache as tuples of strings and bools, which the garbage collector stops
# tracking after one look (a dict or a list would keep a tuple tracked), so that they do not
# make its collections longer while they wait; the stack holds plain paths. (With lists and an
# object per directory, collections that worker threads ran, holding the GIL, were half of the
# event loop's longest stalls during a walk.)
_Names = tuple[Any, ...]
_Links = tuple[bool, ...]  # topdown without followlinks: is each of dirs a symlink
_Listing = tuple[_Names, _Names, _Names, _Links | None]  # dirs, nondirs, walk_into, links
_WalkResult = _Listing | OSError | None  # None: a link not to descend into


_CheckLink = tuple[Any]
"""walk work item ``(path,)``: a subdirectory of a directory yielded top-down, not to descend
into if it is a symlink by the time the walk reaches it (the caller may have replaced it, or
added its name, as ``os.walk`` allows for). A plain path on the stack is the top, or a directory
whose parent was not yielded yet (bottom-up, or read ahead). A tuple of a string, like
everything else the walk keeps, so that the garbage collector stops tracking it."""


def _checks_link(item: object) -> bool:
    """Whether a walk work item is a :data:`_CheckLink`."""
    return type(item) is tuple and len(item) == 1


def _is_triple(item: object) -> TypeGuard[tuple[Any, list[Any], list[Any]]]:
    """Whether a walk work item is a bottom-up triple, waiting to be yielded."""
    return type(item) is tuple and len(item) == 3


def _path(item: Any) -> Any:
    """The path of a walk work item."""
    return item[0] if _checks_link(item) else item


_NO_FDS: Final = frozenset({errno.EMFILE, errno.ENFILE})


def _out_of_fds(error: object) -> bool:
    """Whether ``error`` (an exception, or an fwalk result that holds one) says that the
    process or the system has no fd to spare: reading ahead must wait, not report it."""
    if isinstance(error, _Raised):
        error = error.error
    return isinstance(error, OSError) and error.errno in _NO_FDS


def _fd_room() -> int:
    """fwalk: how many fds read ahead it may hold: ``_CACHE_FDS``, or a quarter of the
    process's fd limit if that is less (the rest is the caller's)."""
    limit = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    return _CACHE_FDS if limit == resource.RLIM_INFINITY else min(_CACHE_FDS, limit // 4)


def _inside(path: Any, tops: set[Any]) -> bool:
    """Whether ``path`` is one of ``tops`` or below one of them (paths the walk joined)."""
    while path not in tops:
        parent = os.path.dirname(path)
        if parent == path or not parent:
            return False
        path = parent
    return True


def _tell_walk(walk: weakref.ref[_Walk[Any]], root: Any, job: Job) -> None:
    """A walk's read-ahead job has finished: hand it to the walk, if the walk still exists."""
    alive = walk()
    if alive is not None:
        alive._arrived(root, job)


def _unread(
    candidates: list[_Visit], cache: Container[object], needed: object, count: int
) -> list[_Visit]:
    """fwalk: up to ``count`` candidates to read ahead beside the ``needed`` directory: in the
    order the walk will visit them, none read already, none twice."""
    wanted = {needed}
    chosen: list[_Visit] = []
    for candidate in candidates:
        if len(chosen) == count:
            break
        if candidate.path not in cache and candidate.path not in wanted:
            wanted.add(candidate.path)
            chosen.append(candidate)
    return chosen


_RUSAGE_THREAD: Final[int | None] = getattr(resource, "RUSAGE_THREAD", None)


def _blocks_read() -> int:
    """Blocks this thread has read from disks so far (0 where the kernel does not say)."""
    return resource.getrusage(_RUSAGE_THREAD).ru_inblock if _RUSAGE_THREAD is not None else 0


def _explore(
    roots: tuple[tuple[Any, bool], ...],
    topdown: bool,
    followlinks: object,
    budget: tuple[int, int] = (_JOB_ENTRIES, _JOB_DIRS),
    needed: bool = True,
    warm: bool = False,
) -> tuple[list[tuple[Any, _WalkResult]], list[Any], bool, Any]:
    """In a worker: read each of ``roots`` (``(path, check_link)``, in visit order) and its
    subdirectories depth-first, until the budget (names, directories: at least one of each) is
    spent, or the process is out of fds for a directory read ahead (that one is left unread:
    only the first directory of a job the walk waits for, ``needed``, reports it as ``os.walk``
    would). A ``warm`` job (one of the long ones the walk runs while directories come from the
    page cache) also stops once it reads from a disk, so that the walk reads ahead in parallel.

    Returns (path, result) in visit order, the unread subdirectories of the root it stopped in
    (first to visit first; roots it did not reach are simply absent), whether the job waited
    for a disk, and the directory it stopped at for want of an fd (``None`` if none).
    """
    started = time.perf_counter()
    blocks = _blocks_read()
    out: list[tuple[Any, _WalkResult]] = []
    todo: list[Any] = []
    names = 0
    short = None
    for root, check_link in roots:
        if names >= budget[0] or len(out) >= budget[1]:
            break
        if check_link and os.path.islink(root):
            out.append((root, None))
            continue
        todo = [root]
        disk = blocks if warm else None
        try:
            names = _explore_tree(todo, out, names, budget, topdown, followlinks, needed, disk)
        except _NoFd as stop:
            short = stop.path
            break
    todo.reverse()
    return out, todo, _waited(started, blocks, len(out)), short


class _NoFd(Exception):
    """Raised by :func:`_explore_tree`: the directory ``path``, read ahead, found no fd (it is
    left on the job's todo list, unread)."""

    def __init__(self, path: Any) -> None:
        super().__init__(path)
        self.path = path


def _explore_tree(
    todo: list[Any], out: list[tuple[Any, _WalkResult]], names: int, budget: tuple[int, int],
    topdown: bool, followlinks: object, needed: bool, disk: int | None,
) -> int:  # fmt: skip
    """Read the directories of ``todo`` depth-first into ``out`` (popping them, pushing their
    subdirectories) while the budget (names, directories) lasts; returns the names read (the
    whole budget if this thread read blocks from a disk beyond ``disk``, looked at every
    ``_DISK_CHECK`` directories). Raises :exc:`_NoFd` if the process ran out of fds for a
    directory read ahead."""
    max_names, max_dirs = budget
    while todo and names < max_names and len(out) < max_dirs:
        if disk is not None and out and not len(out) % _DISK_CHECK and _blocks_read() > disk:
            return max_names
        offer_cpu()
        path = todo.pop()
        errors: list[OSError] = []
        known: list[bool] | None = [] if topdown and not followlinks else None
        listing = _list_for_walk(path, False, errors.append, followlinks, known)
        if listing is None:
            # Its traceback's frames lead (through f_back) to this one, which holds it: a
            # reference cycle, which waits for the garbage collector.
            errors[0] = errors[0].with_traceback(None)
            if _out_of_fds(errors[0]) and (out or not needed):
                todo.append(path)  # read ahead: left for when the walk needs it
                raise _NoFd(path)
            out.append((path, errors[0]))
        else:
            dirs, nondirs, walk_into = listing
            links = None if known is None else tuple(known)  # in the order of dirs
            out.append((path, (tuple(dirs), tuple(nondirs), tuple(walk_into), links)))
            names += 1 + len(dirs) + len(nondirs)
            todo.extend(reversed(walk_into))
    return names


class _Walk(WalkIterator[tuple[AnyStr, list[AnyStr], list[AnyStr]]]):
    def __init__(self, top: Any, topdown: bool, onerror: OnError | None, followlinks: bool) -> None:
        self._args = (top, topdown, onerror, followlinks)
        self._stack: list[AnyStr | _CheckLink | tuple[AnyStr, list[AnyStr], list[AnyStr]]] | None
        self._stack = None
        self._cache: dict[AnyStr, _WalkResult] = {}
        self._cached_names = 0
        self._frontier: deque[AnyStr] = deque()  # unread subdirectories finished jobs left
        self._frontier_live: set[AnyStr] = set()  # those of them the walk has not reached yet
        self._no_fd: set[AnyStr] = set()  # found no fd when read ahead: the walk reads them
        self._countdown = _RECHECK  # steps until read-ahead looks for work again
        self._jobs = 0  # jobs to keep in flight: 0 (on demand), _JOBS_IO once one waited for a disk
        self._scale = 1  # of the budget of the next job
        self._alone = False  # reading a directory again, with no other job holding an fd
        self._short = False  # a job found no fd: from then on, read ahead only when none runs
        self._pending: dict[AnyStr, Job] = {}  # root -> read-ahead job still running
        self._in_flight: set[Job] = set()  # those jobs
        self._stale: dict[Job, set[AnyStr]] = {}  # running job -> subtrees pruned since it began
        self._arrival: anyio.Event | None = None  # set when a job the walk waits for arrives
        self._failure: BaseException | None = None  # what a job raised (not an OSError read)
        self._yielded: tuple[AnyStr, list[AnyStr], _Listing] | None = None
        self._channel: _completions.Channel | None = None  # of the loop its jobs report to

    def _serve(self) -> tuple[AnyStr, list[AnyStr], list[AnyStr]] | None:
        """Go on with the walk as far as it goes without waiting: the next triple, or ``None``
        when the item on top of the stack must wait (for its listing, or for a worker to tell
        whether it is a symlink), which :meth:`_step` then does. Raises StopAsyncIteration at
        the end."""
        stack = self._stack
        if stack is None:  # started on first use, like the os generator
            top, topdown, onerror, followlinks = self._args
            sys.audit("os.walk", top, topdown, onerror, followlinks)
            stack = self._stack = [os.fspath(top)]
        yielded = self._yielded
        if yielded is not None:
            self._yielded = None
            parent, kept, listing = yielded
            if not kept and not listing[0]:  # a leaf, none added (most directories of a tree)
                pass
            elif tuple(kept) != listing[0]:  # the caller edited dirnames
                self._push_children(stack, parent, kept, listing)
            elif not listing[2]:  # no subdirectory to enter
                pass
            elif listing[3] is None:  # followlinks: into every name
                stack.extend(reversed(listing[2]))  # the worker joined the paths already
            else:  # as os.walk: not into a name the caller made a symlink meanwhile
                stack.extend([(into,) for into in reversed(listing[2])])
        cache = self._cache
        live = self._frontier_live
        while stack:
            # The one hot loop of a walk: an item's kind is told once, without calls.
            item: Any = stack.pop()
            check_link = type(item) is tuple
            if check_link:
                if len(item) == 3:  # a bottom-up triple
                    return item  # type: ignore[no-any-return]
                path: AnyStr = item[0]
            else:
                path = item
            if live:
                live.discard(path)
            if path not in cache:
                stack.append(item)  # for _step to read
                return None
            self._countdown -= 1
            if not self._countdown:
                self._countdown = _RECHECK
                self._use_current_loop()
                self._read_ahead()
            if check_link:  # as os.walk: islink, now that the caller had its turn
                is_link = _inline.is_symlink(path)  # on this thread if the kernel can answer
                if is_link is None:
                    stack.append(item)  # for _step to ask a worker
                    return None
                if is_link:
                    self._drop(path)  # read ahead before the caller made it a symlink
                    continue
            result = self._take(path)
            if type(result) is not tuple:
                if isinstance(result, OSError):  # else None: a link not to descend into
                    onerror = self._args[2]
                    if onerror is not None:
                        onerror(result)
                continue
            dirs = list(result[0])
            if self._args[1]:  # topdown
                self._yielded = (path, dirs, result)
                return path, dirs, list(result[1])
            stack.append((path, dirs, list(result[1])))
            stack.extend(reversed(result[2]))
        self._finish()
        raise StopAsyncIteration

    async def _step(self) -> tuple[AnyStr, list[AnyStr], list[AnyStr]]:
        """Wait for what stopped :meth:`_serve`, the item on top of the stack (off the stack
        meanwhile), and serve on."""
        assert self._stack is not None
        stack = self._stack
        while True:
            item: Any = stack.pop()
            path = _path(item)
            if path not in self._cache:
                await self._read(item)
                stack.append(item)
            elif await call(QUERY, None, os.path.islink, path):  # the kernel could not tell
                self._drop(path)  # read ahead before the caller made it a symlink
            else:
                stack.append(path)  # not a symlink: taken as it is
            got = self._serve()
            if got is not None:
                return got

    def _push_children(
        self,
        stack: list[AnyStr | _CheckLink | tuple[AnyStr, list[AnyStr], list[AnyStr]]],
        path: AnyStr,
        dirs: list[AnyStr],
        listing: _Listing,
    ) -> None:
        """Top-down: push the subdirectories left in ``dirs`` after the caller edited them
        (:meth:`_serve` pushes those of an untouched listing itself)."""
        yielded, _, walk_into, links = listing
        descendable = len(walk_into)
        if self._args[3] or links is None:  # followlinks: descend into every name
            stack.extend(os.path.join(path, name) for name in reversed(dirs))
            for name in set(yielded).difference(dirs):  # pruned: drop what was read ahead
                self._drop(os.path.join(path, name))
            return
        known = dict(zip(yielded, links, strict=True))
        kept: set[AnyStr] = set()
        for name in reversed(dirs):
            is_link = known.get(name)
            if is_link is None:  # a name the caller added
                stack.append((os.path.join(path, name),))
            elif not is_link:
                stack.append((os.path.join(path, name),))
                kept.add(name)
        if len(kept) < descendable:  # pruned: drop the read-ahead of the pruned subtrees
            for name, is_link in known.items():
                if not is_link and name not in kept:
                    self._drop(os.path.join(path, name))

    def _drop(self, top: AnyStr) -> None:
        """Forget the read-ahead of a subtree the walk will not enter."""
        self._frontier.clear()
        self._frontier_live.clear()
        self._evict(top)
        for job in self._in_flight:  # what they read of it is dropped when they arrive
            self._stale.setdefault(job, set()).add(top)

    def _take(self, path: AnyStr) -> _WalkResult:
        """Remove and return the cached result for ``path`` (``None`` if there is none)."""
        if self._no_fd:  # read by the walk now, if it found no fd read ahead
            self._no_fd.discard(path)
        result = self._cache.pop(path, None)
        if isinstance(result, tuple):
            self._cached_names -= len(result[0]) + len(result[1])
        return result

    def _evict(self, path: AnyStr) -> None:
        todo = [path]
        while todo:
            result = self._take(todo.pop())
            if isinstance(result, tuple):
                todo.extend(result[2])

    async def _read(self, item: AnyStr | _CheckLink) -> None:
        """Wait until ``item`` is read, starting its job (and read-ahead) if none runs. If the
        process had no fd for it, read it once more when no other job holds one."""
        path = _path(item)
        await self._read_now(item)
        if _out_of_fds(self._cache[path]):
            self._alone = True
            try:
                while self._in_flight:
                    await self._next_arrival()
                self._take(path)
                await self._read_now(item)
            finally:
                self._alone = False
        self._yielded_at = time.perf_counter()

    def _use_current_loop(self) -> None:
        """Before starting or awaiting jobs: if this step runs under another event loop than
        the jobs started so far, forget those (they report to that loop, or nowhere if it
        ended; what they read is read again)."""
        channel = _completions.current()
        if channel is not self._channel:
            self._abandon_jobs()
            self._channel = channel

    async def _read_now(self, item: AnyStr | _CheckLink) -> None:
        self._use_current_loop()
        path = _path(item)
        if path not in self._pending:
            self._start(self._roots(item), needed=True)
        self._read_ahead()
        while path not in self._cache:
            if path not in self._pending:  # its job was dropped, or did not get that far
                self._start(self._roots(item), needed=True)
            await self._next_arrival()

    async def _next_arrival(self) -> None:
        """Wait until a job arrives (raising what a job raised)."""
        if self._failure is not None:
            raise self._failure
        self._arrival = anyio.Event()
        assert self._channel is not None
        with self._channel.awaited():  # an ending loop still delivers it
            await self._arrival.wait()
        if self._failure is not None:
            raise self._failure

    def _read_ahead(self) -> None:
        """Keep ``self._jobs`` jobs in flight (the one the walk waits for included) reading
        what the walk will visit next, within the bounds; once a job found no fd, at most one
        (jobs in parallel would take turns failing for want of one).

        Jobs run while the walk goes on; their listings wait in the cache. Called when a job
        arrives, on a miss, and every ``_RECHECK`` steps.
        """
        if self._alone:
            return
        jobs = min(self._jobs, 1) if self._short else self._jobs
        while len(self._in_flight) < jobs and self._cached_names < _CACHE_ENTRIES:
            root = self._next_root(set())
            if root is None:
                return
            self._start([root])

    def _roots(self, needed: AnyStr | _CheckLink) -> list[AnyStr | _CheckLink]:
        """The roots of a job that reads ``needed`` now: while directories come from the page
        cache (no read-ahead runs), also what the walk visits after it, up to ``_JOB_ROOTS``,
        so that the job fills its budget."""
        roots = [needed]
        if not self._jobs and not self._alone and self._cached_names < _CACHE_ENTRIES:
            chosen = {_path(needed)}
            while len(roots) < _JOB_ROOTS:
                root = self._next_root(chosen)
                if root is None:
                    break
                chosen.add(_path(root))
                roots.append(root)
        return roots

    def _next_root(self, chosen: Container[object]) -> AnyStr | _CheckLink | None:
        """The nearest directory nobody has read, is reading or has ``chosen``, and that did not
        find an fd when read ahead: first what finished jobs left unread (in the order they
        finished), then the top of the stack."""
        assert self._stack is not None
        cache, pending, no_fd, frontier, live = (
            self._cache,
            self._pending,
            self._no_fd,
            self._frontier,
            self._frontier_live,
        )
        while frontier:
            path = frontier.popleft()
            if path in live and path not in cache and path not in pending and path not in chosen:
                live.discard(path)
                if path not in no_fd:
                    return path
        for item in reversed(self._stack[-_SCAN:]):
            if _is_triple(item):
                continue
            path = _path(item)
            if (
                path not in cache
                and path not in pending
                and path not in chosen
                and path not in no_fd
            ):
                return cast("AnyStr | _CheckLink", item)
        return None

    def _start(self, items: list[AnyStr | _CheckLink], needed: bool = False) -> None:
        _, topdown, _, followlinks = self._args
        roots = tuple((_path(item), _checks_link(item)) for item in items)
        paths = tuple(path for path, _ in roots)
        # The job holds the walk weakly: a walk its caller dropped is collected (and finished).
        notify = functools.partial(_tell_walk, weakref.ref(self), paths)
        assert self._channel is not None  # set by the step that asks
        if self._cached_names < _CACHE_ENTRIES and not self._alone:
            budget = (_JOB_ENTRIES * self._scale, _JOB_DIRS * self._scale)
        else:  # the cap, or short of fds: the directory needed now and no more
            budget = (1, 1)
        args = (roots, topdown, followlinks, budget, needed, not self._jobs)
        job = self._channel.start(_explore, args, notify)
        self._in_flight.add(job)
        for path in paths:
            self._pending[path] = job

    def _arrived(self, roots: tuple[AnyStr, ...], job: Job) -> None:
        """On the loop's thread: a job has finished; cache its listings, keep reading ahead."""
        if job not in self._in_flight:  # abandoned while its delivery was under way
            return
        self._in_flight.discard(job)
        for root in roots:
            del self._pending[root]
        pruned = self._stale.pop(job, None)
        if self._finished:
            return
        if job.error is not None:
            self._failure = job.error
        else:
            out, rest, waited, short = job.value
            if waited:
                self._jobs, self._scale = _JOBS_IO, 1
            else:  # longer jobs amortize the round trip the walk waits for
                self._jobs, self._scale = 0, min(self._scale * 2, _WARM_SCALE)
            if short is not None:  # read ahead, it would fail again and again (while the caller
                self._short = True  # holds fds): the walk reads it itself, unless pruned meanwhile
                if not (pruned and _inside(short, pruned)):
                    self._no_fd.add(short)
            if pruned:  # subtrees the caller pruned while the job read them: drop those
                out = [found for found in out if not _inside(found[0], pruned)]
                rest = [path for path in rest if not _inside(path, pruned)]
            cache = self._cache
            for path, result in out:
                if path in cache:  # read twice (a name the caller gave twice): keep the first
                    continue
                if isinstance(result, tuple):
                    self._cached_names += len(result[0]) + len(result[1])
                cache[path] = result
            self._frontier.extend(rest)
            self._frontier_live.update(rest)
        if self._arrival is not None:
            self._arrival.set()
        self._read_ahead()

    def _finish(self) -> None:
        super()._finish()
        self._stack = []
        self._cache = {}
        self._frontier.clear()
        self._frontier_live.clear()
        self._no_fd.clear()
        self._abandon_jobs()
        self._channel = None  # nor keep an ended loop alive

    def _abandon_jobs(self) -> None:
        """Let the running jobs finish for nobody: their listings are dropped."""
        for job in self._in_flight:
            job.notify = drop
        self._pending = {}
        self._in_flight = set()
        self._stale = {}
        self._arrival = None


def walk(
    top: AnyStr | os.PathLike[AnyStr],
    topdown: bool = True,
    onerror: OnError | None = None,
    followlinks: bool = False,
) -> WalkIterator[tuple[AnyStr, list[AnyStr], list[AnyStr]]]:
    """Like :func:`os.walk`, but an async iterator: ``async for dirpath, dirnames, filenames in
    aos.walk(top)``.

    Same sequence, top-down pruning by editing ``dirnames`` in place, link handling and errors,
    on a tree that does not change during the walk. Directories are read by workers, many per
    hop: from the page cache on demand (one job with what the walk visits next), from a disk
    ahead of the walk in parallel (bounded). A directory read before the walk reaches it is
    seen as it was read, where ``os.walk`` lists it on arrival: what changes meanwhile (the
    caller's own ``mkdir``, ``rmtree`` or a directory swapped for a link too) may not be seen.
    When the process runs short of fds, read-ahead waits rather than fail: a directory it found
    no fd for is read when the walk needs it, and from then on a job reads ahead only when no
    other job runs.
    ``onerror`` runs in the event-loop thread, where ``os.walk`` would call it, and must not
    block. Reads are queries: a cancel returns at once and ends the walk.
    """
    return _Walk(top, topdown, onerror, followlinks)


# ---------------------------------------------------------------- fwalk

_FTriple = tuple[Any, list[Any], list[Any], int]
_FListing = tuple[_FTriple, list[os.DirEntry[str]] | None]


class _Raised:
    """fwalk result: what reading a directory raised (not an error for ``onerror``), to raise
    when the walk reaches that directory, where ``os.fwalk`` raises it."""

    __slots__ = ("error",)

    def __init__(self, error: Exception) -> None:
        self.error: BaseException | None = error  # (taken out when raised)


_FResult = _FListing | OSError | _Raised | None  # None: skipped (not a directory, or a link)


def _fexplore(
    roots: tuple[_Visit, ...],
    topdown: bool,
    follow_symlinks: bool,
    needed: bool = True,
    max_dirs: int = _FJOB_DIRS,
) -> tuple[list[tuple[Any, _FResult]], list[_Visit], bool]:
    """In a worker: open and read each of ``roots`` (in visit order) and its subdirectories
    depth-first within the budget (``max_dirs`` fds), or until the process is out of fds for a
    directory read ahead (left unread: only the first root of a job the walk waits for,
    ``needed``, reports it).

    Returns (path, result) in visit order (each listing's fd open, owned by the caller), the
    unread subdirectories, first to visit first, and whether the job waited for a disk.
    Raises what reading the walk's root raises.
    """
    started = time.perf_counter()
    blocks = _blocks_read()
    out: list[tuple[Any, _FResult]] = []
    todo: list[_Visit | _Close | _FTriple] = list(reversed(roots))
    names = 0
    try:
        while todo and names < _JOB_ENTRIES and len(out) < max_dirs:
            offer_cpu()
            work = todo.pop()
            assert isinstance(work, _Visit)
            opened: list[_Visit | _Close | _FTriple] = []
            errors: list[OSError] = []
            failed: OSError | _Raised | None = None
            try:
                listed = _fwalk_list(opened, work, topdown, errors.append, follow_symlinks)
            except Exception as exc:  # raised where the walk reaches this directory
                listed, failed = None, _Raised(exc.with_traceback(None))  # (see _explore_tree)
            except BaseException:
                _close_all(opened)
                raise
            if listed is None:
                _close_all(opened)
                if failed is None and errors:
                    failed = errors[0].with_traceback(None)  # for onerror (see _explore_tree)
                if _out_of_fds(failed) and (out or not needed):
                    todo.append(work)  # read ahead: left for when the walk needs it
                    break
                out.append((work.path, failed))
                continue
            out.append((work.path, listed))
            found, entries = listed
            names += 1 + len(found[1]) + len(found[2])
            _push_subdirs(todo, found, entries)
    except BaseException:
        _release((out, None, None))
        raise
    rest = [work for work in reversed(todo) if isinstance(work, _Visit)]
    return out, rest, _waited(started, blocks, len(out))


def _waited(started: float, blocks: int, dirs: int) -> bool:
    """Whether a job that began at ``started``, having read ``blocks`` blocks from disks by
    then, and read ``dirs`` directories, waited for a disk."""
    slow = dirs >= _IO_BOUND_DIRS and time.perf_counter() - started > _IO_BOUND * dirs
    return slow or _blocks_read() > blocks


def _close_all(works: list[_Visit | _Close | _FTriple]) -> None:
    for work in works:
        if isinstance(work, _Close):
            os.close(work.fd)


def _release(explored: tuple[list[tuple[Any, _FResult]], Any, Any]) -> None:
    """Close the fds of results nobody will receive."""
    for _, result in explored[0]:
        if isinstance(result, tuple):
            os.close(result[0][3])


class _FWalk(WalkIterator[_FTriple]):
    def __init__(
        self,
        top: Any,
        topdown: bool,
        onerror: OnError | None,
        follow_symlinks: bool,
        dir_fd: int | None,
    ) -> None:
        self._args = (top, topdown, onerror, follow_symlinks, dir_fd)
        self._stack: list[_Visit | _Close | _FTriple] | None = None
        self._cache: dict[Any, _FResult] = {}
        self._frontier: list[_Visit] = []
        self._yielded: tuple[_FTriple, list[Any]] | None = None
        self._jobs = 1  # jobs per miss: _JOBS once one waited for a disk
        self._scale = 1  # of the next needed job's budget while warm

    async def _step(self) -> _FTriple:
        top, topdown, onerror, follow_symlinks, dir_fd = self._args
        if self._stack is None:
            sys.audit("os.fwalk", top, topdown, onerror, follow_symlinks, dir_fd)
            top = os.fspath(top)
            self._stack = [_Visit(True, dir_fd, top, top, None)]
        stack = self._stack
        if self._yielded is not None:
            found, names = self._yielded
            self._yielded = None
            _push_subdirs(stack, found, None)  # after the caller's edits of found[1]
            self._evict_pruned(found, names)
        while stack:
            work = stack.pop()
            if isinstance(work, _Close):
                os.close(work.fd)  # closing a directory fd never waits on a disk
                continue
            if not isinstance(work, _Visit):
                return work
            if work.path not in self._cache:
                await self._read(work)
            result = self._cache.pop(work.path)
            if result is None:
                continue
            if isinstance(result, _Raised):
                _completions.settle(None, _completions.take_error(result))
            if isinstance(result, OSError):
                if onerror is not None:
                    onerror(result)
                continue
            assert isinstance(result, tuple)
            found, entries = result
            stack.append(_Close(found[3]))
            if topdown:
                self._yielded = (found, list(found[1]))
                return found
            stack.append(found)
            _push_subdirs(stack, found, entries)
        self._finish()
        raise StopAsyncIteration

    def _evict_pruned(self, found: _FTriple, names: list[Any]) -> None:
        """Close the read-ahead of subdirectories the caller pruned from ``found``."""
        kept = set(found[1])
        prefix = os.path.join(found[0], found[0][:0])
        todo = [prefix + name for name in names if name not in kept]
        if todo:  # the unread rest may lie under a pruned directory whose fd is closed
            self._frontier = []
        while todo:
            result = self._cache.pop(todo.pop(), None)
            if isinstance(result, tuple):
                (path, dirs, _, fd), _ = result
                os.close(fd)
                sub = os.path.join(path, path[:0])
                todo.extend(sub + name for name in dirs)

    async def _read(self, work: _Visit) -> None:
        """Read ``work`` (and read ahead beside it). If the process ran out of fds for it while
        the walk holds fds read ahead, those are given back and ``work`` is read alone."""
        jobs = await self._read_with(work, read_ahead=True)
        if _out_of_fds(self._cache[work.path]) and (len(self._cache) > 1 or jobs > 1):
            del self._cache[work.path]
            cache, self._cache = self._cache, {}
            self._frontier = []
            _release((list(cache.items()), None, None))
            await self._read_with(work, read_ahead=False)

    async def _read_with(self, work: _Visit, read_ahead: bool) -> int:
        """Read ``work``, with read-ahead beside it if asked and there is room; returns the
        number of jobs that ran."""
        assert self._stack is not None
        topdown, follow_symlinks = self._args[1], self._args[3]
        more: list[_Visit] = []
        room = _fd_room() - len(self._cache)
        if read_ahead and room > 1:
            candidates = self._frontier + [
                w for w in reversed(self._stack[-_SCAN:]) if isinstance(w, _Visit)
            ]
            warm = self._jobs == 1  # then one job reads what comes next, else parallel jobs
            more = _unread(candidates, self._cache, work.path, _JOB_ROOTS if warm else _JOBS - 1)
        groups = [(work, *more)] if self._jobs == 1 else [(work,)] + [(root,) for root in more]
        # Warm, the one job grows (its round trip is what the walk waits for); the jobs share
        # the room, and the needed directory is read even when there is none.
        max_dirs = max(1, min(_FJOB_DIRS * self._scale, room // len(groups)))

        def job(roots: tuple[_Visit, ...]) -> Callable[[], Coroutine[Any, Any, Any]]:
            args = (roots, topdown, follow_symlinks, roots[0] is work, max_dirs)
            return lambda: call(MUTATE, _release, _fexplore, *args)

        # A job's fds belong to the cache as soon as it returns, even if a sibling job fails.
        jobs = [job(roots) for roots in groups]
        done: list[Any] = []
        waited: list[bool] = []

        def keep(i: int) -> Callable[[], Coroutine[Any, Any, None]]:
            async def run() -> None:
                out, frontier, slow = await jobs[i]()
                for path, result in out:
                    if path in self._cache:  # read twice (a name the caller gave twice)
                        _release(([(path, result)], None, None))
                    else:
                        self._cache[path] = result
                waited.append(slow)
                if i == 0:
                    done.append(frontier)

            return run

        await _gather([keep(i) for i in range(len(jobs))])
        self._yielded_at = time.perf_counter()
        self._frontier = done[0] if done else []
        if any(waited):  # jobs in parallel overlap their waits for the disk
            self._jobs, self._scale = _JOBS, 1
        else:  # warm: one job, growing, that does not compete with another for the GIL
            self._jobs, self._scale = 1, min(self._scale * 2, _WARM_SCALE)
        return len(jobs)

    def _finish(self) -> None:
        super()._finish()
        stack, self._stack = self._stack or [], []
        cache, self._cache = self._cache, {}
        self._frontier = []
        self._yielded = None
        _close_all(stack)
        _release((list(cache.items()), None, None))


@overload
def fwalk(
    top: str | os.PathLike[str] = ".",
    topdown: bool = True,
    onerror: OnError | None = None,
    *,
    follow_symlinks: bool = False,
    dir_fd: int | None = None,
) -> WalkIterator[tuple[str, list[str], list[str], int]]: ...
@overload
def fwalk(
    top: bytes | os.PathLike[bytes],
    topdown: bool = True,
    onerror: OnError | None = None,
    *,
    follow_symlinks: bool = False,
    dir_fd: int | None = None,
) -> WalkIterator[tuple[bytes, list[bytes], list[bytes], int]]: ...
def fwalk(
    top: str | bytes | os.PathLike[str] | os.PathLike[bytes] = ".",
    topdown: bool = True,
    onerror: OnError | None = None,
    *,
    follow_symlinks: bool = False,
    dir_fd: int | None = None,
) -> WalkIterator[tuple[Any, list[Any], list[Any], int]]:
    """Like :func:`os.fwalk`, but an async iterator yielding ``(dirpath, dirnames, filenames,
    dirfd)``.

    ``dirfd`` is valid until the walk moves past that directory's subtree, as in ``os.fwalk``.
    As with :func:`walk`, a directory read ahead is seen as it was read (and its ``dirfd`` is
    the directory opened then, even if removed or replaced since), where ``os.fwalk`` opens
    and lists it on arrival. Directories are opened and read ahead by workers (``O_NONBLOCK``
    opens with the ``lstat()/open()/fstat()`` check), holding at most a quarter of the process's
    fd limit (read-ahead waits, rather than fail, when fds run short); every fd, read ahead or
    yielded, is closed on exhaustion, ``aclose``, exit of ``async with``, an error, cancellation
    and garbage collection. Reads run to completion (a cancel waits for a batch that has begun,
    then closes its fds).
    ``onerror`` runs in the event-loop thread and must not block.
    """
    return _FWalk(top, topdown, onerror, follow_symlinks, dir_fd)
