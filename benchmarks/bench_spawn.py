"""Spawn + wait of ``/bin/true``: aos against its peers, as a multiple of sync ``posix_spawn``.

Each round runs, 300 children each, sequentially and with 16 in flight: sync ``posix_spawn`` +
``waitpid`` (the reference; 16 in flight means: keep 16 children alive, reap with ``os.wait``),
``subprocess.run`` (16 in flight: 16 threads), and on asyncio, uvloop and trio: aos
(``posix_spawn`` + ``waitpid``), asyncio ``create_subprocess_exec``, ``anyio.run_process``,
``trio.run_process``, and as the floor of each loop's own primitives a hand-written inline spawn
whose pidfd is awaited with ``anyio.wait_readable``. A row reports the median over rounds of (time / time of a sync reference
run made just before it, in the same mode). Then the peak thread count while 1,000 children (``cat`` reading a pipe) are awaited.
It also times ``posix_spawn`` itself (how long an inline spawn holds the loop), and measures the
CPU that 16 in flight use (this process's, per child, and the CPUs kept busy).

    python benchmarks/bench_spawn.py [--rounds 5] [--out benchmarks/results]
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import os
import platform
import resource
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import anyio
import trio
import uvloop

import aos

N = 300
IN_FLIGHT = 16
TRUE = "/bin/true"
ARGV = [TRUE]
ENV = dict(os.environ)
BACKENDS: dict[str, tuple[str, dict[str, Any]]] = {
    "asyncio": ("asyncio", {}),
    "uvloop": ("asyncio", {"loop_factory": uvloop.new_event_loop}),
    "trio": ("trio", {}),
}


# --- sync references ----------------------------------------------------------------------


def sync_sequential() -> None:
    for _ in range(N):
        os.waitpid(os.posix_spawn(TRUE, ARGV, ENV), 0)


def sync_in_flight() -> None:
    started = running = 0
    while started < N or running:
        while running < IN_FLIGHT and started < N:
            os.posix_spawn(TRUE, ARGV, ENV)
            started += 1
            running += 1
        os.wait()
        running -= 1


def subprocess_sequential() -> None:
    for _ in range(N):
        subprocess.run(ARGV, check=True)


def subprocess_in_flight() -> None:
    with ThreadPoolExecutor(IN_FLIGHT) as pool:
        list(pool.map(lambda _: subprocess.run(ARGV, check=True), range(N)))


# --- async contenders: one child each -----------------------------------------------------


async def aos_one() -> None:
    pid = await aos.posix_spawn(TRUE, ARGV, ENV)
    await aos.waitpid(pid, 0)


async def pidfd_one() -> None:
    """The floor of the loop's own primitives: an inline spawn, then the pidfd waited on with
    ``anyio.wait_readable`` (the loop's reader registration), then ``waitpid``. Hand-written,
    and not cancel-safe: a cancel during the wait leaves the child unreaped."""
    pid = os.posix_spawn(TRUE, ARGV, ENV)  # noqa: ASYNC221 - inline, as aos spawns alone
    pidfd = os.pidfd_open(pid)
    try:
        await anyio.wait_readable(pidfd)
    finally:
        os.close(pidfd)
    os.waitpid(pid, 0)  # noqa: ASYNC222 - the child has exited: returns at once


async def asyncio_one() -> None:
    proc = await asyncio.create_subprocess_exec(*ARGV)
    await proc.wait()


async def anyio_one() -> None:
    await anyio.run_process(ARGV)


async def trio_one() -> None:
    await trio.run_process(ARGV)


CONTENDERS: dict[str, tuple[Callable[[], Awaitable[None]], set[str]]] = {
    "aos": (aos_one, {"asyncio", "uvloop", "trio"}),
    "pidfd + anyio.wait_readable (no aos)": (pidfd_one, {"asyncio", "uvloop", "trio"}),
    "asyncio create_subprocess_exec": (asyncio_one, {"asyncio", "uvloop"}),
    "anyio.run_process": (anyio_one, {"asyncio", "uvloop", "trio"}),
    "trio.run_process": (trio_one, {"trio"}),
}


async def run_sequential(one: Callable[[], Awaitable[None]]) -> float:
    start = time.perf_counter()
    for _ in range(N):
        await one()
    return time.perf_counter() - start


async def run_in_flight(one: Callable[[], Awaitable[None]]) -> float:
    async def worker(count: int) -> None:
        for _ in range(count):
            await one()

    start = time.perf_counter()
    async with anyio.create_task_group() as tg:
        for i in range(IN_FLIGHT):
            tg.start_soon(worker, N // IN_FLIGHT + (i < N % IN_FLIGHT))
    return time.perf_counter() - start


def timed(fn: Callable[[], None]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def run_async(backend: str, fn: Callable[..., Awaitable[float]], *args: Any) -> float:
    name, options = BACKENDS[backend]
    result: float = anyio.run(fn, *args, backend=name, backend_options=options)
    return result


# --- threads while 1,000 children are awaited ---------------------------------------------


async def peak_threads(kind: str, count: int = 1000) -> int:
    r, w = os.pipe()
    os.set_inheritable(r, True)
    baseline = peak = threading.active_count()
    try:
        async with anyio.create_task_group() as tg:
            for _ in range(count):
                tg.start_soon(_child_that_reads, kind, r)
            for _ in range(50):
                await anyio.sleep(0.02)
                peak = max(peak, threading.active_count())
            os.close(w)
            w = -1
    finally:
        os.close(r)
        if w != -1:
            os.close(w)
    return peak - baseline


async def _child_that_reads(kind: str, r: int) -> None:
    if kind == "aos":
        pid = await aos.posix_spawnp(
            "cat", ["cat"], ENV, file_actions=[(os.POSIX_SPAWN_DUP2, r, 0)]
        )
        await aos.waitpid(pid, 0)
    elif kind == "asyncio":
        proc = await asyncio.create_subprocess_exec("cat", stdin=r)
        await proc.wait()
    elif kind == "anyio":
        await anyio.run_process(["cat"], stdin=r)
    else:
        await trio.run_process(["cat"], stdin=r)


# --- CPU use with 16 in flight --------------------------------------------------------------


def busy_jiffies() -> tuple[int, int]:
    """(busy, total) CPU time of the machine so far, in clock ticks, from ``/proc/stat``."""
    with open("/proc/stat") as f:
        values = [int(v) for v in f.readline().split()[1:9]]
    idle = values[3] + values[4]  # idle, iowait
    return sum(values) - idle, sum(values)


def cpu_use(run: Callable[[], object], runs: int = 5) -> tuple[float, float, float]:
    """Medians over ``runs`` of: wall time per child, this process's CPU time (all its threads,
    not its children) per child, and the CPUs the machine kept busy meanwhile."""
    walls, own, busy = [], [], []
    for _ in range(runs):
        before_busy, before_total = busy_jiffies()
        before = resource.getrusage(resource.RUSAGE_SELF)
        start = time.perf_counter()
        run()
        walls.append((time.perf_counter() - start) / N)
        after = resource.getrusage(resource.RUSAGE_SELF)
        after_busy, after_total = busy_jiffies()
        used = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
        own.append(used / N)
        share = (after_busy - before_busy) / max(1, after_total - before_total)
        busy.append(share * (os.cpu_count() or 1))
    return statistics.median(walls), statistics.median(own), statistics.median(busy)


# --- spawn time (how long an inline posix_spawn holds the loop) ---------------------------


def spawn_times(path: str, argv: list[str], count: int = 200) -> tuple[float, float, float]:
    times = []
    for _ in range(count):
        start = time.perf_counter()
        pid = os.posix_spawn(path, argv, ENV)
        times.append(time.perf_counter() - start)
        os.waitpid(pid, 0)
    times.sort()
    return times[len(times) // 2], times[int(len(times) * 0.99)], times[-1]


SYNC = {"sequential": sync_sequential, "16 in flight": sync_in_flight}
SUBPROCESS = {"sequential": subprocess_sequential, "16 in flight": subprocess_in_flight}
RUNNERS = {"sequential": run_sequential, "16 in flight": run_in_flight}
TARGETS = {"sequential": 1.10, "16 in flight": 1.05}  # aos, as a multiple of sync


def paired(mode: str, sync_abs: dict[str, list[float]], contender: Callable[[], float]) -> float:
    """The contender's time over that of the sync reference run just before it.

    Pairing each measurement with its own reference keeps a change in the machine's load during
    the round (other contenders take up to 13x as long) out of the ratio.
    """
    reference = timed(SYNC[mode])
    sync_abs[mode].append(reference / N)
    return contender() / reference


def cell(name: str, ratios: list[float], target: float) -> str:
    """A table cell: the median ratio; for aos also the range and the target's verdict."""
    median = statistics.median(ratios)
    if name != "aos":
        return f"{median:.2f}"
    verdict = "met" if median <= target else "MISSED"
    return f"{median:.2f} [{min(ratios):.2f}-{max(ratios):.2f}] (<= {target:.2f}: {verdict})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args()

    ratios: dict[tuple[str, str, str], list[float]] = {}
    sync_abs: dict[str, list[float]] = {mode: [] for mode in SYNC}
    for round_ in range(args.rounds):
        for mode, fn in SUBPROCESS.items():
            ratios.setdefault(("subprocess.run", "(threads)", mode), []).append(
                paired(mode, sync_abs, functools.partial(timed, fn))
            )
        for name, (one, backends) in CONTENDERS.items():
            for backend in BACKENDS:
                if backend not in backends:
                    continue
                for mode, runner in RUNNERS.items():
                    ratios.setdefault((name, backend, mode), []).append(
                        paired(mode, sync_abs, functools.partial(run_async, backend, runner, one))
                    )
        print(f"round {round_ + 1}/{args.rounds} done", file=sys.stderr)

    threads = {
        "aos": {b: run_async(b, peak_threads, "aos") for b in BACKENDS},
        "asyncio create_subprocess_exec": {
            b: run_async(b, peak_threads, "asyncio") for b in ("asyncio", "uvloop")
        },
        "anyio.run_process": {b: run_async(b, peak_threads, "anyio") for b in BACKENDS},
        "trio.run_process": {"trio": run_async("trio", peak_threads, "trio")},
    }
    spawn = {p: spawn_times(p, [p]) for p in (TRUE, sys.executable)}
    use = {"sync `posix_spawn` + `os.wait`": cpu_use(sync_in_flight)}
    for name in ("aos", "pidfd + anyio.wait_readable (no aos)"):
        for backend in BACKENDS:
            one = CONTENDERS[name][0]
            use[f"{name}, {backend}"] = cpu_use(
                functools.partial(run_async, backend, run_in_flight, one)
            )

    lines = [
        "# Spawn + wait of `/bin/true`",
        "",
        f"Python {platform.python_version()}, {platform.system()} {platform.release()}, "
        f"{os.cpu_count()} CPUs; {N} children per measurement, median of {args.rounds} rounds. "
        f"Load average over the last minute of the run: {os.getloadavg()[0]:.2f} (the benchmark "
        "itself accounts for about 1); each ratio divides by a run of the sync reference made "
        "just before that contender's run, in the same mode. The aos rows give the range over "
        "rounds in brackets and the target.",
        "",
        "Sync reference per child (median): "
        + ", ".join(f"{m}: {statistics.median(v) * 1e6:.0f} µs" for m, v in sync_abs.items()),
        "",
        "| contender | loop | sequential (x sync) | 16 in flight (x sync) |",
        "|---|---|---:|---:|",
    ]
    for name, backend in dict.fromkeys((n, b) for n, b, _ in ratios):
        cells = [cell(name, ratios[(name, backend, mode)], TARGETS[mode]) for mode in SYNC]
        lines.append(f"| {name} | {backend} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "Threads added (peak minus the count before) while 1,000 children are awaited:",
        "",
        "| contender | " + " | ".join(BACKENDS) + " |",
        "|---|" + "---:|" * len(BACKENDS),
    ]
    for name, per_backend in threads.items():
        cells = [str(per_backend.get(b, "-")) for b in BACKENDS]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "How long `os.posix_spawn` itself takes (it holds the GIL throughout, so it blocks the "
        "loop thread even when run in a worker; aos runs a lone spawn inline, and one among "
        "children in flight through libc without the GIL, on a spawner thread):",
        "",
        "| executable | p50 | p99 | max |",
        "|---|---:|---:|---:|",
    ]
    for path, (p50, p99, worst) in spawn.items():
        lines.append(
            f"| `{path}` | {p50 * 1e6:.0f} µs | {p99 * 1e6:.0f} µs | {worst * 1e6:.0f} µs |"
        )
    lines += [
        "",
        "CPU use with 16 in flight (medians of 5 runs, after the rounds): the time per child, "
        "this process's CPU time per child (all its threads, not the children's), and how many "
        f"of the {os.cpu_count()} CPUs the machine kept busy. A contender that uses more CPU "
        "per child than the sync reference keeps pace with it only by using CPU that the sync "
        "reference leaves idle:",
        "",
        "| 16 in flight | per child | process CPU per child | CPUs busy |",
        "|---|---:|---:|---:|",
    ]
    for name, (wall, own, busy) in use.items():
        lines.append(f"| {name} | {wall * 1e6:.0f} µs | {own * 1e6:.0f} µs | {busy:.2f} |")
    text = "\n".join(lines) + "\n"
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "spawn.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
