"""aos.walk and aos.fwalk against aos.blocking.walk/fwalk (and os.walk/fwalk): same sequence,
pruning, onerror, links, bytes, dir_fd, deep trees; bounded parallel read-ahead; no fd leaks."""

from __future__ import annotations

import errno
import functools
import gc
import inspect
import os
import random
import shlex
import shutil
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import anyio
import anyio.lowlevel
import pytest

from aos import blocking
from aos._async import _walk
from aos._async._iter import fwalk, walk
from aos.blocking import _walk as _blocking_walk
from tests.aio._helpers import (
    cancel_at,
    fds_under,
    off_loop,
    run_child,
    wait_for_no_fds_under,
)
from tests.conftest import BACKENDS

pytestmark = pytest.mark.anyio

T = TypeVar("T")
Prune = Callable[[Any, list[Any]], None]


def _make_rich(top: Path) -> Path:
    """Files, nested and empty directories, every kind of link, a loop and a non-UTF-8 name."""
    for d in ("a/a1/a11", "a/a2", "b", "c/c1/c2/c3", "e"):
        (top / d).mkdir(parents=True)
    for f in ("f1", "f2", "a/fa", "a/a1/a11/deep", "c/c1/c2/c3/x", "a/a2/y"):
        (top / f).write_text(f)
    (top / "link_dir").symlink_to("a")
    (top / "link_file").symlink_to("f1")
    (top / "dangling").symlink_to("nowhere")
    (top / "self_loop").symlink_to("self_loop")
    (top / "a" / "up").symlink_to("..")  # a directory loop
    odd = os.fsencode(top) + b"/\xff\xfe"
    os.mkdir(odd)
    with open(odd + b"/inner", "w"):
        pass
    return top


def _as_if_every_job_read_a_disk(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make every job count as having read blocks from a disk: the walk then reads ahead with
    jobs in parallel, beside the caller, as on a cold cache."""
    reads = iter(range(1_000_000))
    monkeypatch.setattr(_walk, "_blocks_read", lambda: next(reads))


def _short_of_fds_for(monkeypatch: pytest.MonkeyPatch, short: Callable[[Any], bool]) -> list[Any]:
    """Make walk jobs find no fd for a directory whenever ``short(path)`` says so (asked at each
    read); returns the list of the directories read, filled as jobs read them."""
    real = _blocking_walk._list_for_walk
    read: list[Any] = []

    def listing(path: Any, topdown: Any, onerror: Any, *args: Any) -> Any:
        if short(path):
            onerror(OSError(errno.EMFILE, "Too many open files", path))
            return None
        read.append(path)
        return real(path, topdown, onerror, *args)

    monkeypatch.setattr(_walk, "_list_for_walk", listing)
    return read


def _make_big(top: Path, fanout: int = 30, files: int = 4) -> Path:
    """About 1,000 directories in three levels, more than one read-ahead job's budget."""
    for i in range(fanout):
        for j in range(fanout):
            d = top / f"d{i:02d}" / f"e{j:02d}"
            d.mkdir(parents=True)
            for k in range(files):
                (d / f"f{k}").touch()
    return top


@pytest.fixture
def rich(tmp_path: Path) -> Path:
    return _make_rich(tmp_path / "rich")


@pytest.fixture(scope="module")
def big(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _make_big(tmp_path_factory.mktemp("big"))


@pytest.fixture(scope="module")
def deep(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A chain of 1,500 directories (Python 3.11's recursive os.walk fails on it).

    Made and removed one level at a time: os.makedirs and rmtree recurse."""
    top = tmp_path_factory.mktemp("deep")
    paths = [os.path.join(top, *["d"] * n) for n in range(1, 1501)]
    for path in paths:
        os.mkdir(path)
    yield top
    for path in reversed(paths):
        os.rmdir(path)


def _bare(func: Any) -> list[tuple[str, Any, Any]]:
    return [(p.name, p.kind, p.default) for p in inspect.signature(func).parameters.values()]


def test_signatures_are_those_of_os() -> None:
    assert _bare(walk) == _bare(os.walk)
    assert _bare(fwalk) == _bare(os.fwalk)


def _as(kind: str, path: Path) -> Any:
    return {"str": str(path), "bytes": os.fsencode(path), "pathlike": path}[kind]


def _sync_walk(top: Any, prune: Prune | None = None, **kwargs: Any) -> list[Any]:
    out = []
    for dirpath, dirnames, filenames in blocking.walk(top, **kwargs):
        out.append((dirpath, list(dirnames), list(filenames)))
        if prune is not None:
            prune(dirpath, dirnames)
    return out


async def _async_walk(top: Any, prune: Prune | None = None, **kwargs: Any) -> list[Any]:
    out = []
    async for dirpath, dirnames, filenames in walk(top, **kwargs):
        out.append((dirpath, list(dirnames), list(filenames)))
        if prune is not None:
            prune(dirpath, dirnames)
    return out


def _sync_fwalk(top: Any, prune: Prune | None = None, **kwargs: Any) -> list[Any]:
    out = []
    for dirpath, dirnames, filenames, fd in blocking.fwalk(top, **kwargs):
        st = os.fstat(fd)
        out.append((dirpath, list(dirnames), list(filenames), st.st_ino))
        if prune is not None:
            prune(dirpath, dirnames)
    return out


async def _async_fwalk(top: Any, prune: Prune | None = None, **kwargs: Any) -> list[Any]:
    out = []
    async for dirpath, dirnames, filenames, fd in fwalk(top, **kwargs):
        out.append((dirpath, list(dirnames), list(filenames), fd))
        if prune is not None:
            prune(dirpath, dirnames)
    return out


@pytest.mark.parametrize("kind", ["str", "bytes", "pathlike"])
@pytest.mark.parametrize("topdown", [True, False])
@pytest.mark.parametrize("followlinks", [False, True])
async def test_walk_matches(rich: Path, kind: str, topdown: bool, followlinks: bool) -> None:
    if followlinks:  # a loop that branches would make os.walk run for ages
        await off_loop(os.unlink, rich / "a" / "up")
    top = _as(kind, rich)
    kwargs: dict[str, Any] = {"topdown": topdown, "followlinks": followlinks}
    expected = await off_loop(lambda: _sync_walk(top, **kwargs))
    assert await _async_walk(top, **kwargs) == expected
    os_walk = await off_loop(lambda: [(p, list(d), list(f)) for p, d, f in os.walk(top, **kwargs)])
    assert expected == os_walk
    assert len(expected) >= 10


@pytest.mark.parametrize("kind", ["str", "bytes", "pathlike"])
@pytest.mark.parametrize("topdown", [True, False])
@pytest.mark.parametrize("follow_symlinks", [False, True])
async def test_fwalk_matches(rich: Path, kind: str, topdown: bool, follow_symlinks: bool) -> None:
    if follow_symlinks:  # a loop that branches would make os.fwalk run for ages
        await off_loop(os.unlink, rich / "a" / "up")
    top = _as(kind, rich)
    kwargs: dict[str, Any] = {"topdown": topdown, "follow_symlinks": follow_symlinks}
    expected = await off_loop(lambda: _sync_fwalk(top, **kwargs))
    got = []
    async for dirpath, dirnames, filenames, fd in fwalk(top, **kwargs):
        st, path_st = await off_loop(os.fstat, fd), await off_loop(os.stat, dirpath)
        assert (st.st_dev, st.st_ino) == (path_st.st_dev, path_st.st_ino)
        got.append((dirpath, list(dirnames), list(filenames), st.st_ino))
    assert got == expected
    assert len(expected) >= 10


@pytest.mark.parametrize("topdown", [True, False])
async def test_big_tree_matches_and_reads_ahead_in_parallel(
    big: Path, topdown: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    jobs = peak = fpeak = 0
    real_explore, real_start, real_gather = _walk._explore, _walk._Walk._start, _walk._gather

    def counting_explore(*args: Any) -> Any:
        nonlocal jobs
        jobs += 1
        return real_explore(*args)

    def counting_start(self: Any, *args: Any, **kwargs: Any) -> None:
        nonlocal peak
        real_start(self, *args, **kwargs)
        peak = max(peak, len(self._in_flight))

    async def counting_gather(batch: list[Any]) -> list[Any]:
        nonlocal fpeak
        fpeak = max(fpeak, len(batch))
        return await real_gather(batch)

    monkeypatch.setattr(_walk, "_explore", counting_explore)
    monkeypatch.setattr(_walk._Walk, "_start", counting_start)
    monkeypatch.setattr(_walk, "_gather", counting_gather)
    monkeypatch.setattr(_walk, "_IO_BOUND", 0.0)  # as if every job had waited for a disk
    monkeypatch.setattr(_walk, "_IO_BOUND_DIRS", 1)
    expected = await off_loop(lambda: _sync_walk(big, topdown=topdown))
    assert await _async_walk(big, topdown=topdown) == expected
    assert len(expected) == 1 + 30 + 900
    assert jobs < len(expected) / 10  # many directories per worker hop
    assert peak == _walk._JOBS_IO  # independent subtrees are read at once
    fexpected = await off_loop(lambda: _sync_fwalk(big, topdown=topdown))
    fgot = await _async_fwalk(big, topdown=topdown)
    assert [t[:3] for t in fgot] == [t[:3] for t in fexpected]
    assert fpeak == _walk._JOBS


def _prune_some(dirpath: Any, dirnames: list[Any]) -> None:
    """Drop every third name and names starting with 'a', reverse, add a link and a ghost."""
    a = b"a" if isinstance(dirpath, bytes) else "a"
    kept = [n for i, n in enumerate(dirnames) if i % 3 != 1 and not n.startswith(a)]
    kept.reverse()
    extra = [b"link_dir", b"ghost"] if isinstance(dirpath, bytes) else ["link_dir", "ghost"]
    dirnames[:] = kept + extra


@pytest.mark.parametrize("which", ["rich", "big"])
@pytest.mark.parametrize("kind", ["str", "bytes"])
async def test_topdown_pruning_in_place(rich: Path, big: Path, which: str, kind: str) -> None:
    top = _as(kind, rich if which == "rich" else big)
    expected = await off_loop(lambda: _sync_walk(top, _prune_some))
    assert await _async_walk(top, _prune_some) == expected
    fexpected = await off_loop(lambda: _sync_fwalk(top, _prune_some))
    fgot = await _async_fwalk(top, _prune_some)
    assert [t[:3] for t in fgot] == [t[:3] for t in fexpected]
    assert await fds_under(rich) == await fds_under(big) == 0


def _tree_with_victims(top: Path) -> list[str]:
    """``top/t`` with subdirectories ``v0``..``v5`` and a ``secret`` beside it; the one listed
    first gets 300 subdirectories, more than one read-ahead job reads, so that the others are
    read ahead while the walk is still inside it. Returns the others (the victims)."""
    (top / "secret" / "inside_secret").mkdir(parents=True)
    for i in range(6):
        (top / "t" / f"v{i}" / "sub").mkdir(parents=True)
    first, *victims = [entry.name for entry in os.scandir(top / "t")]
    for i in range(300):
        (top / "t" / first / f"d{i}").mkdir()
    return victims


def _swap_victims(top: Path, dirpath: str, victims: list[str]) -> None:
    """What the caller's turn does: at ``t``, replace each victim with a symlink to secret."""
    if dirpath == str(top / "t"):
        for victim in victims:
            shutil.rmtree(top / "t" / victim)
            os.symlink("../secret", top / "t" / victim)


def _os_walk_with_swaps(top: Path, victims: list[str]) -> list[str]:
    walked = []
    for dirpath, _, _ in os.walk(str(top / "t")):
        _swap_victims(top, dirpath, victims)
        walked.append(dirpath[len(str(top)) :])
    return walked


async def test_a_directory_made_a_symlink_during_the_callers_turn_is_not_entered(
    tmp_path: Path,
) -> None:
    """As ``os.walk`` (topdown, not following links) checks ``islink`` after each yield, the
    walk does not enter what read-ahead had read as a directory before the caller swapped it."""
    victims = await off_loop(_tree_with_victims, tmp_path / "os")
    expected = await off_loop(_os_walk_with_swaps, tmp_path / "os", victims)
    top = tmp_path / "aos"
    victims = await off_loop(_tree_with_victims, top)
    got = []
    async for dirpath, _, _ in walk(str(top / "t")):
        await off_loop(_swap_victims, top, dirpath, victims)
        got.append(dirpath[len(str(top)) :])
    assert not [p for p in got if "secret" in p]
    assert got == expected


def _tree_with_a_file_to_descend(top: Path) -> Path:
    for c in range(5):
        for i in range(20):
            (top / "t" / "x" / f"c{c}" / f"s{i}").mkdir(parents=True)
    (top / "t" / "file").touch()
    return top / "t"


def _os_fwalk_into_a_file(top: Path) -> tuple[int, BaseException | None]:
    count = 0
    try:
        for dirpath, dirnames, _, _ in os.fwalk(top):
            count += 1
            if dirpath == str(top):
                dirnames.append("file")  # os.fwalk raises when it gets there
    except OSError as exc:
        return count, exc
    return count, None


async def test_fwalk_raises_what_reading_raises_where_os_fwalk_raises_it(tmp_path: Path) -> None:
    """A name the caller adds to dirnames that is no directory: os.fwalk raises
    NotADirectoryError when it reaches it; so does aos.fwalk, then and unwrapped, although
    read-ahead read it long before."""
    top = await off_loop(_tree_with_a_file_to_descend, tmp_path)
    expected_count, expected = await off_loop(_os_fwalk_into_a_file, top)
    assert isinstance(expected, NotADirectoryError)
    count = 0

    async def walk_into_the_file() -> None:
        nonlocal count
        async for dirpath, dirnames, _, _ in fwalk(str(top)):
            count += 1
            if dirpath == str(top):
                dirnames.append("file")

    with pytest.raises(NotADirectoryError) as info:
        await walk_into_the_file()
    assert count == expected_count
    assert info.value.args == expected.args


@pytest.mark.parametrize("how", ["aclose", "exit"])
@pytest.mark.parametrize("kind", ["walk", "fwalk"])
async def test_aclose_while_another_task_awaits_a_step_is_refused(
    tmp_path: Path, kind: str, how: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As an async generator refuses it (also on leaving ``async with``): the step goes on,
    nothing hangs, no fd is left."""
    for i in range(3):
        await off_loop(functools.partial((tmp_path / "t" / f"d{i}" / "e").mkdir, parents=True))
    name = "_list_for_walk" if kind == "walk" else "_fwalk_list"
    read = getattr(_walk, name)
    reading, tried = threading.Event(), threading.Event()

    def slow_read(*args: Any) -> Any:
        reading.set()
        tried.wait(10)  # on a worker: the step waits for this read until the closer has tried
        return read(*args)

    monkeypatch.setattr(_walk, name, slow_read)
    it = (walk if kind == "walk" else fwalk)(str(tmp_path / "t"))
    refused: list[BaseException] = []

    async def closer() -> None:
        for _ in range(2000):
            if reading.is_set():
                break
            await anyio.sleep(0.005)
        try:
            if how == "aclose":
                await it.aclose()
            else:
                await it.__aexit__(None, None, None)
        except RuntimeError as exc:
            refused.append(exc)
        finally:
            tried.set()

    try:
        with anyio.fail_after(10):
            async with anyio.create_task_group() as tg:
                tg.start_soon(closer)
                first = await it.__anext__()
            assert first[0] == str(tmp_path / "t")
            assert len(refused) == 1
            assert "already running" in str(refused[0])
            await it.aclose()
    finally:
        tried.set()
    await wait_for_no_fds_under(tmp_path)


async def test_pruning_everything_stops_the_descent(big: Path) -> None:
    def prune_all(_: Any, dirnames: list[Any]) -> None:
        dirnames.clear()

    assert len(await _async_walk(big, prune_all)) == 1
    assert len(await _async_fwalk(big, prune_all)) == 1
    assert await fds_under(big) == 0


def _error_fields(error: BaseException) -> tuple[Any, ...]:
    assert isinstance(error, OSError)
    return (type(error), error.errno, error.strerror, error.filename, error.filename2, str(error))


@pytest.mark.parametrize("name", ["missing", "f1"])
async def test_onerror_gets_the_os_error(rich: Path, name: str) -> None:
    top = rich / name
    expected: list[BaseException] = []
    await off_loop(lambda: _sync_walk(top, onerror=expected.append))
    got: list[BaseException] = []
    assert await _async_walk(top, onerror=got.append) == []
    assert [_error_fields(e) for e in got] == [_error_fields(e) for e in expected]
    assert len(got) == 1
    assert await _async_walk(top) == []  # no onerror: silently nothing


async def test_fwalk_root_errors_raise_like_os(rich: Path) -> None:
    def sync_error() -> BaseException:
        with pytest.raises(FileNotFoundError) as caught:
            list(os.fwalk(rich / "missing"))
        return caught.value

    expected = await off_loop(sync_error)
    with pytest.raises(FileNotFoundError) as caught:
        await _async_fwalk(rich / "missing")
    assert _error_fields(caught.value) == _error_fields(expected)
    # A file as root: os.fwalk yields nothing.
    assert await _async_fwalk(rich / "f1") == []


async def test_an_error_from_onerror_ends_the_walk(rich: Path) -> None:
    class Stop(Exception):
        pass

    def onerror(error: OSError) -> None:
        raise Stop from error

    it = walk(rich / "missing", onerror=onerror)
    with pytest.raises(Stop):
        await it.__anext__()
    with pytest.raises(StopAsyncIteration):
        await it.__anext__()


async def test_walk_errors_are_raised_where_os_raises_them() -> None:
    it = walk(1.5)  # type: ignore[type-var]
    with pytest.raises(TypeError):  # on first use, like the generator
        await it.__anext__()


async def test_fwalk_with_dir_fd(rich: Path) -> None:
    fd = os.open(rich.parent, os.O_RDONLY)
    try:
        expected = await off_loop(lambda: _sync_fwalk("rich", dir_fd=fd))
        got = []
        async for dirpath, dirnames, filenames, dirfd in fwalk("rich", dir_fd=fd):
            got.append(
                (dirpath, list(dirnames), list(filenames), (await off_loop(os.fstat, dirfd)).st_ino)
            )
        assert got == expected
        assert got[0][0] == "rich"
    finally:
        os.close(fd)


@pytest.mark.parametrize("topdown", [True, False])
async def test_deep_tree(deep: Path, topdown: bool) -> None:
    expected = await off_loop(lambda: _sync_walk(deep, topdown=topdown))
    assert len(expected) == 1501
    assert await _async_walk(deep, topdown=topdown) == expected
    fexpected = await off_loop(lambda: _sync_fwalk(deep, topdown=topdown))
    fgot = await _async_fwalk(deep, topdown=topdown)
    assert [t[:3] for t in fgot] == [t[:3] for t in fexpected]
    assert await fds_under(deep) == 0


async def test_fwalk_closes_its_fds_on_every_exit(big: Path) -> None:
    it = fwalk(big)
    for _ in range(50):
        await it.__anext__()
    assert await fds_under(big) >= 3  # the path down plus read-ahead
    await it.aclose()
    assert await fds_under(big) == 0

    async with fwalk(big, topdown=False) as it:
        await it.__anext__()
    assert await fds_under(big) == 0

    it = fwalk(big)
    await it.__anext__()
    del it
    gc.collect()
    assert await fds_under(big) == 0

    async for _ in fwalk(big):
        pass
    assert await fds_under(big) == 0


async def test_read_ahead_stays_bounded(big: Path) -> None:
    it = walk(big)
    assert isinstance(it, _walk._Walk)
    fit = fwalk(big)
    assert isinstance(fit, _walk._FWalk)
    async for _ in it:
        assert it._cached_names <= _walk._CACHE_ENTRIES + _walk._JOBS * _walk._JOB_ENTRIES
    async for _ in fit:
        assert len(fit._cache) <= _walk._CACHE_FDS + _walk._JOBS * _walk._FJOB_DIRS


@pytest.mark.parametrize("followlinks", [False, True])
async def test_pruned_subtrees_leave_the_read_ahead_cache(big: Path, followlinks: bool) -> None:
    """Listings read ahead for the subdirectories the caller prunes are dropped at once (and
    those still being read when they arrive), with or without ``followlinks``."""
    it = walk(big, followlinks=followlinks)
    assert isinstance(it, _walk._Walk)
    _, dirnames, _ = await it.__anext__()
    assert it._cache  # the job that read the top read on below it
    pruned = [os.path.join(big, name) + os.sep for name in dirnames[1:]]
    del dirnames[1:]
    async for top, _, _ in it:
        assert not top.startswith(tuple(pruned))
        assert not [path for path in it._cache if (path + os.sep).startswith(tuple(pruned))]


@pytest.mark.parametrize("then", BACKENDS)
@pytest.mark.parametrize("first", BACKENDS)
@pytest.mark.parametrize("which", ["walk", "walk reading ahead", "fwalk"])
def test_a_walk_goes_on_under_another_event_loop(
    big: Path,
    which: str,
    first: tuple[str, dict[str, Any]],
    then: tuple[str, dict[str, Any]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Begun under one event loop and finished under another (the first one has ended, its
    read-ahead jobs still running or reported to it): the same sequence as os's."""
    if which == "walk reading ahead":  # jobs read ahead beside the caller, slowly
        _as_if_every_job_read_a_disk(monkeypatch)
        real_list = _blocking_walk._list_for_walk

        def slow(*args: Any) -> Any:
            time.sleep(0.001)
            return real_list(*args)

        monkeypatch.setattr(_walk, "_list_for_walk", slow)
    it = fwalk(big) if which == "fwalk" else walk(big)
    got: list[Any] = []

    async def take(count: int | None) -> None:
        with anyio.fail_after(30):
            while count is None or len(got) < count:
                try:
                    found = await it.__anext__()
                except StopAsyncIteration:
                    return
                got.append(found[:3])

    anyio.run(take, 5, backend=first[0], backend_options=first[1])
    if which == "walk reading ahead":
        assert isinstance(it, _walk._Walk)
        assert it._in_flight  # jobs left behind with the first loop
    anyio.run(take, None, backend=then[0], backend_options=then[1])
    expected = [t[:3] for t in _sync_fwalk(big)] if which == "fwalk" else _sync_walk(big)
    assert got == expected


async def test_warm_jobs_read_the_roots_that_come_next_within_their_budget(
    big: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """From the page cache, a miss starts one job with the needed root and the ones after it;
    a job stops at its budget, and a root it did not reach is read by the next one."""
    roots_per_job: list[int] = []
    real_explore = _walk._explore

    def counting(roots: Any, *args: Any) -> Any:
        roots_per_job.append(len(roots))
        return real_explore(roots, *args)

    monkeypatch.setattr(_walk, "_explore", counting)
    monkeypatch.setattr(_walk, "_JOB_DIRS", 4)
    monkeypatch.setattr(_walk, "_WARM_SCALE", 1)
    monkeypatch.setattr(_walk, "_blocks_read", lambda: 0)  # warm, however loaded the machine
    monkeypatch.setattr(_walk, "_IO_BOUND", float("inf"))
    expected = await off_loop(_sync_walk, big)
    assert await _async_walk(big) == expected
    assert max(roots_per_job) > 1
    assert len(expected) / 4 <= len(roots_per_job) <= len(expected) / 2  # mostly full jobs


def _make_binary(top: Path, depth: int) -> None:
    top.mkdir()
    if depth:
        for name in ("a", "b"):
            _make_binary(top / name, depth - 1)


async def test_past_the_cache_cap_a_job_reads_only_the_needed_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Visiting in another order than the jobs read (reversed dirnames) leaves listings
    waiting at every level of a deep tree; past the cap, the walk reads one directory at a
    time (without that, the cache held 804 names here)."""
    big = tmp_path / "binary"
    await off_loop(_make_binary, big, 11)  # 4,095 directories
    monkeypatch.setattr(_walk, "_CACHE_ENTRIES", 200)
    monkeypatch.setattr(_walk, "_JOB_ENTRIES", 100)
    budget = 100 * _walk._WARM_SCALE + 40  # names: a job stops after the directory that passes it
    peak = 0

    def backwards(_: Any, dirnames: list[Any]) -> None:
        dirnames.reverse()

    it = walk(str(big))
    assert isinstance(it, _walk._Walk)
    expected = await off_loop(_sync_walk, big, backwards)
    got = []
    async for path, dirnames, filenames in it:
        got.append((path, list(dirnames), list(filenames)))
        backwards(path, dirnames)
        peak = max(peak, it._cached_names)
    assert got == expected
    assert peak <= 200 + budget


async def test_a_thousand_random_cancellations_leave_no_fd_open(tmp_path: Path) -> None:
    """Cancel walks and fwalks after a random number of triples or at a random moment."""
    top = await off_loop(_make_big, tmp_path, 6, 2)
    rng = random.Random(6)
    cancelled = 0
    for round_ in range(1000):
        make = fwalk if round_ % 3 else walk
        topdown = rng.random() < 0.5
        if round_ % 2:
            with anyio.move_on_after(rng.uniform(0, 0.002)) as scope:
                async for _ in make(top, topdown=topdown):
                    pass
        else:
            k = rng.randrange(45)
            with anyio.CancelScope() as scope:
                it = make(top, topdown=topdown)
                await cancel_at(it, k, scope)
            del it
        cancelled += scope.cancelled_caught
    assert cancelled >= 450
    await wait_for_no_fds_under(top)  # abandoned walk reads hold no fds; fwalk's may, briefly


UNREADABLE_CHILD = textwrap.dedent(
    """
    import os, sys, anyio
    from aos import blocking
    from aos._async._iter import walk, fwalk
    top = sys.argv[1]
    def sync():
        errors = []
        walked = [(p, sorted(d), sorted(f)) for p, d, f in blocking.walk(top, onerror=errors.append)]
        fwalked = [(p, sorted(d), sorted(f)) for p, d, f, _ in blocking.fwalk(top, onerror=errors.append)]
        return walked, fwalked, [(type(e), e.errno, e.filename) for e in errors]
    async def main():
        errors = []
        walked = [(p, sorted(d), sorted(f)) async for p, d, f in walk(top, onerror=errors.append)]
        fwalked = [(p, sorted(d), sorted(f)) async for p, d, f, _ in fwalk(top, onerror=errors.append)]
        return walked, fwalked, [(type(e), e.errno, e.filename) for e in errors]
    expected = sync()
    assert expected[2], "no permission error: capabilities were not dropped"
    for backend in ("asyncio", "trio"):
        got = anyio.run(main, backend=backend)
        assert got == expected, (backend, got, expected)
    print("ok", len(expected[2]))
    """
)


@pytest.mark.parametrize("needed", [True, False])
async def test_a_job_out_of_fds_leaves_the_directory_unread(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, needed: bool
) -> None:
    """walk: a directory read ahead that finds no fd to spare ends the job, unread, to be read
    when the walk needs it; only the first directory of a job the walk waits for reports it."""
    for name in ("a", "b", "c"):
        await off_loop((tmp_path / name).mkdir)
    short = {str(tmp_path), str(tmp_path / "b")}
    _short_of_fds_for(monkeypatch, short.__contains__)
    roots, budget = ((str(tmp_path), False),), (_walk._JOB_ENTRIES, _walk._JOB_DIRS)
    out, rest, _, stopped_at = await off_loop(_walk._explore, roots, True, False, budget, needed)
    if needed:  # the walk waits for this very directory: its error is the walk's
        assert [path for path, _ in out] == [str(tmp_path)]
        assert isinstance(out[0][1], OSError)
        assert out[0][1].errno == errno.EMFILE
        assert rest == []
        assert stopped_at is None
    else:
        assert out == []
        assert rest == [str(tmp_path)]
        assert stopped_at == str(tmp_path)
    short.discard(str(tmp_path))  # now the top has an fd, b does not
    out, rest, _, stopped_at = await off_loop(_walk._explore, roots, True, False, budget, needed)
    order = [str(tmp_path / name) for name in await off_loop(os.listdir, tmp_path)]
    at = order.index(str(tmp_path / "b"))  # the walk visits them in the directory's order
    assert [path for path, _ in out] == [str(tmp_path), *order[:at]]
    assert rest == order[at:]
    assert stopped_at == str(tmp_path / "b")


async def test_a_needed_directory_out_of_fds_with_no_job_beside_is_read_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """walk, from the page cache: the top found no fd with no other job running; it is read
    once more, and only a second failure would reach onerror."""
    top = str(await off_loop(_make_big, tmp_path, 3, 1))
    failures: list[Any] = []

    def once(path: Any) -> bool:
        if path == top and not failures:
            failures.append(path)
            return True
        return False

    _short_of_fds_for(monkeypatch, once)
    errors: list[OSError] = []
    expected = await off_loop(_sync_walk, top)
    assert await _async_walk(top, onerror=errors.append) == expected
    assert failures == [top]
    assert errors == []


async def test_a_needed_directory_out_of_fds_is_read_again_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """walk: the directory it waits for found no fd while read-ahead jobs ran beside it (they
    may have held them): it is read once more, alone, when no other job runs, and only a second
    failure would reach onerror. Each directory is read (successfully) once."""
    top = str(await off_loop(_make_big, tmp_path, 8, 1))
    needy = os.path.join(top, "d05")
    later = (os.path.join(top, "d06"), os.path.join(top, "d07"))
    real_explore, real_start = _walk._explore, _walk._Walk._start
    budgets: list[tuple[int, int]] = []  # of the jobs the walk started for needy
    starts: list[tuple[int, bool]] = []  # (jobs in flight, alone) as it started them

    def explore(roots: Any, topdown: Any, links: Any, budget: Any, needed: Any, *args: Any) -> Any:
        if needed and roots[0][0] == needy:
            budgets.append(budget)
        return real_explore(roots, topdown, links, budget, needed, *args)

    def recording_start(self: Any, items: Any, needed: bool = False) -> None:
        if needed and _walk._path(items[0]) == needy:
            starts.append((len(self._in_flight), self._alone))
        real_start(self, items, needed)

    def slow_and_short(path: Any) -> bool:
        time.sleep(0.02 if path.startswith(later) else 0.001)  # still read when needy is needed
        return path == needy and len(budgets) < 2  # read ahead or needed, until the retry

    monkeypatch.setattr(_walk, "_explore", explore)
    monkeypatch.setattr(_walk._Walk, "_start", recording_start)
    read = _short_of_fds_for(monkeypatch, slow_and_short)
    _as_if_every_job_read_a_disk(monkeypatch)
    errors: list[OSError] = []
    expected = await off_loop(_sync_walk, top)
    assert await _async_walk(top, onerror=errors.append) == expected
    assert errors == []
    (first_jobs, first_alone), again = starts
    assert first_jobs > 0  # others ran beside the first try...
    assert not first_alone
    assert again == (0, True)  # ...and none beside the second...
    assert budgets[1] == (1, 1)  # ...which read needy alone
    assert sorted(read) == sorted(path for path, _, _ in expected)  # none twice


@pytest.mark.parametrize(
    ("case", "name"),
    [("the walk waits for it", "d03"), ("a root", "d10"), ("left by a job", "d01/e20")],
)
async def test_a_directory_that_found_no_fd_is_read_ahead_once(
    big: Path, monkeypatch: pytest.MonkeyPatch, case: str, name: str
) -> None:
    """walk: a directory read ahead that found no fd (as the root of a job, or inside one) is
    not read ahead again, whether the walk waits for that job or the caller takes its time:
    retried, it would fail again and again while fds are short. The walk reads it itself."""
    needy = os.path.join(big, name)
    real_explore = _walk._explore
    job = threading.local()
    tries: list[Any] = []

    def explore(roots: Any, topdown: Any, links: Any, budget: Any, needed: Any, *args: Any) -> Any:
        job.needed_root = roots[0][0] if needed else None
        return real_explore(roots, topdown, links, budget, needed, *args)

    def short_ahead(path: Any) -> bool:
        if path != needy or job.needed_root == needy:
            return False
        tries.append(path)  # read ahead: no fd for it
        assert len(tries) < 10, "read ahead again and again"  # fails the walk at once
        if case == "the walk waits for it":
            time.sleep(0.05)  # long enough for the walk to get there and wait for this job
        return True

    monkeypatch.setattr(_walk, "_explore", explore)
    read = _short_of_fds_for(monkeypatch, short_ahead)
    _as_if_every_job_read_a_disk(monkeypatch)
    expected = await off_loop(_sync_walk, big)
    got = []
    it = walk(str(big))
    assert isinstance(it, _walk._Walk)
    async for found in it:
        got.append(found)
        if found[0] == needy:
            assert not it._no_fd  # forgotten once the walk reached it
        if len(got) == 2 and case != "the walk waits for it":
            await anyio.sleep(0.2)  # the caller takes its time: jobs read ahead meanwhile
    assert got == expected
    assert sorted(read) == sorted(path for path, _, _ in expected)  # each once
    assert len(tries) == 1


async def test_a_subtree_pruned_while_its_job_finds_no_fd_is_dropped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """walk: the caller prunes X while X's read-ahead job runs, and that job finds no fd for X;
    its arrival drops X (it raised IndexError in the event loop's callback, which ended a trio
    run), and the walk goes on."""
    for name in ("P/X/a", "P/Y/b"):
        await off_loop(functools.partial((tmp_path / name).mkdir, parents=True))
    x, y = str(tmp_path / "P" / "X"), str(tmp_path / "P" / "Y")

    def slow(path: Any) -> bool:
        if path in (x, y):  # X finds no fd while the walk waits for Y
            time.sleep(0.1 if path == x else 0.4)
        return bool(path == x)

    def prune(path: Any, dirnames: list[Any]) -> None:
        if path == str(tmp_path / "P"):
            dirnames.remove("X")  # while X's job runs

    _short_of_fds_for(monkeypatch, slow)
    _as_if_every_job_read_a_disk(monkeypatch)
    monkeypatch.setattr(_walk, "_JOB_DIRS", 2)  # the first job reads the top and P only
    expected = await off_loop(_sync_walk, str(tmp_path), prune)
    with anyio.fail_after(10):
        assert await _async_walk(str(tmp_path), prune) == expected


@pytest.mark.parametrize("disk", [True, False])
async def test_after_a_job_found_no_fd_the_walk_reads_ahead_one_job_at_a_time(
    big: Path, monkeypatch: pytest.MonkeyPatch, disk: bool
) -> None:
    """Parallel jobs short of fds would take turns failing: once one has found no fd, the walk
    starts a job to read ahead only when no other job runs (and still none while directories
    come from the page cache)."""
    real_start = _walk._Walk._start
    peaks = {False: 0, True: 0}  # jobs in flight as one reads ahead, before and after
    starts = 0  # of jobs to read ahead

    def counting_start(self: Any, items: Any, needed: bool = False) -> None:
        nonlocal starts
        real_start(self, items, needed)
        if not needed:
            starts += 1
            peaks[self._short] = max(peaks[self._short], len(self._in_flight))

    short: list[Any] = []

    def once_short(path: Any) -> bool:
        if path.endswith(os.path.join("d20", "e05")) and not short:
            short.append(path)
            return True
        return False

    monkeypatch.setattr(_walk._Walk, "_start", counting_start)
    _short_of_fds_for(monkeypatch, once_short)
    if disk:
        _as_if_every_job_read_a_disk(monkeypatch)
    else:  # warm, however loaded the machine
        monkeypatch.setattr(_walk, "_blocks_read", lambda: 0)
        monkeypatch.setattr(_walk, "_IO_BOUND", float("inf"))
    expected = await off_loop(_sync_walk, big)
    it = walk(str(big))
    assert isinstance(it, _walk._Walk)
    assert [found async for found in it] == expected
    assert it._short  # a job found no fd (the walk read e05 itself)
    if disk:
        assert peaks[False] == _walk._JOBS_IO  # in parallel before...
        assert peaks[True] == 1  # ...alone after
    else:
        assert starts == 0  # the walk read on demand only


@pytest.mark.parametrize("kind", ["walk", "fwalk"])
async def test_a_name_given_twice_is_walked_twice_and_leaks_nothing(
    tmp_path: Path, kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As os.walk and os.fwalk do, a name the caller puts twice in dirnames is entered twice;
    what read-ahead read twice is dropped, its fds closed."""
    top = tmp_path / "top"
    # walk: few enough for read-ahead to look past them to the second "a"; fwalk: more than
    # its first job reads (64), so that the next one reads the second "a" beside the first
    count = 40 if kind == "walk" else 100
    for i in range(count):
        await off_loop(functools.partial((top / "a" / f"b{i:02}").mkdir, parents=True))
        await off_loop((top / "a" / f"b{i:02}" / "f").touch)

    def twice(path: Any, dirnames: list[Any]) -> None:
        if path == str(top):
            dirnames[:] = ["a", "a"]

    if kind == "walk":
        expected = await off_loop(_sync_walk, str(top), twice)
        # Jobs read ahead beside a slow caller: the second "a" is read while what was read of
        # the first waits in the cache.
        _as_if_every_job_read_a_disk(monkeypatch)
        monkeypatch.setattr(_walk, "_DISK_CHECK", 1_000_000)  # the first job reads it all
        it = walk(str(top))
        assert isinstance(it, _walk._Walk)
        got = []
        async for path, dirnames, filenames in it:
            got.append((path, list(dirnames), filenames))
            twice(path, dirnames)
            await anyio.sleep(0.001)
        assert it._cached_names == 0  # what was read twice was counted once, and taken
    else:
        expected = await off_loop(_sync_fwalk, str(top), twice)
        got = await _async_fwalk(str(top), twice)
    assert [t[:3] for t in got] == [t[:3] for t in expected]
    assert len(got) == 1 + 2 * (count + 1)
    await wait_for_no_fds_under(tmp_path)


async def test_fwalk_read_ahead_keeps_within_its_fd_room(
    big: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """However few fds the room allows, fwalk's read-ahead holds no more (the directory it
    needs is read all the same)."""
    monkeypatch.setattr(_walk, "_fd_room", lambda: 8)
    it = fwalk(big)
    assert isinstance(it, _walk._FWalk)
    peak = 0
    async for _ in it:
        peak = max(peak, len(it._cache))
    assert 1 < peak <= 8


FEW_FDS_CHILD = textwrap.dedent(
    """
    import os, resource, sys, anyio
    from aos import blocking
    from aos._async._iter import walk, fwalk
    from tests.conftest import BACKENDS
    top = sys.argv[1]
    [(backend, options)] = [param.values[0] for param in BACKENDS if param.id == sys.argv[2]]
    def sync():
        errors = []
        walked = [(p, d, f) for p, d, f in blocking.walk(top, onerror=errors.append)]
        fwalked = [(p, d, f) for p, d, f, _ in blocking.fwalk(top, onerror=errors.append)]
        return walked, fwalked, errors
    async def main():
        errors = []
        walked = [(p, d, f) async for p, d, f in walk(top, onerror=errors.append)]
        fwalked = [(p, d, f) async for p, d, f, _ in fwalk(top, onerror=errors.append)]
        return walked, fwalked, errors
    anyio.run(main, backend=backend, backend_options=options)  # the loop's own fds, threads
    spare = 12  # os.fwalk holds one fd per level (4 here), and scandir dups one
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(map(int, os.listdir("/proc/self/fd"))) + spare,
                       resource.getrlimit(resource.RLIMIT_NOFILE)[1]))
    expected = sync()
    assert not expected[2], expected[2]
    got = anyio.run(main, backend=backend, backend_options=options)
    assert got == expected, (got[2], len(got[0]), len(expected[0]), len(got[1]), len(expected[1]))
    print("ok", len(expected[0]))
    """
)


@pytest.mark.parametrize("backend", [p.id for p in BACKENDS])
def test_read_ahead_waits_when_the_process_is_short_of_fds(tmp_path: Path, backend: str) -> None:
    """With a dozen fds to spare, enough for os.walk and os.fwalk, the async walks read ahead
    what they can and yield the same, with no error (in a child: the limit is per process)."""
    _make_big(tmp_path, 8, 1)
    assert run_child(FEW_FDS_CHILD, str(tmp_path), backend) == f"ok {1 + 8 + 64}\n"


def test_unreadable_directories_go_to_onerror(tmp_path: Path) -> None:
    """Root bypasses permission bits: run the walks in a child without DAC capabilities."""
    capsh = "/usr/sbin/capsh"
    if not os.path.exists(capsh):
        pytest.skip("capsh is not installed: cannot drop CAP_DAC_OVERRIDE as root")
    top = _make_rich(tmp_path / "rich")
    for locked in ("a/a1", "c"):
        (top / locked).chmod(0)
    tmp_path.chmod(0o755)
    try:
        if os.geteuid() == 0:
            child = shlex.join([sys.executable, "-c", UNREADABLE_CHILD, str(top)])
            cmd = [capsh, "--drop=cap_dac_override,cap_dac_read_search", "--", "-c", child]
        else:
            cmd = [sys.executable, "-c", UNREADABLE_CHILD, str(top)]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False)
    finally:
        for locked in ("a/a1", "c"):
            (top / locked).chmod(0o755)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "ok 4\n"  # two unreadable directories, each walk reports both


async def test_a_replacement_name_inside_a_pruned_subtree_is_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The caller prunes ``a`` while its read-ahead runs and asks for ``a/d000`` instead: the
    stale read-ahead is dropped, the new name is read, and the walk ends like os.walk's."""
    top = tmp_path / "top"
    await off_loop(_make_pruning_tree, top)
    real_explore = _walk._explore
    a_may_finish = threading.Event()
    a_read = threading.Event()

    def slow_a(roots: tuple[tuple[Any, bool], ...], *args: Any) -> Any:
        if any(root == str(top / "a") for root, _ in roots):
            a_read.set()
            a_may_finish.wait(10)  # on a worker: 'a' is still being read when the caller prunes
        return real_explore(roots, *args)

    # Jobs that read from a disk make the walk read ahead beside the caller (as on a cold
    # cache); without that it reads only what it needs, and nothing would be read ahead.
    _as_if_every_job_read_a_disk(monkeypatch)

    def prune(path: Any, dirs: list[Any]) -> None:
        if path == str(top):
            dirs[:] = [os.path.join("a", "d000")]

    expected = await off_loop(_pruned_walk, top, prune)
    monkeypatch.setattr(_walk, "_explore", slow_a)
    got = []
    it = walk(str(top))
    assert isinstance(it, _walk._Walk)
    kept = os.path.join(top, "a", "d000")
    try:
        with anyio.fail_after(20):
            async for path, dirs, _ in it:
                got.append(path)
                prune(path, dirs)
                if path == kept:
                    a_may_finish.set()
                    for _ in range(2000):  # until the job that read 'a' has reported
                        if not it._in_flight:
                            break
                        await anyio.sleep(0.005)
                    # nothing it read of the pruned 'a' was kept, only what the new job read
                    assert [p for p in it._cache if p.startswith(str(top / "a"))] == [
                        p for p in it._cache if p.startswith(kept)
                    ]
    finally:
        a_may_finish.set()
    assert a_read.is_set()  # 'a' was read ahead
    assert got == expected
    assert len(got) == 5  # top, a/d000 and its three subdirectories


def _make_pruning_tree(top: Path) -> None:
    top.mkdir()
    for i in range(_walk._JOB_ENTRIES + 4):  # top alone fills the first job's budget
        (top / f"f{i:05}").touch()
    for i in range(20):
        for j in range(3):
            (top / "a" / f"d{i:03}" / f"e{j}").mkdir(parents=True)
    (top / "b").mkdir()


def _make_grid(top: Path, width: int) -> None:
    for i in range(width):
        for j in range(width):
            (top / f"d{i:02}" / f"e{j:02}").mkdir(parents=True)


def _pruned_walk(top: Path, prune: Callable[[Any, list[Any]], None]) -> list[Any]:
    paths = []
    for path, dirs, _ in os.walk(str(top)):
        paths.append(path)
        prune(path, dirs)
    return paths


async def test_an_abandoned_walk_stops_reading_ahead(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    await off_loop(_make_grid, tmp_path, 40)
    read = []
    real_explore = _walk._explore

    def counting(*args: Any) -> Any:
        out = real_explore(*args)
        read.append(len(out[0]))
        return out

    monkeypatch.setattr(_walk, "_explore", counting)
    _as_if_every_job_read_a_disk(monkeypatch)
    async for _ in walk(str(tmp_path)):
        break  # no aclose: the caller just drops the walk
    gc.collect()
    for _ in range(50):  # let the jobs in flight finish and report
        await anyio.sleep(0.01)
    settled = sum(read)
    for _ in range(20):
        await anyio.sleep(0.01)
    assert len(read) > 1  # it was reading ahead when dropped
    assert sum(read) == settled  # nothing more is read once the walk is gone
    assert settled < (1 + 40 + 40 * 40) / 2  # far from the whole tree


async def test_listings_waiting_in_read_ahead_are_not_tracked_by_the_garbage_collector(
    big: Path,
) -> None:
    """The cache and the stack hold only tuples of strings and paths, so after one look the
    cyclic garbage collector stops tracking them: they do not lengthen its collections, which
    a worker thread may run while holding the GIL the event loop waits for."""
    async with walk(str(big)) as it:
        await it.__anext__()
        await it.__anext__()  # top's subdirectories are on the stack now
        assert isinstance(it, _walk._Walk)
        for _ in range(500):  # until read-ahead has brought a few listings
            if len(it._cache) >= 10:
                break
            await anyio.sleep(0.01)
        gc.collect()
        gc.collect()  # a tuple is untracked once the tuples in it are
        listings = [result for result in it._cache.values() if isinstance(result, tuple)]
        assert len(listings) >= 10
        assert not [listing for listing in listings if gc.is_tracked(listing)]
        assert it._stack
        assert not [item for item in it._stack if gc.is_tracked(item)]


@pytest.mark.parametrize("kind", ["walk", "fwalk"])
async def test_read_ahead_jobs_offer_their_cpu_before_each_directory(
    big: Path, kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """So that an event-loop thread queued on a worker's CPU runs without waiting for the end of
    the worker's time slice (see ``offer_cpu``)."""
    offered = []
    monkeypatch.setattr(_walk, "offer_cpu", lambda: offered.append(1))
    if kind == "walk":
        got = await _async_walk(big)
    else:
        got = await _async_fwalk(big)
    assert len(offered) == len(got)  # each directory is read once, by a job


@pytest.mark.parametrize(("blocks", "waited"), [((0, 0), False), ((10, 18), True)])
async def test_a_job_that_read_blocks_from_a_disk_counts_as_waiting(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    blocks: tuple[int, int],
    waited: bool,
) -> None:
    """Whether a job waited for a disk decides how many jobs run at once: the block reads the
    kernel counted for its thread say it, not its time (which includes waits for the GIL)."""
    await off_loop((tmp_path / "sub").mkdir)
    counts = iter(blocks)
    monkeypatch.setattr(_walk, "_blocks_read", lambda: next(counts))
    out, rest, got, _ = await off_loop(_walk._explore, ((str(tmp_path), False),), True, False)
    assert [path for path, _ in out] == [str(tmp_path), str(tmp_path / "sub")]
    assert rest == []
    assert got is waited


@pytest.mark.parametrize("warm", [True, False])
async def test_a_warm_job_that_reads_from_a_disk_stops_early(
    big: Path, monkeypatch: pytest.MonkeyPatch, warm: bool
) -> None:
    """A long warm job that finds the disk (blocks read) returns after a few directories, so
    that the walk switches to parallel read-ahead; the jobs of that mode read their budget."""
    _as_if_every_job_read_a_disk(monkeypatch)
    budget = (_walk._JOB_ENTRIES * 4, _walk._JOB_DIRS * 4)
    out, _, waited, _ = await off_loop(
        _walk._explore, ((str(big), False),), True, False, budget, True, warm
    )
    assert waited
    assert len(out) == (_walk._DISK_CHECK if warm else 1 + 30 + 900)  # else: the whole tree


async def test_blocks_read_counts_this_threads_reads_from_a_disk(tmp_path: Path) -> None:
    """The real counter: reading a file whose pages were dropped from the page cache."""
    path = tmp_path / "data"

    def write_drop_read() -> tuple[str, int, int]:
        with open("/proc/self/mounts") as mounts:
            points = {fields[1]: fields[2] for fields in map(str.split, mounts)}
        home = max((p for p in points if str(tmp_path).startswith(p.rstrip("/") + "/")), key=len)
        with open(path, "wb") as f:
            f.write(os.urandom(1 << 20))
            f.flush()
            os.fsync(f.fileno())
            os.posix_fadvise(f.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)
        before = _walk._blocks_read()
        with open(path, "rb") as f:
            f.read()
        return points[home], before, _walk._blocks_read()

    fs_type, before, after = await off_loop(write_drop_read)
    if fs_type == "tmpfs":
        pytest.skip("the base temp dir is on tmpfs, whose pages are never dropped")
    assert after > before
