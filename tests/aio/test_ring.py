"""Calls that io_uring runs: overlapping calls take the ring, and every way off it still works."""

from __future__ import annotations

import asyncio
import ctypes
import errno
import functools
import os
import sys
import threading
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
import pytest

import aos
from aos._async import _completions, _ring_requests, _uring, _workers
from aos._async._offload import MUTATE, QUERY, WAIT, Policy, offload, policy_of, runs_on_ring
from aos._async._workers import FILESYSTEM, Job
from tests.aio._helpers import (
    error_facts,
    loop_factories,
    loop_not_woken,
    off_loop,
    os_error,
    run_child,
    take_route,
    until,
)

pytestmark = [
    pytest.mark.anyio,
    pytest.mark.skipif(not _uring.available(), reason="io_uring is not usable here"),
]


def stat_fields(result: os.stat_result) -> dict[str, object]:
    return {name: getattr(result, name) for name in dir(result) if name.startswith("st_")}


@pytest.fixture
def files(tmp_path: Path) -> list[Path]:
    paths = []
    for i in range(16):
        path = tmp_path / f"f{i}"
        path.write_bytes(b"x" * i)
        paths.append(path)
    os.symlink(paths[0], tmp_path / "link")
    return paths


async def test_overlapping_stats_stay_off_the_ring_and_match_os(
    files: list[Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A worker answers a query sooner than the ring (see aos._async._ring_requests)."""
    # The link is never followed: reading it would set its atime, so os and aos would differ.
    every = [(path, follow) for path in files for follow in (True, False)]
    every.append((tmp_path / "link", False))
    expected = await off_loop(
        lambda: {f"{p}:{f}": stat_fields(os.stat(p, follow_symlinks=f)) for p, f in every}
    )
    # No inline answers, and every loop looks busy: a call with a ring form would take the ring.
    pushed = take_route("ring", monkeypatch)
    got: dict[str, dict[str, object]] = {}

    async def look(path: Path, follow: bool) -> None:
        result = await aos.stat(path, follow_symlinks=follow)
        got[f"{path}:{follow}"] = stat_fields(result)

    async with anyio.create_task_group() as tg:
        for path, follow in every:
            tg.start_soon(look, path, follow)
    assert pushed() == 0
    assert got == expected


async def test_overlapping_mutations_all_happen(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pushed = take_route("worker", monkeypatch)
    names = [f"d{i}" for i in range(40)]
    async with anyio.create_task_group() as tg:
        for name in names:
            tg.start_soon(aos.mkdir, tmp_path / name)
    async with anyio.create_task_group() as tg:
        for name in names:
            tg.start_soon(aos.rename, tmp_path / name, tmp_path / f"renamed-{name}")
    async with anyio.create_task_group() as tg:
        for name in names:
            tg.start_soon(aos.symlink, f"renamed-{name}", tmp_path / f"link-{name}")
    assert pushed() > 0
    listing = sorted(await aos.listdir(tmp_path))
    assert listing == sorted([f"renamed-{n}" for n in names] + [f"link-{n}" for n in names])
    async with anyio.create_task_group() as tg:
        for name in names:
            tg.start_soon(aos.unlink, tmp_path / f"link-{name}")
            tg.start_soon(aos.rmdir, tmp_path / f"renamed-{name}")
    assert await aos.listdir(tmp_path) == []


async def test_errors_from_the_ring_are_the_errors_of_os(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pushed = take_route("ring", monkeypatch)
    calls: list[tuple[str, tuple[object, ...]]] = [
        ("rename", (tmp_path / "missing", tmp_path / "new")),
        ("rename", (str(tmp_path / "missing"), os.fsencode(tmp_path / "new"))),
        ("mkdir", (tmp_path,)),
        ("symlink", ("target", tmp_path)),
        ("rmdir", (os.fsencode(tmp_path / "missing"),)),
        ("unlink", (str(tmp_path / "missing"),)),
    ]
    for name, args in calls:
        kind, expected = await os_error(getattr(os, name), *args)
        with pytest.raises(kind) as caught:
            await getattr(aos, name)(*args)
        assert error_facts(caught.value) == expected, name
    assert pushed() == len(calls)


async def test_a_refused_submission_runs_on_a_worker(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pushed = take_route("ring", monkeypatch)

    def refuse(*args: object) -> int:
        ctypes.set_errno(errno.EAGAIN)
        return -1

    monkeypatch.setattr(_uring, "_enter", refuse)
    await aos.mkdir(tmp_path / "made")
    await aos.symlink("made", tmp_path / "link")
    assert await off_loop(os.readlink, tmp_path / "link") == "made"
    assert (await aos.stat(tmp_path / "link")).st_nlink == 2
    assert pushed() == 2  # both were queued on the ring, withdrawn, and run by a worker


async def test_without_io_uring_every_call_uses_a_worker(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_uring, "_available", False)
    pushed = take_route("ring", monkeypatch)
    # Each test runs on a loop of its own, so this loop's channel has not opened a ring yet.
    await aos.mkdir(tmp_path / "made")
    assert (await aos.lstat(tmp_path / "made")).st_nlink == 2
    await aos.rmdir(tmp_path / "made")
    assert pushed() == 0


def hold_completions(monkeypatch: pytest.MonkeyPatch) -> Callable[[], None]:
    """Keep finished ring operations from their callers until the returned function is called
    (as if the kernel had not posted them yet)."""
    held = True
    reap, has_completions = _uring.Ring.reap, _uring.Ring.has_completions

    def held_reap(self: _uring.Ring, most: int) -> tuple[list[tuple[int, int]], bool]:
        return ([], False) if held else reap(self, most)

    def held_has_completions(self: _uring.Ring) -> bool:
        return False if held else has_completions(self)

    def release() -> None:
        nonlocal held
        held = False

    monkeypatch.setattr(_uring.Ring, "reap", held_reap)
    monkeypatch.setattr(_uring.Ring, "has_completions", held_has_completions)
    return release


async def test_a_wake_up_resumes_at_most_a_batch_of_ring_completions(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """More than DELIVER_BATCH finished operations take several wake-ups, each signalled by
    the drain before it (not by the ring watch, which is off here)."""
    take_route("ring", monkeypatch)
    reaped_per_drain: list[int] = []
    drain = _completions.Channel.drain

    def counting_drain(self: _completions.Channel) -> None:
        in_ring = len(self._in_ring)
        drain(self)
        reaped_per_drain.append(in_ring - len(self._in_ring))

    monkeypatch.setattr(_completions.Channel, "drain", counting_drain)
    channel = _completions.current()  # (the asyncio channel binds its drain when made)
    monkeypatch.setattr(channel, "watch_ring_soon", lambda: None)
    release = hold_completions(monkeypatch)
    names = [f"d{i}" for i in range(3 * _completions.DELIVER_BATCH + 1)]

    def wait_until_all_made() -> None:
        while len(os.listdir(tmp_path)) < len(names):
            time.sleep(0.01)

    async def all_made() -> None:
        await off_loop(wait_until_all_made)
        release()
        os.eventfd_write(channel._fd, 1)

    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            for name in names:
                tg.start_soon(aos.mkdir, tmp_path / name)
            tg.start_soon(all_made)
    batches = [n for n in reaped_per_drain if n]
    assert sum(batches) == len(names)
    assert max(batches) == _completions.DELIVER_BATCH
    assert len(batches) == 4


@pytest.mark.parametrize("route", ["worker", "ring"])
@pytest.mark.parametrize("raising", [3, _completions.DELIVER_BATCH], ids=["in-batch", "batch-end"])
async def test_a_delivery_that_raises_leaves_every_other_delivered_once(
    route: str,
    raising: int,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    anyio_backend_name: str,
) -> None:
    """The finished calls after it are delivered by the next wake-ups, which the drain signals
    itself (no ring watch, no later completion here): the rest of a ring batch goes first,
    and finished calls still in the ring are not forgotten when the batch's last one raised."""
    if anyio_backend_name == "trio":
        pytest.skip("on trio an error in a delivery ends the run (its completion task fails)")
    take_route("ring", monkeypatch)
    loop = asyncio.get_running_loop()
    errors: list[object] = []
    loop.set_exception_handler(lambda _, context: errors.append(context.get("exception")))
    channel = _completions.current()
    monkeypatch.setattr(channel, "watch_ring_soon", lambda: None)
    release = hold_completions(monkeypatch)
    calls = 2 * _completions.DELIVER_BATCH + 3
    delivered: list[Job] = []
    all_delivered = anyio.Event()

    def notify(job: Job) -> None:
        delivered.append(job)
        if len(delivered) == calls:
            all_delivered.set()
        if len(delivered) == raising:
            raise RuntimeError("a delivery failed")

    with loop_not_woken(channel, monkeypatch) as until_finished:
        for i in range(calls):
            if route == "worker":
                job = channel.submit(FILESYSTEM, os.getpid, (), {}, None)
            else:
                path = tmp_path / f"d{i}"
                job = channel.submit(
                    FILESYSTEM, os.mkdir, (path,), {}, None, ring=_ring_requests.mkdir
                )
            job.notify = notify
        if route == "worker":
            await until_finished(calls)
        else:
            channel.flush()
            ring = channel._ring
            assert isinstance(ring, _uring.Ring)
            for _ in range(1000):  # until the kernel has posted every completion
                ring.kick()
                if _posted(ring) == calls:
                    break
                await anyio.sleep(0.01)
    assert delivered == []
    release()
    os.eventfd_write(channel._fd, 1)
    with anyio.fail_after(10):
        await all_delivered.wait()
    assert len(set(delivered)) == calls
    assert [str(e) for e in errors] == ["a delivery failed"]


def _posted(ring: _uring.Ring) -> int:
    """Completions the kernel has posted in ``ring`` and nobody has reaped."""
    rings = ring._rings
    assert rings is not None
    head: int = _uring._U32.unpack_from(rings, ring._cq_head)[0]
    tail: int = _uring._U32.unpack_from(rings, ring._cq_tail)[0]
    return (tail - head) & 0xFFFFFFFF


async def test_a_cancelled_mutation_on_the_ring_returns_only_once_it_has_completed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pushed = take_route("ring", monkeypatch)
    release = hold_completions(monkeypatch)
    released = False

    async def release_later() -> None:
        nonlocal released
        await anyio.sleep(0.1)
        released = True
        release()
        await aos.stat(tmp_path)  # a worker's completion wakes the loop, which reaps the ring

    async with anyio.create_task_group() as tg:
        tg.start_soon(release_later)
        with anyio.move_on_after(0.01) as scope:
            await aos.mkdir(tmp_path / "made")
            assert released  # the cancel waited for the mkdir's completion
            await anyio.lowlevel.checkpoint()  # where the cancel lands
            pytest.fail("the cancel was lost")
    assert scope.cancelled_caught
    assert await off_loop(os.path.isdir, tmp_path / "made")
    assert pushed() == 1


async def test_completions_the_kernel_holds_back_are_fetched_by_the_ring_watch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Seen on Linux 6.18: finished operations whose completions appear only once the ring's
    thread enters io_uring again. The loop, with nothing else to do, must not wait forever."""
    pushed = take_route("ring", monkeypatch)
    held = True  # the eventfd fired, but the completions are not in the CQ until a kick
    reap, kick = _uring.Ring.reap, _uring.Ring.kick
    kicks = 0

    def held_reap(self: _uring.Ring, most: int) -> tuple[list[tuple[int, int]], bool]:
        return ([], False) if held else reap(self, most)

    def counting_kick(self: _uring.Ring) -> bool:
        nonlocal held, kicks
        kicks += 1
        held = False
        return kick(self)

    monkeypatch.setattr(_uring.Ring, "reap", held_reap)
    monkeypatch.setattr(_uring.Ring, "kick", counting_kick)
    names = [f"d{i}" for i in range(16)]
    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            for name in names:
                tg.start_soon(aos.mkdir, tmp_path / name)
    assert sorted(await off_loop(os.listdir, tmp_path)) == sorted(names)
    assert kicks >= 1
    assert pushed() == len(names)


def _gate_closers(monkeypatch: pytest.MonkeyPatch) -> threading.Event:
    """Closer threads wait for the returned event before they wait for their ring (while the
    test holds completions back, they would spin)."""
    gate = threading.Event()
    close_when_done = _completions._close_when_done

    def gated(ring: _uring.Ring) -> None:
        gate.wait(10)
        close_when_done(ring)

    monkeypatch.setattr(_completions, "_close_when_done", gated)
    return gate


def _no_ring_is_closing() -> bool:
    return not _completions._closing_rings


def _send_unawaited_mkdirs(paths: list[Path]) -> Callable[[], Coroutine[Any, Any, None]]:
    """A main that puts ring mkdirs in flight that nobody waits for, and returns: its loop
    ends with them in the ring (as a loop closed with tasks still pending would)."""

    async def main() -> None:
        channel = _completions.current()
        for path in paths:
            channel.submit(FILESYSTEM, os.mkdir, (path,), {}, None, ring=_ring_requests.mkdir)
        channel.flush()

    return main


async def test_a_ring_with_operations_running_is_closed_once_they_have_finished(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, anyio_backend: tuple[str, dict[str, Any]]
) -> None:
    take_route("ring", monkeypatch)
    release = hold_completions(monkeypatch)
    gate = _gate_closers(monkeypatch)
    name, options = anyio_backend
    paths = [tmp_path / f"d{i}" for i in range(8)]
    main = _send_unawaited_mkdirs(paths)
    closing_before = set(_completions._closing_rings)
    # A loop of its own (in a worker thread), which ends while its ring still owes them.
    await off_loop(functools.partial(anyio.run, main, backend=name, backend_options=options))
    (ring,) = _completions._closing_rings - closing_before  # not closed: that would cancel
    assert ring.fd >= 0  # the operations the kernel had not started
    assert ring.in_flight == len(paths)
    release()
    gate.set()
    assert await off_loop(until, _no_ring_is_closing), _completions._closing_rings
    assert ring.fd == -1
    assert ring.in_flight == 0
    assert sorted(await off_loop(os.listdir, tmp_path)) == sorted(p.name for p in paths)


@pytest.mark.parametrize("factory", loop_factories())
def test_mutations_left_pending_by_a_closed_loop_still_happen(
    factory: Callable[[], asyncio.AbstractEventLoop],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """``run_until_complete`` then ``close`` with mkdir tasks still waiting for the ring: the
    next loop's first call closes that channel, and its ring only once the kernel ran them."""
    take_route("ring", monkeypatch)
    release = hold_completions(monkeypatch)  # so that they are surely still owed at the close
    gate = _gate_closers(monkeypatch)
    paths = [tmp_path / f"d{i}" for i in range(16)]

    async def start_mkdirs() -> None:
        for path in paths:
            asyncio.get_running_loop().create_task(aos.mkdir(path))
        await asyncio.sleep(0.01)  # they are sent; the loop stops with them pending

    closing_before = set(_completions._closing_rings)
    closed = factory()
    closed.run_until_complete(start_mkdirs())
    closed.close()
    with asyncio.Runner(loop_factory=factory) as runner:  # a loop that ends properly
        runner.run(aos.stat(tmp_path))
    (ring,) = _completions._closing_rings - closing_before
    assert ring.in_flight == len(paths)
    release()
    gate.set()
    assert until(_no_ring_is_closing), _completions._closing_rings
    assert ring.fd == -1
    assert sorted(os.listdir(tmp_path)) == sorted(p.name for p in paths)
    assert "_guard_until_loop_ends" not in caplog.text  # (the mkdir tasks are reported)


async def test_a_loop_that_ends_closes_its_idle_ring(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, anyio_backend: tuple[str, dict[str, Any]]
) -> None:
    take_route("ring", monkeypatch)
    opened: list[_uring.Ring] = []
    init = _uring.Ring.__init__

    def recording_init(self: _uring.Ring, *args: Any, **kwargs: Any) -> None:
        init(self, *args, **kwargs)
        opened.append(self)

    monkeypatch.setattr(_uring.Ring, "__init__", recording_init)
    name, options = anyio_backend

    async def mkdirs() -> None:
        async with anyio.create_task_group() as tg:
            for i in range(8):
                tg.start_soon(aos.mkdir, tmp_path / f"d{i}")

    await off_loop(functools.partial(anyio.run, mkdirs, backend=name, backend_options=options))
    assert len(opened) == 1
    assert opened[0].fd == -1
    assert not _completions._closing_rings
    assert len(await off_loop(os.listdir, tmp_path)) == 8


def test_only_the_mutations_have_a_ring_form() -> None:
    """A worker answers a query sooner than the ring (see aos._async._ring_requests)."""
    on_ring = {name for name in aos.__all__ if runs_on_ring(getattr(aos, name))}
    assert on_ring == {"mkdir", "unlink", "remove", "rmdir", "symlink", "rename", "replace"}
    assert all(policy_of(getattr(aos, name)) is MUTATE for name in on_ring)


@pytest.mark.parametrize("policy", [QUERY, WAIT])
def test_offload_refuses_a_ring_form_for_a_call_that_is_not_a_mutation(policy: Policy) -> None:
    with pytest.raises(ValueError, match="ring goes with MUTATE"):
        offload(os.stat, policy, ring=_ring_requests.mkdir)


async def test_arguments_os_refuses_get_os_errors_and_leave_nothing_pending(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pushed = take_route("ring", monkeypatch)
    for name, args, kwargs in [
        ("mkdir", (tmp_path / "x",), {"bogus": 1}),
        ("rename", (tmp_path / "x",), {}),
        ("unlink", (tmp_path, 1), {}),
    ]:
        with pytest.raises(TypeError) as ours:
            await getattr(aos, name)(*args, **kwargs)
        assert str(ours.value) == await off_loop(_type_error_of, getattr(os, name), args, kwargs)
    assert _completions.current()._parked == 0  # so the loop can still shut down
    assert pushed() == 0


def _type_error_of(
    fn: Callable[..., object], args: tuple[object, ...], kwargs: dict[str, object]
) -> str:
    try:
        fn(*args, **kwargs)
    except TypeError as error:
        return str(error)
    raise AssertionError("no TypeError")


AUDITED: list[tuple[str, tuple[object, ...]]] | None = None


def _record_audit(event: str, args: tuple[object, ...]) -> None:
    if AUDITED is not None and event.startswith("os."):
        AUDITED.append((event, args))


async def test_ring_calls_raise_the_audit_events_of_os(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    global AUDITED
    sys.addaudithook(_record_audit)  # hooks cannot be removed: this one records only here

    def run_os() -> list[tuple[str, tuple[object, ...]]]:
        global AUDITED
        AUDITED = []
        os.mkdir(tmp_path / "d", 0o750)
        os.symlink("d", str(tmp_path / "l"))
        os.rename(tmp_path / "l", os.fsencode(tmp_path / "m"))
        os.replace(tmp_path / "m", tmp_path / "n")
        os.unlink(tmp_path / "n")
        os.rmdir(tmp_path / "d")
        recorded, AUDITED = AUDITED, None
        return recorded

    expected = await off_loop(run_os)
    pushed = take_route("ring", monkeypatch)
    AUDITED = []
    try:
        await aos.mkdir(tmp_path / "d", 0o750)
        await aos.symlink("d", str(tmp_path / "l"))
        await aos.rename(tmp_path / "l", os.fsencode(tmp_path / "m"))
        await aos.replace(tmp_path / "m", tmp_path / "n")
        await aos.unlink(tmp_path / "n")
        await aos.rmdir(tmp_path / "d")
        got = AUDITED
    finally:
        AUDITED = None
    assert got == expected
    assert pushed() == 6


def test_a_forked_child_opens_a_ring_of_its_own(tmp_path: Path) -> None:
    script = f"""
import os, signal, sys, anyio, trio
import aos
from aos._async import _completions, _uring
from aos._async._completions import Channel

Channel._busy = lambda self: True  # every call with a ring form takes the ring
pushed = []
push = _uring.Ring.push
_uring.Ring.push = lambda self, *args: (pushed.append(self), push(self, *args))[1]

async def in_parent() -> None:
    await aos.mkdir({str(tmp_path / "parent")!r})
    channel = _completions.current()
    ring = channel._ring
    assert ring.fd >= 0
    pid = os.fork()
    if pid == 0:
        signal.alarm(30)  # a child that hangs must not outlive a failed test (the parent's
        code = 1          # timeout kills only the parent)
        try:
            assert ring.fd == -1 and not channel.open  # the parent's ring is not the child's
            trio.run(aos.mkdir, {str(tmp_path / "child")!r})
            assert len(pushed) == 2 and pushed[1] is not ring  # on a ring of its own
            code = 0
        finally:
            os._exit(code)
    _, status = await aos.waitpid(pid, 0)
    assert ring.fd >= 0 and channel.open and channel._ring is ring  # the parent's goes on
    await aos.rmdir({str(tmp_path / "parent")!r})
    sys.exit(os.waitstatus_to_exitcode(status))

anyio.run(in_parent)
"""
    run_child(script)
    assert os.listdir(tmp_path) == ["child"]


def test_a_forked_child_closes_its_copy_of_a_ring_that_is_closing(tmp_path: Path) -> None:
    script = f"""
import os, signal, sys, threading, time, anyio, trio
import aos
from aos._async import _completions, _ring_requests, _uring
from aos._async._completions import Channel
from aos._async._workers import FILESYSTEM

Channel._busy = lambda self: True  # every call with a ring form takes the ring
held = True
reap = _uring.Ring.reap
_uring.Ring.reap = lambda self, most: ([], False) if held else reap(self, most)
gate = threading.Event()  # the closer waits for it (while completions are held, it would spin)
close_when_done = _completions._close_when_done
_completions._close_when_done = lambda ring: (gate.wait(30), close_when_done(ring))

async def send_unawaited() -> None:
    channel = _completions.current()
    for name in ("a", "b", "c"):
        path = os.path.join({str(tmp_path)!r}, name)
        channel.submit(FILESYSTEM, os.mkdir, (path,), {{}}, None, ring=_ring_requests.mkdir)
    channel.flush()

anyio.run(send_unawaited)
(ring,) = _completions._closing_rings  # its thread waits for the operations (held here)
pid = os.fork()
if pid == 0:
    signal.alarm(30)  # a child that hangs must not outlive a failed test (the parent's timeout
    code = 1          # kills only the parent)
    try:
        assert not _completions._closing_rings and ring.fd == -1  # no thread closes it here
        held = False
        trio.run(aos.mkdir, {str(tmp_path / "child")!r})
        code = 0
    finally:
        os._exit(code)
_, status = os.waitpid(pid, 0)
assert _completions._closing_rings == {{ring}} and ring.fd >= 0  # the parent's own goes on
held = False
gate.set()
for _ in range(1000):
    if not _completions._closing_rings:
        break
    time.sleep(0.01)
assert not _completions._closing_rings and ring.fd == -1
sys.exit(os.waitstatus_to_exitcode(status))
"""
    run_child(script)
    assert sorted(os.listdir(tmp_path)) == ["a", "b", "c", "child"]


@pytest.mark.parametrize(
    ("cpus", "limit", "chosen", "expected"),
    [
        (2, 2, False, 1),  # one CPU is left to the loop's thread
        (1, 2, False, 1),  # at least one
        (4, 8, False, 3),
        (16, 8, False, 8),  # never more than the pool's threads
        (2, 5, True, 5),  # the user's choice: for a network filesystem, where they wait
        (2, 1, True, 1),
    ],
)
def test_the_ring_leaves_a_cpu_to_the_loop_unless_told_otherwise(
    cpus: int, limit: int, chosen: bool, expected: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_workers, "_USABLE_CPUS", cpus)
    monkeypatch.setattr(FILESYSTEM, "limit", limit)
    monkeypatch.setattr(FILESYSTEM, "limit_chosen", chosen)
    assert _workers.ring_workers() == expected


_KERNEL_THREADS_SCRIPT = """
import os, sys, threading, time, anyio, aos
from aos._async import _workers

backend, base, cpus, choice = sys.argv[1:]
_workers._USABLE_CPUS = int(cpus)
if choice == "call":
    aos.set_max_workers(3)
elif choice == "default":
    _workers.FILESYSTEM.limit = 8  # (as on an 8-CPU machine; io-wq itself would allow 8 here)
most = 0
done = threading.Event()

def count_kernel_threads() -> None:
    global most
    while not done.is_set():
        seen = 0
        for tid in os.listdir("/proc/self/task"):
            try:
                with open(f"/proc/self/task/{tid}/comm") as f:
                    seen += f.read().startswith("iou-wrk")
            except FileNotFoundError:  # it ended while we looked
                pass
        most = max(most, seen)
        time.sleep(0.0005)

async def main() -> None:
    async def pairs(k: int) -> None:  # in one directory: they wait for each other's lock
        for j in range(20):
            link = f"{base}/{k}-{j}"
            await aos.symlink("target", link)
            await aos.unlink(link)

    for _ in range(5):
        async with anyio.create_task_group() as tg:
            for k in range(64):
                tg.start_soon(pairs, k)

counter = threading.Thread(target=count_kernel_threads)
counter.start()
try:
    anyio.run(main, backend=backend)
finally:
    done.set()
    counter.join()
print(most, _workers.ring_workers(), _workers.FILESYSTEM.limit_chosen)
"""


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
@pytest.mark.parametrize("choice", ["default", "call", "environment"])
def test_the_kernel_runs_ring_operations_on_no_more_threads_than_allowed(
    backend: str, choice: str, tmp_path: Path
) -> None:
    """64 tasks making ``symlink`` + ``unlink`` pairs in one directory, in a child of its own
    (io-wq's threads belong to the thread that submits, and outlive a test's loop). Left to
    itself, io-wq ran them on 5 to 8 threads here; by default, 2 of a 3-CPU process's; when the
    user chose 3 pool threads on 2 CPUs (by ``set_max_workers`` or ``AOS_MAX_WORKERS``), up to
    3 (2 or 3 seen: the operations wait for each other's directory lock, and io-wq adds a
    thread for each that waits)."""
    env = {"AOS_MAX_WORKERS": "3"} if choice == "environment" else {}
    cpus = "3" if choice == "default" else "2"
    with pytest.MonkeyPatch.context() as patch:
        for name, value in env.items():
            patch.setenv(name, value)
        printed = run_child(_KERNEL_THREADS_SCRIPT, backend, str(tmp_path), cpus, choice)
    most, allowed, chosen = printed.split()
    if choice == "default":
        assert 1 <= int(most) <= 2
        assert (int(allowed), chosen) == (2, "False")
    else:
        assert 2 <= int(most) <= 3
        assert (int(allowed), chosen) == (3, "True")
    assert os.listdir(tmp_path) == []
