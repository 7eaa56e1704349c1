"""Cost of one offloaded call: aos against its peers, as a multiple of the sync ``os`` call.

One run measures, on asyncio, uvloop and trio, sequentially and with 64 concurrent callers:
``os.stat`` of a cached file through ``aos.stat`` and each peer, and ``symlink``+``unlink`` pairs
on ext4 and tmpfs. Each round times the sync call and then the async one; a row reports the
median over rounds of (async time per call / sync time per call) of the same round. A heartbeat
task records how late a 1 ms sleep wakes up while async calls run: the longest such stall, and
the 99th percentile (what the longest leaves out: this VM alone stalls a loop for up to a few ms
now and then), and the longest stall beyond the time the loop's thread spent waiting for a CPU
(runnable, not running: ``/proc/thread-self/schedstat``), which is what the loop's own work and
its waits for the GIL add, where the rest is the kernel's scheduling. Garbage collections that
run meanwhile are timed too: a full one stops the loop for as long as it takes to scan the
process's heap (aos's calls make no garbage for it: ``tests/reliability/test_garbage.py``), so
each row also gives the longest collection and the longest stall of a heartbeat during which
none ran.

    python benchmarks/bench_offload.py [--rounds 5] [--out benchmarks]
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import gc
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import anyio.lowlevel
import anyio.to_thread
import uvloop

import aos

CONCURRENCY = 64
SEQ_CALLS = 1500
CONC_CALLS_PER_TASK = 30
FLOOR_WINDOWS = 10  # the idle floor: windows of the heartbeat running alone, per loop...
FLOOR_WINDOW_S = 0.5  # ...each this long
HEARTBEAT_S = 0.001

Op = Callable[[int], Awaitable[object]]  # an async call; its argument is the caller's index
Floor = tuple[float, float, float, float]  # the idle floor of a loop: see idle_floor


@dataclass
class Row:
    backend: str
    workload: str
    call: str
    mode: str
    ratios: list[float] = field(default_factory=list)
    micros: list[float] = field(default_factory=list)
    stall_s: float = 0.0
    stall_p99_s: float = 0.0
    gc_s: float = 0.0  # the longest garbage collection while the row ran
    stall_without_gc_s: float = 0.0  # the longest stall of a heartbeat no collection overlapped
    stall_beyond_cpu_wait_s: float = 0.0  # the longest stall less the thread's wait for a CPU

    @property
    def ratio(self) -> float:
        return statistics.median(self.ratios)

    @property
    def us(self) -> float:
        return statistics.median(self.micros)


@dataclass
class Stalls:
    """What the heartbeat saw since the last :meth:`Heartbeat.take` (seconds)."""

    longest: float = 0.0  # the largest oversleep
    p99: float = 0.0  # its 99th percentile
    longest_gc: float = 0.0  # the longest collection that overlapped a recorded sleep
    longest_without_gc: float = 0.0  # the largest oversleep of a sleep no collection overlapped
    longest_beyond_cpu_wait: float = 0.0  # the largest oversleep less the wait for a CPU in it


class Heartbeat:
    """Sleeps 1 ms in a loop and keeps the oversleep of each sleep begun while ``recording``,
    how long the loop's thread waited for a CPU meanwhile, and the garbage collections."""

    def __init__(self) -> None:
        self.recording = False
        self.epoch = 0  # bumped when the loop is blocked on purpose (the sync baseline)
        # (when the sleep began, its lateness, the thread's time runnable but not running)
        self.beats: list[tuple[float, float, float]] = []
        self.collections: list[tuple[float, float]] = []  # (began, ended)
        self._collecting_since = 0.0

    def _on_collection(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._collecting_since = time.perf_counter()
        else:  # kept if a recorded sleep overlaps it (see take)
            self.collections.append((self._collecting_since, time.perf_counter()))

    async def run(self) -> None:
        gc.callbacks.append(self._on_collection)
        schedstat = os.open("/proc/thread-self/schedstat", os.O_RDONLY)  # the loop's thread
        try:
            await self._beat(schedstat)
        finally:
            os.close(schedstat)
            gc.callbacks.remove(self._on_collection)

    async def _beat(self, schedstat: int) -> None:
        def cpu_wait() -> float:  # the thread's time runnable but not running, so far
            return int(os.pread(schedstat, 100, 0).split()[1]) / 1e9

        while True:
            # A sleep that began while recording counts (one that ends after the round would be
            # lost otherwise), unless the loop was blocked on purpose meanwhile.
            recording, epoch, waited = self.recording, self.epoch, cpu_wait()
            start = time.perf_counter()
            await anyio.sleep(HEARTBEAT_S)
            late = time.perf_counter() - start - HEARTBEAT_S
            if recording and epoch == self.epoch:
                self.beats.append((start, late, cpu_wait() - waited))

    def take(self) -> Stalls:
        """What the recorded sleeps saw since the last take."""
        beats, self.beats = self.beats, []
        collections, self.collections = self.collections, []
        if not beats:
            return Stalls()
        lateness = sorted(late for _, late, _ in beats)

        def overlap(collection: tuple[float, float], beat: tuple[float, float, float]) -> bool:
            (began, ended), (start, late, _) = collection, beat
            return began < start + HEARTBEAT_S + late and ended > start

        overlapping = [c for c in collections if any(overlap(c, beat) for beat in beats)]
        clear = [beat[1] for beat in beats if not any(overlap(c, beat) for c in overlapping)]
        return Stalls(
            longest=lateness[-1],
            p99=lateness[int(len(lateness) * 0.99)],
            longest_gc=max((e - b for b, e in overlapping), default=0.0),
            longest_without_gc=max(clear, default=0.0),
            longest_beyond_cpu_wait=max(late - waited for _, late, waited in beats),
        )


def sync_time(fn: Callable[[int], object], calls: int) -> float:
    """Seconds per call of the sync function, on this thread."""
    start = time.perf_counter()
    for i in range(calls):
        fn(i)
    return (time.perf_counter() - start) / calls


async def async_time(op: Op, mode: str) -> float:
    """Seconds per call: one caller in a row, or 64 callers at once."""
    if mode == "sequential":
        start = time.perf_counter()
        for i in range(SEQ_CALLS):
            await op(i)
        return (time.perf_counter() - start) / SEQ_CALLS

    async def caller(index: int) -> None:
        for i in range(CONC_CALLS_PER_TASK):
            await op(index * CONC_CALLS_PER_TASK + i)

    start = time.perf_counter()
    async with anyio.create_task_group() as tg:
        for index in range(CONCURRENCY):
            tg.start_soon(caller, index)
    return (time.perf_counter() - start) / (CONCURRENCY * CONC_CALLS_PER_TASK)


def stat_ops(backend: str, path: str) -> dict[str, Op]:
    """``aos.stat`` and every peer that runs on this backend."""
    ops: dict[str, Op] = {
        "aos.stat": lambda i: aos.stat(path),
        "anyio.to_thread.run_sync": lambda i: anyio.to_thread.run_sync(os.stat, path),
        "anyio.Path.stat": lambda i: anyio.Path(path).stat(),
    }
    if backend == "trio":
        import trio

        ops["trio.Path.stat"] = lambda i: trio.Path(path).stat()
    else:
        import aiofiles.os  # type: ignore[import-untyped]

        ops["asyncio.to_thread"] = lambda i: asyncio.to_thread(os.stat, path)
        ops["loop.run_in_executor"] = lambda i: asyncio.get_running_loop().run_in_executor(
            None, os.stat, path
        )
        ops["aiofiles.os.stat"] = lambda i: aiofiles.os.stat(path)
    return ops


def symlink_pair(base: str, i: int) -> None:
    link = f"{base}/l{i}"
    os.symlink("target", link)
    os.unlink(link)


async def aos_symlink_pair(base: str, i: int) -> None:
    link = f"{base}/l{i}"
    await aos.symlink("target", link)
    await aos.unlink(link)


async def anyio_symlink_pair(base: str, i: int) -> None:
    link = f"{base}/l{i}"
    await anyio.to_thread.run_sync(os.symlink, "target", link)
    await anyio.to_thread.run_sync(os.unlink, link)


async def measure(
    rows: list[Row],
    beat: Heartbeat,
    backend: str,
    workload: str,
    sync_fn: Callable[[int], object],
    ops: dict[str, Op],
    rounds: int,
) -> None:
    for mode in ("sequential", f"{CONCURRENCY} concurrent"):
        for name, op in ops.items():
            row = Row(backend, workload, name, mode)
            await async_time(op, mode)  # warm up: threads started, caches filled
            for _ in range(rounds):
                beat.epoch += 1
                sync_s = sync_time(sync_fn, SEQ_CALLS)
                beat.epoch += 1
                await anyio.lowlevel.checkpoint()
                beat.recording = True
                async_s = await async_time(op, mode)
                beat.recording = False
                row.ratios.append(async_s / sync_s)
                row.micros.append(async_s * 1e6)
            await anyio.sleep(3 * HEARTBEAT_S)  # the last sleep of the last round ends
            stalls = beat.take()
            row.stall_s, row.stall_p99_s = stalls.longest, stalls.p99
            row.gc_s, row.stall_without_gc_s = stalls.longest_gc, stalls.longest_without_gc
            row.stall_beyond_cpu_wait_s = stalls.longest_beyond_cpu_wait
            rows.append(row)
            print(
                f"{backend:8} {workload:16} {mode:14} {name:26} {row.ratio:6.1f}x  "
                f"{row.us:7.1f} us  stall {row.stall_s * 1e3:5.2f} ms "
                f"(p99 {row.stall_p99_s * 1e3:4.2f}, gc {row.gc_s * 1e3:4.2f}, "
                f"without gc {row.stall_without_gc_s * 1e3:4.2f}, "
                f"beyond CPU wait {row.stall_beyond_cpu_wait_s * 1e3:4.2f})",
                file=sys.stderr,
            )


async def idle_floor(beat: Heartbeat) -> Floor:
    """The stall of the heartbeat alone, nothing else running (what the machine adds): the
    median and the largest, over ``FLOOR_WINDOWS`` windows, of each window's longest stall, the
    largest 99th percentile of a window, and the largest stall beyond the wait for a CPU."""
    await anyio.sleep(0.05)
    beat.take()
    worst: list[float] = []
    p99: list[float] = []
    beyond: list[float] = []
    for _ in range(FLOOR_WINDOWS):
        beat.recording = True
        await anyio.sleep(FLOOR_WINDOW_S)
        beat.recording = False
        await anyio.sleep(3 * HEARTBEAT_S)
        stalls = beat.take()
        worst.append(stalls.longest)
        p99.append(stalls.p99)
        beyond.append(stalls.longest_beyond_cpu_wait)
    return statistics.median(worst), max(worst), max(p99), max(beyond)


async def bench_backend(
    backend: str, rounds: int, dirs: dict[str, str], floors: dict[str, Floor]
) -> list[Row]:
    rows: list[Row] = []
    beat = Heartbeat()
    stat_path = os.path.join(dirs["ext4"], "file")
    async with anyio.create_task_group() as tg:
        tg.start_soon(beat.run)
        floors[backend] = await idle_floor(beat)
        await measure(
            rows,
            beat,
            backend,
            "stat",
            lambda i: os.stat(stat_path),
            stat_ops(backend, stat_path),
            rounds,
        )
        for fs, base in dirs.items():
            await measure(
                rows,
                beat,
                backend,
                f"symlink+unlink {fs}",
                functools.partial(symlink_pair, base),
                {
                    "aos symlink+unlink": functools.partial(aos_symlink_pair, base),
                    "anyio.to_thread pair": functools.partial(anyio_symlink_pair, base),
                },
                max(3, rounds // 2),
            )
        tg.cancel_scope.cancel()
    return rows


BACKENDS: list[tuple[str, str, dict[str, Any]]] = [
    ("asyncio", "asyncio", {}),
    ("uvloop", "asyncio", {"loop_factory": uvloop.new_event_loop}),
    ("trio", "trio", {}),
]


def run_all(rounds: int) -> tuple[list[Row], dict[str, Floor]]:
    """Every row, and each loop's idle floor (seconds)."""
    rows: list[Row] = []
    floors: dict[str, Floor] = {}
    with (
        tempfile.TemporaryDirectory(dir="/tmp") as ext4,
        tempfile.TemporaryDirectory(dir="/dev/shm") as tmpfs,
    ):
        Path(ext4, "file").write_bytes(b"x")
        dirs = {"ext4": ext4, "tmpfs": tmpfs}
        for label, backend, options in BACKENDS:
            for row in anyio.run(
                bench_backend, label, rounds, dirs, floors, backend=backend, backend_options=options
            ):
                rows.append(row)
    return rows, floors


def verdicts(rows: list[Row]) -> dict[tuple[str, str, str], str]:
    """Targets for aos rows: vs anyio.to_thread in the same run and loop, and the stretch goals."""
    by_key = {(r.backend, r.workload, r.mode, r.call): r for r in rows}
    out: dict[tuple[str, str, str], str] = {}
    for r in rows:
        if r.call != "aos.stat":
            continue
        peer = by_key[(r.backend, r.workload, r.mode, "anyio.to_thread.run_sync")]
        rel = r.ratio / peer.ratio
        sequential = r.mode == "sequential"
        limit, stretch = (0.5, 10.0) if sequential else (0.25, 5.0)
        target = "met" if rel <= limit else "MISSED"
        reach = "met" if r.ratio <= stretch else "missed"
        out[(r.backend, r.mode, r.call)] = (
            f"{rel:.2f}x anyio (target <= {limit}: {target}); stretch <= {stretch:g}x sync: {reach}"
        )
    return out


def markdown(rows: list[Row], floors: dict[str, Floor], rounds: int, seconds: float) -> str:
    verdict = verdicts(rows)
    lines = [
        "# Offload cost: aos against its peers",
        "",
        f"Generated by `benchmarks/bench_offload.py --rounds {rounds}` in {seconds:.0f} s on "
        f"Python {platform.python_version()}, {platform.machine()}, {os.cpu_count()} CPUs, "
        f"{platform.system()} {platform.release()}.",
        f"Load average over the last minute of the run: {os.getloadavg()[0]:.2f} (the benchmark "
        "itself accounts for about 1): absolute times vary with load, the ratios (each against "
        "the sync call of the same round) less so.",
        "",
        "Ratio = time per awaited call / time per sync call in the same round (median of rounds). "
        f"Concurrent rows run {CONCURRENCY} callers at once; their time per call is wall time / "
        "calls. Stall = how late a 1 ms heartbeat sleep woke up while the async calls ran: the "
        "latest of all rounds, and the 99th percentile. gc = the longest garbage collection of "
        "the benchmark process while the row ran (a full one scans the whole heap with the loop "
        "stopped; aos's calls leave no garbage for it, see `tests/reliability/test_garbage.py`); "
        "max w/o gc = the latest heartbeat that no collection overlapped; beyond CPU wait = the "
        "largest of (a heartbeat's lateness less the time the loop's thread was runnable but "
        "waited for a CPU meanwhile, from `/proc/thread-self/schedstat`): the part of a stall "
        "that the loop's own work and its waits for the GIL make, the rest being the kernel's "
        "scheduling of the process's threads (workers, io_uring's) and the machine's.",
        "",
        "| loop | workload | mode | call | x sync | us/call | max stall ms | p99 stall ms "
        "| gc ms | max w/o gc ms | beyond CPU wait ms | target |",
        "| --- | --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for r in rows:
        lines.append(
            f"| {r.backend} | {r.workload} | {r.mode} | {r.call} | {r.ratio:.1f} | {r.us:.1f} | "
            f"{r.stall_s * 1e3:.2f} | {r.stall_p99_s * 1e3:.2f} | {r.gc_s * 1e3:.2f} | "
            f"{r.stall_without_gc_s * 1e3:.2f} | {r.stall_beyond_cpu_wait_s * 1e3:.2f} | "
            f"{verdict.get((r.backend, r.mode, r.call), '')} |"
        )
    worst = max(rows, key=lambda r: r.stall_s)
    ours = max((r for r in rows if r.call.startswith("aos")), key=lambda r: r.stall_s)
    ours_p99 = max((r for r in rows if r.call.startswith("aos")), key=lambda r: r.stall_p99_s)
    ours_clear = max(
        (r for r in rows if r.call.startswith("aos")), key=lambda r: r.stall_without_gc_s
    )
    ours_own = max(
        (r for r in rows if r.call.startswith("aos")), key=lambda r: r.stall_beyond_cpu_wait_s
    )
    lines += [
        "",
        f"Longest loop stall while aos calls ran: {ours.stall_s * 1e3:.2f} ms "
        f"({ours.backend}, {ours.workload}, {ours.mode}); "
        f"target < 1 ms: {'met' if ours.stall_s < 1e-3 else 'MISSED'}. "
        f"Longest of any contender: {worst.stall_s * 1e3:.2f} ms "
        f"({worst.backend}, {worst.workload}, {worst.mode}, {worst.call}). "
        f"Largest 99th percentile of an aos row: {ours_p99.stall_p99_s * 1e3:.2f} ms "
        f"({ours_p99.backend}, {ours_p99.workload}, {ours_p99.mode}). "
        f"Longest stall of an aos row that no garbage collection overlapped: "
        f"{ours_clear.stall_without_gc_s * 1e3:.2f} ms ({ours_clear.backend}, "
        f"{ours_clear.workload}, {ours_clear.mode}). "
        f"Longest stall of an aos row beyond its thread's wait for a CPU: "
        f"{ours_own.stall_beyond_cpu_wait_s * 1e3:.2f} ms ({ours_own.backend}, "
        f"{ours_own.workload}, {ours_own.mode}).",
        "",
        f"Idle floor (what this machine adds to every row): the heartbeat alone, nothing else "
        f"running, in {FLOOR_WINDOWS} windows of {FLOOR_WINDOW_S:g} s; the median and the "
        "largest of each window's longest stall, the largest 99th percentile of a window, and "
        "the largest stall beyond the wait for a CPU: "
        + ", ".join(
            f"{backend} {median * 1e3:.2f} / {most * 1e3:.2f} / {p99 * 1e3:.2f} / "
            f"{beyond * 1e3:.2f} ms"
            for backend, (median, most, p99, beyond) in floors.items()
        )
        + ".",
        "",
        "![aos.stat and its peers, as a multiple of sync os.stat](results/offload.png)",
        "",
        "The other benchmarks write their own tables: `results/walk.md` (walking a tree) and "
        "`results/spawn.md` (spawning and waiting for children).",
        "",
    ]
    return "\n".join(lines)


def chart(rows: list[Row], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    stat_rows = [r for r in rows if r.workload == "stat"]
    modes = list(dict.fromkeys(r.mode for r in stat_rows))
    backends = list(dict.fromkeys(r.backend for r in stat_rows))
    calls = list(dict.fromkeys(r.call for r in stat_rows))
    fig, axes = plt.subplots(len(modes), 1, figsize=(11, 4.2 * len(modes)), squeeze=False)
    width = 0.8 / len(calls)
    for ax, mode in zip(axes[:, 0], modes, strict=True):
        for k, call in enumerate(calls):
            xs, ys = [], []
            for b, backend in enumerate(backends):
                match = [
                    r for r in stat_rows if (r.mode, r.backend, r.call) == (mode, backend, call)
                ]
                if match:
                    xs.append(b + (k - (len(calls) - 1) / 2) * width)
                    ys.append(match[0].ratio)
            bars = ax.bar(xs, ys, width, label=call)
            ax.bar_label(bars, fmt="%.0f", fontsize=7)
        ax.set_xticks(range(len(backends)), backends)
        ax.set_ylabel("x sync os.stat (lower is better)")
        ax.set_title(f"os.stat of a cached file, {mode}")
        ax.legend(fontsize=8, ncols=2)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent)
    args = parser.parse_args()
    start = time.perf_counter()
    rows, floors = run_all(args.rounds)
    seconds = time.perf_counter() - start
    (args.out / "results").mkdir(parents=True, exist_ok=True)
    (args.out / "RESULTS.md").write_text(markdown(rows, floors, args.rounds, seconds))
    chart(rows, args.out / "results" / "offload.png")
    print(
        f"wrote {args.out / 'RESULTS.md'} and {args.out / 'results/offload.png'}", file=sys.stderr
    )


if __name__ == "__main__":
    main()
