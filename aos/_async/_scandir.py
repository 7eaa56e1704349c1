"""Async :func:`os.scandir`: entries read in batches per worker hop, predicates resolved there.

Design choice: the iterator yields :class:`DirEntry`, a wrapper of :class:`os.DirEntry` whose
``is_dir``/``is_file``/``is_symlink`` (and ``is_junction`` on 3.12+) answer synchronously from
values resolved in the worker (a result or the :class:`OSError` it raised, re-raised on call), so
no predicate ever makes a syscall on the event loop. ``stat()`` may need a syscall, so it is
awaitable; ``inode()``, ``name`` and ``path`` are sync, as they never touch the disk on Linux.
"""

from __future__ import annotations

import os
import sys
import threading
import time
import warnings
from collections import deque
from collections.abc import Callable
from types import TracebackType
from typing import Any, AnyStr, Final, Generic, cast, overload

from aos._async._loop_slice import LOOP_SLICE, let_loop_run
from aos._async._offload import MUTATE, QUERY, call
from aos._async._refusal import refusing_as_sync

__all__ = ["DirEntry", "ScandirIterator", "scandir"]

_FIRST_BATCH: Final = 64
_MAX_BATCH: Final = 1024


def _probe(fn: Callable[..., bool], **kwargs: bool) -> bool | OSError:
    """``fn(**kwargs)``, or the :class:`OSError` it raised."""
    try:
        return fn(**kwargs)
    except OSError as error:
        return error


def _answer(value: bool | OSError) -> bool:
    if isinstance(value, OSError):
        raise value
    return value


class DirEntry(Generic[AnyStr]):
    """An entry of :func:`aos.scandir`: like :class:`os.DirEntry`, with the predicates already
    resolved in the worker and an awaitable :meth:`stat`."""

    __slots__ = (
        "_dir",
        "_dir_nofollow",
        "_entry",
        "_file",
        "_file_nofollow",
        "_junction",
        "_link",
        "name",
        "path",
    )

    def __init__(self, entry: os.DirEntry[AnyStr]) -> None:
        """Wrap ``entry``, resolving its predicates now (call this in a worker)."""
        self._entry: os.DirEntry[AnyStr] = entry
        self.name: AnyStr = entry.name
        self.path: AnyStr = entry.path
        self._link = _probe(entry.is_symlink)
        self._dir_nofollow = _probe(entry.is_dir, follow_symlinks=False)
        self._file_nofollow = _probe(entry.is_file, follow_symlinks=False)
        if self._link is True:
            self._dir = _probe(entry.is_dir)
            self._file = _probe(entry.is_file)
        else:  # not a link (or unknown): following changes nothing
            self._dir = self._dir_nofollow
            self._file = self._file_nofollow
        self._junction: bool | OSError = False
        if sys.version_info >= (3, 12):
            self._junction = _probe(entry.is_junction)

    def is_dir(self, *, follow_symlinks: bool = True) -> bool:
        """Like :meth:`os.DirEntry.is_dir`, answered from the worker's result."""
        return _answer(self._dir if follow_symlinks else self._dir_nofollow)

    def is_file(self, *, follow_symlinks: bool = True) -> bool:
        """Like :meth:`os.DirEntry.is_file`, answered from the worker's result."""
        return _answer(self._file if follow_symlinks else self._file_nofollow)

    def is_symlink(self) -> bool:
        """Like :meth:`os.DirEntry.is_symlink`, answered from the worker's result."""
        return _answer(self._link)

    if sys.version_info >= (3, 12):

        def is_junction(self) -> bool:
            """Like :meth:`os.DirEntry.is_junction`, answered from the worker's result."""
            return _answer(self._junction)

    def inode(self) -> int:
        """Like :meth:`os.DirEntry.inode` (cached from the directory read: no syscall)."""
        return self._entry.inode()

    async def stat(self, *, follow_symlinks: bool = True) -> os.stat_result:
        """Like :meth:`os.DirEntry.stat`, but async (a query: cancellation returns at once)."""
        return await call(QUERY, None, self._entry.stat, follow_symlinks=follow_symlinks)

    def __fspath__(self) -> AnyStr:
        return self.path

    def __repr__(self) -> str:
        return f"<DirEntry {self.name!r}>"


class ScandirIterator(Generic[AnyStr]):
    """What :func:`aos.scandir` returns: await it, ``async with`` it, or ``async for`` over it.

    The directory is opened on first use; its fd is closed on exhaustion, on an error, by
    :meth:`aclose`, on exit of ``async with``, when an iteration is cancelled, and on garbage
    collection (with a :exc:`ResourceWarning`, as :func:`os.scandir`'s iterator gives). A batch
    still being read by a worker closes the fd itself when it returns. An entry served from the
    buffer is a checkpoint only once 0.25 ms have passed since the iterator last let the loop
    run. A step (or the opening) while another task awaits one raises :exc:`RuntimeError`, as
    an async generator refuses it: the two would read the directory twice over.
    """

    def __init__(self, path: Any) -> None:
        self._path = path
        self._it: os._ScandirIterator[AnyStr] | None = None
        self._buffer: deque[DirEntry[AnyStr]] = deque()
        self._error: OSError | None = None
        self._done = False
        self._batch = _FIRST_BATCH
        self._lock = threading.Lock()  # held by whoever touches the os iterator
        self._close_requested = False
        self._yielded_at = 0.0  # when this iterator last let the event loop run
        self._running = False  # a task awaits a step (or the opening)

    async def _open(self) -> ScandirIterator[AnyStr]:
        """Open the directory and read the first batch, in one hop (refused while another
        task awaits a step)."""
        if self._running:
            raise RuntimeError("anext(): asynchronous generator is already running")
        self._running = True
        try:
            return await self._open_now()
        finally:
            self._running = False

    async def _open_now(self) -> ScandirIterator[AnyStr]:
        if self._it is None and not self._done:
            opened = await call(MUTATE, self._release_opened, self._open_and_read)
            self._it = opened[0]
            self._take(*opened[1:])
        return self

    def _open_and_read(
        self,
    ) -> tuple[os._ScandirIterator[AnyStr], list[DirEntry[AnyStr]], OSError | None, bool]:
        it = cast("os._ScandirIterator[AnyStr]", os.scandir(self._path))
        self._it = it
        batch, error, done = self._read_batch(self._batch)
        return it, batch, error, done

    def _release_opened(
        self, opened: tuple[os._ScandirIterator[AnyStr], object, object, object]
    ) -> None:
        """Close what an open that nobody took (cancelled, or its loop gone) opened, and leave
        the iterator finished: nothing of it is open (on any thread)."""
        opened[0].close()
        self._done = True

    def __await__(self) -> Any:
        return self._open().__await__()

    async def __aenter__(self) -> ScandirIterator[AnyStr]:
        return await self._open()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._close()

    def __aiter__(self) -> ScandirIterator[AnyStr]:
        return self

    async def __anext__(self) -> DirEntry[AnyStr]:
        if self._running:  # another task's step: refused, as an async generator refuses it
            raise RuntimeError("anext(): asynchronous generator is already running")
        self._running = True
        try:
            if self._it is None:
                await self._open_now()
            elif not self._buffer and not self._done and self._error is None:
                self._batch = min(self._batch * 2, _MAX_BATCH)
                self._take(*await call(QUERY, None, self._read_batch, self._batch))
            elif time.perf_counter() - self._yielded_at > LOOP_SLICE:
                await let_loop_run()  # serving from the buffer
                self._yielded_at = time.perf_counter()
        except BaseException:
            self._close()  # cancelled or failed to open: finished, like an async generator
            raise
        finally:
            self._running = False
        if self._buffer:
            return self._buffer.popleft()
        if self._error is not None:
            error, self._error = self._error, None
            raise error
        raise StopAsyncIteration

    def _take(self, batch: list[DirEntry[AnyStr]], error: OSError | None, done: bool) -> None:
        """Buffer what a worker read, unless the iterator was closed meanwhile (by ``aclose``
        from another task): then nothing more comes out of it, as from a closed os iterator."""
        if not self._close_requested:
            self._buffer.extend(batch)
            self._error, self._done = error, done
        self._yielded_at = time.perf_counter()

    def _read_batch(self, size: int) -> tuple[list[DirEntry[AnyStr]], OSError | None, bool]:
        """In a worker: up to ``size`` entries, the error that ended the read, and whether it ended."""
        batch: list[DirEntry[AnyStr]] = []
        error: OSError | None = None
        done = True
        with self._lock:
            it = self._it
            if it is not None and not self._close_requested:
                try:
                    for _ in range(size):
                        batch.append(DirEntry(next(it)))
                    done = False
                except StopIteration:
                    pass
                except OSError as exc:
                    error = exc
                if done:
                    it.close()
        self._close_if_requested()
        return batch, error, done

    async def aclose(self) -> None:
        """Close the directory now (a worker still reading a batch closes it when done)."""
        self._close()

    def _close(self) -> None:
        self._done = True
        self._buffer.clear()
        self._error = None  # an error the last batch ended with is not raised after a close
        self._close_requested = True
        self._close_if_requested()

    def _close_if_requested(self) -> None:
        # Whoever sees the request and gets the lock closes: never two threads on one DIR*.
        if self._close_requested and self._lock.acquire(blocking=False):
            try:
                if self._it is not None:
                    self._it.close()
            finally:
                self._lock.release()

    def __del__(self) -> None:
        if getattr(self, "_it", None) is None:
            return
        unclosed = not self._done and not self._close_requested  # its fd is still open
        self._close()  # (first: the warning may be an error)
        if unclosed:  # as os warns
            warnings.warn(
                f"unclosed scandir iterator {self!r}", ResourceWarning, stacklevel=2, source=self
            )


@overload
def scandir(path: None = None) -> ScandirIterator[str]: ...
@overload
def scandir(path: int) -> ScandirIterator[str]: ...
@overload
def scandir(path: AnyStr | os.PathLike[AnyStr]) -> ScandirIterator[AnyStr]: ...
@refusing_as_sync(os.scandir)
def scandir(path: Any = None) -> ScandirIterator[Any]:
    """Like :func:`os.scandir`, but async: ``async with aos.scandir(p) as it: async for e in it``
    or ``it = await aos.scandir(p)``.

    Entries are read in batches per worker hop; each is a :class:`DirEntry` whose predicates
    were resolved in the worker and whose ``stat()`` is awaitable. Opening runs to completion
    (a cancelled open closes the directory); reading a batch is a query (a cancel returns at
    once and closes the directory).
    """
    return ScandirIterator(path)
