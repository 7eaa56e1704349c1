"""aos.scandir against os.scandir: names, order, path types, predicates, errors, fd lifetime."""

from __future__ import annotations

import errno
import gc
import inspect
import os
import random
import sys
import threading
import warnings
from pathlib import Path
from typing import Any, TypeVar

import anyio
import anyio.lowlevel
import pytest

from aos._async import _scandir
from aos._async._iter import scandir
from aos._async._offload import call
from tests.aio._helpers import cancel_at, fds_under, off_loop, wait_for_no_fds_under

pytestmark = pytest.mark.anyio

T = TypeVar("T")


def _entry_facts(entry: Any) -> dict[str, Any]:
    """Everything a sync entry answers, errors as (class, errno)."""

    def probe(fn: Any, **kwargs: Any) -> Any:
        try:
            return fn(**kwargs)
        except OSError as error:
            return (type(error), error.errno)

    facts = {
        "name": entry.name,
        "path": entry.path,
        "inode": entry.inode(),
        "is_dir": probe(entry.is_dir),
        "is_dir_nofollow": probe(entry.is_dir, follow_symlinks=False),
        "is_file": probe(entry.is_file),
        "is_file_nofollow": probe(entry.is_file, follow_symlinks=False),
        "is_symlink": probe(entry.is_symlink),
        "fspath": os.fspath(entry),
    }
    if sys.version_info >= (3, 12):
        facts["is_junction"] = probe(entry.is_junction)
    return facts


@pytest.fixture
def big(tmp_path: Path) -> Path:
    """A directory of 200 files: more than one batch."""
    _make_files(tmp_path, 200)
    return tmp_path


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """A directory with a file, a subdirectory and every kind of link."""
    top = tmp_path / "top"
    top.mkdir()
    (top / "file").write_text("x")
    (top / "sub").mkdir()
    (top / "link_to_file").symlink_to("file")
    (top / "link_to_dir").symlink_to("sub")
    (top / "dangling").symlink_to("nowhere")
    (top / "loop").symlink_to("loop")
    os.mkfifo(top / "fifo")
    return top


def _sync_facts(path: Any) -> list[dict[str, Any]]:
    with os.scandir(path) as it:
        return [_entry_facts(entry) for entry in it]


async def _async_facts(path: Any) -> list[dict[str, Any]]:
    facts = []
    async with scandir(path) as it:
        async for entry in it:
            assert isinstance(entry, _scandir.DirEntry)
            facts.append(_entry_facts(entry))
    return facts


def _bare(sig: inspect.Signature) -> list[tuple[str, Any, Any]]:
    return [(p.name, p.kind, p.default) for p in sig.parameters.values()]


def test_signature_is_that_of_os_scandir() -> None:
    assert _bare(inspect.signature(scandir)) == _bare(inspect.signature(os.scandir))


@pytest.mark.parametrize("kind", ["str", "bytes", "pathlike", "fd"])
async def test_entries_match_os_scandir(tree: Path, kind: str) -> None:
    if kind == "fd":
        fd = os.open(tree, os.O_RDONLY)
        try:
            # os.scandir(fd) reads from the fd's position: compare on two fresh fds.
            expected = await off_loop(_sync_facts, fd)
            fd2 = os.open(tree, os.O_RDONLY)
            try:
                got = await _async_facts(fd2)
            finally:
                os.close(fd2)
        finally:
            os.close(fd)
    else:
        path: Any = {"str": str(tree), "bytes": os.fsencode(tree), "pathlike": tree}[kind]
        expected = await off_loop(_sync_facts, path)
        got = await _async_facts(path)
    assert got == expected
    assert len(got) == 7
    assert {type(f["name"]) for f in got} == {bytes if kind == "bytes" else str}


@pytest.fixture
def in_tree(tree: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tree)
    return tree


async def test_default_path_is_the_working_directory(in_tree: Path) -> None:
    expected = await off_loop(_sync_facts, None)
    assert await _async_facts(None) == expected
    got = []
    async with scandir() as it:
        got = [entry.path async for entry in it]
    assert got == [f["path"] for f in expected]
    assert all(p.startswith("./") for p in got)


async def test_stat_is_awaitable_and_matches(tree: Path) -> None:
    async with scandir(tree) as it:
        entries = {entry.name: entry async for entry in it}
    for name in ("file", "sub", "link_to_file", "link_to_dir"):
        for follow in (True, False):
            st = await entries[name].stat(follow_symlinks=follow)
            expected = await off_loop(lambda n=name, f=follow: os.stat(tree / n, follow_symlinks=f))
            assert (st.st_ino, st.st_mode, st.st_dev) == (
                expected.st_ino,
                expected.st_mode,
                expected.st_dev,
            )
    with pytest.raises(FileNotFoundError) as caught:
        await entries["dangling"].stat()
    expected_error = await off_loop(_stat_error, tree / "dangling")
    assert (caught.value.errno, caught.value.filename) == expected_error
    assert repr(entries["file"]) == "<DirEntry 'file'>"


def _stat_error(path: Path) -> tuple[int | None, Any]:
    with os.scandir(path.parent) as it:
        entry = next(e for e in it if e.name == path.name)
    try:
        entry.stat()
    except OSError as error:
        return error.errno, error.filename
    raise AssertionError("no error")


async def test_predicate_errors_are_raised_like_os(tree: Path) -> None:
    # is_dir() on a symlink loop raises ELOOP in os (only ENOENT is turned into False).
    expected = (await off_loop(_sync_facts, tree))[0:]
    loop_facts = next(f for f in expected if f["name"] == "loop")
    async with scandir(tree) as it:
        loop = next(entry for entry in [e async for e in it] if entry.name == "loop")
    if isinstance(loop_facts["is_dir"], tuple):
        with pytest.raises(loop_facts["is_dir"][0]) as caught:
            loop.is_dir()
        assert (type(caught.value), caught.value.errno) == loop_facts["is_dir"]
    else:
        assert loop.is_dir() is loop_facts["is_dir"]


@pytest.mark.parametrize(
    ("name", "error"),
    [("missing", FileNotFoundError), ("file", NotADirectoryError)],
)
async def test_open_errors_are_those_of_os(tree: Path, name: str, error: type[OSError]) -> None:
    path = tree / name
    with pytest.raises(error) as expected:
        await off_loop(os.scandir, path)
    for use in (_use_await, _use_async_with, _use_async_for):
        with pytest.raises(error) as caught:
            await use(path)
        got = caught.value
        want = expected.value
        assert (got.errno, got.strerror, got.filename, got.filename2, str(got)) == (
            want.errno,
            want.strerror,
            want.filename,
            want.filename2,
            str(want),
        )


async def _use_await(path: Path) -> None:
    await scandir(path)


async def _use_async_with(path: Path) -> None:
    async with scandir(path):
        pass


async def _use_async_for(path: Path) -> None:
    async for _ in scandir(path):
        pass


async def test_bad_argument_type_is_that_of_os() -> None:
    with pytest.raises(TypeError) as expected:
        os.scandir(1.5)  # type: ignore[call-overload]  # raises before touching the disk
    with pytest.raises(TypeError) as caught:
        await scandir(1.5)  # type: ignore[call-overload]
    assert str(caught.value) == str(expected.value)


async def test_big_directory_is_read_in_batches(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    names = await off_loop(_make_files, tmp_path, 3000)
    hops = 0
    real_call = call

    async def counting_call(*args: Any, **kwargs: Any) -> Any:
        nonlocal hops
        hops += 1
        return await real_call(*args, **kwargs)

    monkeypatch.setattr(_scandir, "call", counting_call)
    it = await scandir(tmp_path)
    got = [entry.name async for entry in it]
    expected = await off_loop(os.listdir, tmp_path)
    assert got == expected
    assert sorted(got) == names
    assert hops <= 10  # one open and a handful of batches, not one hop per entry


def _make_files(top: Path, count: int) -> list[str]:
    names = sorted(f"f{i:05d}" for i in range(count))
    for name in names:
        (top / name).touch()
    return names


async def test_fd_closed_on_exhaustion_aclose_exit_and_gc(big: Path) -> None:
    it = await scandir(big)
    assert await fds_under(big) == 1
    async for _ in it:
        pass
    assert await fds_under(big) == 0  # exhaustion

    it = await scandir(big)
    await it.__anext__()
    await it.aclose()
    assert await fds_under(big) == 0
    with pytest.raises(StopAsyncIteration):
        await it.__anext__()

    async with scandir(big) as it:
        await it.__anext__()
        assert await fds_under(big) == 1
    assert await fds_under(big) == 0

    it = await scandir(big)
    await it.__anext__()
    with pytest.warns(ResourceWarning, match="^unclosed scandir iterator <"):  # noqa: PT031 - as os warns
        del it
        gc.collect()  # (a reference may be left in a cycle)
    assert await fds_under(big) == 0


async def test_a_cancelled_open_leaves_nothing_open_to_warn_about(
    big: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The open is a MUTATE that makes a resource: cancelled while the worker opens, it closes
    what was opened, and the iterator is finished, with nothing open (no ResourceWarning)."""
    entered, go_on = threading.Event(), threading.Event()
    real_scandir = os.scandir

    def slow_scandir(path: Any) -> Any:
        opened = real_scandir(path)
        entered.set()
        go_on.wait(10)
        return opened

    monkeypatch.setattr(os, "scandir", slow_scandir)
    it = scandir(big)
    with anyio.CancelScope() as scope:
        async with anyio.create_task_group() as tg:

            async def cancel_once_open() -> None:
                await anyio.to_thread.run_sync(entered.wait, 10)
                scope.cancel()
                go_on.set()

            tg.start_soon(cancel_once_open)
            await it
    assert scope.cancelled_caught
    monkeypatch.undo()
    assert await fds_under(big) == 0
    with warnings.catch_warnings(record=True) as warned:
        warnings.simplefilter("always")
        del it
        gc.collect()
    assert not warned


async def _with_a_hanging_batch(
    big: Path, monkeypatch: pytest.MonkeyPatch
) -> tuple[Any, threading.Event, threading.Event]:
    """An iterator whose first batch is served and whose next batch, once asked for, hangs in
    the worker (``entered`` is set) until ``go_on`` is set."""
    entered = threading.Event()
    go_on = threading.Event()

    class SlowEntry(_scandir.DirEntry[Any]):
        def __init__(self, entry: Any) -> None:
            entered.set()
            go_on.wait(10)
            super().__init__(entry)

    it = await scandir(big)  # opens and reads the first batch
    for _ in range(len(it._buffer)):
        await it.__anext__()
    monkeypatch.setattr(_scandir, "DirEntry", SlowEntry)
    return it, entered, go_on


async def test_a_second_task_stepping_while_one_awaits_is_refused(
    big: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """While one task awaits the opening (or a batch), another's step or ``await`` of the same
    iterator raises :exc:`RuntimeError`, as an async generator refuses it: it would open and
    read the directory a second time (every entry twice, the first os iterator left open)."""
    entered = threading.Event()
    go_on = threading.Event()

    class SlowEntry(_scandir.DirEntry[Any]):
        def __init__(self, entry: Any) -> None:
            if not entered.is_set():  # the first entry of the opening waits
                entered.set()
                go_on.wait(10)
            super().__init__(entry)

    monkeypatch.setattr(_scandir, "DirEntry", SlowEntry)
    it = scandir(big)  # not opened yet
    names: list[str] = []

    async def first() -> None:
        names.append((await it.__anext__()).name)

    async with anyio.create_task_group() as tg:
        tg.start_soon(first)
        for _ in range(2000):
            if entered.is_set():
                break
            await anyio.sleep(0.005)
        with pytest.raises(RuntimeError, match="already running"):
            await it.__anext__()
        with pytest.raises(RuntimeError, match="already running"):
            await it
        go_on.set()
    names += [entry.name async for entry in it]
    assert sorted(names) == sorted(await off_loop(os.listdir, big))
    assert await fds_under(big) == 0


async def test_cancel_during_a_batch_closes_the_fd_when_the_batch_returns(
    big: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    it, entered, go_on = await _with_a_hanging_batch(big, monkeypatch)

    async def cancel_once_reading(scope: anyio.CancelScope) -> None:
        for _ in range(2000):
            if entered.is_set():
                break
            await anyio.sleep(0.005)
        scope.cancel()

    with anyio.CancelScope() as scope:
        async with anyio.create_task_group() as tg:
            tg.start_soon(cancel_once_reading, scope)
            await it.__anext__()
    assert scope.cancelled_caught
    assert entered.is_set()
    assert await fds_under(big) == 1  # the worker still holds the directory...
    go_on.set()
    await wait_for_no_fds_under(big)  # ...and closes it when its batch returns
    with pytest.raises(StopAsyncIteration):  # finished, like an async generator
        await it.__anext__()


async def test_aclose_from_another_task_during_a_batch_ends_the_iteration(
    big: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The batch a worker was reading when another task closed the iterator is not served:
    the waiting step ends the iteration, as ``next`` on a closed ``os.scandir`` iterator does."""
    it, entered, go_on = await _with_a_hanging_batch(big, monkeypatch)

    async def close_once_reading() -> None:
        for _ in range(2000):
            if entered.is_set():
                break
            await anyio.sleep(0.005)
        await it.aclose()
        go_on.set()

    async with anyio.create_task_group() as tg:
        tg.start_soon(close_once_reading)
        with pytest.raises(StopAsyncIteration):
            await it.__anext__()
    assert entered.is_set()
    with pytest.raises(StopAsyncIteration):
        await it.__anext__()
    await wait_for_no_fds_under(big)


async def test_aclose_drops_an_error_the_last_batch_ended_with(
    big: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A read error waits behind the entries read before it; closing the iterator drops both,
    so the next step ends the iteration as on a closed ``os.scandir`` iterator."""
    made = []

    class FailingEntry(_scandir.DirEntry[Any]):
        def __init__(self, entry: Any) -> None:
            made.append(entry)
            if len(made) == 3:
                raise OSError(errno.EIO, "simulated read error")
            super().__init__(entry)

    monkeypatch.setattr(_scandir, "DirEntry", FailingEntry)
    it = await scandir(big)
    assert len(it._buffer) == 2
    await it.__anext__()
    await it.aclose()
    with pytest.raises(StopAsyncIteration):
        await it.__anext__()
    await wait_for_no_fds_under(big)


async def test_a_thousand_random_cancellations_leave_no_fd_open(tmp_path: Path) -> None:
    """Half the rounds cancel after k entries (the body's checkpoint raises, the iterator is
    left to ``async with`` or to garbage collection, which warns as os does); half time out at
    a random moment, which lands in the open, in a batch read or between them."""
    await off_loop(_make_files, tmp_path, 300)
    rng = random.Random(6)
    cancelled = 0
    with warnings.catch_warnings(record=True) as warned:
        warnings.simplefilter("always")
        for round_ in range(1000):
            if round_ % 2:
                with anyio.move_on_after(rng.uniform(0, 0.001)) as scope:
                    async with scandir(tmp_path) as it:
                        async for _ in it:
                            pass
            else:
                k = rng.randrange(300)
                with anyio.CancelScope() as scope:
                    it = scandir(tmp_path)
                    if rng.random() < 0.5:
                        await it
                    await cancel_at(it, k, scope)
                del it
            cancelled += scope.cancelled_caught
        del scope
        gc.collect()
    assert cancelled >= 500
    assert warned  # some were left to garbage collection
    assert {w.category for w in warned} == {ResourceWarning}
    await wait_for_no_fds_under(tmp_path)
