"""Walking a directory tree from async code: aos against os.walk and the peers.

Trees (generated once under --root, reused): ``balanced`` (about 100,000 entries, fanout 10,
depth 4), ``deep`` (about 100,000 entries, fanout 2, depth 12), ``wide`` (10 directories of
10,000 files). Contenders, each run inside the event loop next to a ticker that measures the
longest loop stall (the largest lateness of a 1 ms sleep):

- ``os.walk``: the sync baseline, called on the loop (it blocks it: that is the reference);
- ``aos.walk``, ``aos.fwalk``, ``aos.scandir (recursive)``;
- ``anyio.Path.rglob``, ``trio.Path.rglob`` (trio only);
- ``to_thread per dir``: one ``anyio.to_thread.run_sync`` hop per directory.

Warm cache: rounds run back to back, medians reported. Cold cache: the page cache is dropped
(``/proc/sys/vm/drop_caches``, root only) before each timed walk. Memory: peak RSS of a child
process per contender walking the ``--mem-entries`` tree, against a child that only imports.

    python benchmarks/bench_walk.py --rounds 5 > walk-tables.md  # Markdown tables on stdout
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread

import aos  # here, not in a contender: the first walk timed must not include the import

TREES = {"balanced": (10, 4, 8), "deep": (2, 12, 11), "wide": (10, 1, 0)}
WIDE_FILES = 10_000


def make_tree(root: Path, fanout: int, depth: int, files: int, wide_files: int = 0) -> int:
    """Create the tree (once: a marker file says it is complete); returns its entry count."""
    marker = root / ".complete"
    if marker.exists():
        return int(marker.read_text())
    count = 0
    todo = [(root, depth)]
    while todo:
        path, level = todo.pop()
        path.mkdir(parents=True, exist_ok=True)
        nfiles = wide_files if (wide_files and level == 0) else files
        for i in range(nfiles):
            os.close(os.open(path / f"file{i:05d}.txt", os.O_CREAT | os.O_WRONLY, 0o644))
        count += nfiles
        if level:
            for i in range(fanout):
                todo.append((path / f"dir{i:03d}", level - 1))
                count += 1
    marker.write_text(str(count))
    return count


def tree_path(root: Path, name: str) -> Path:
    fanout, depth, files = TREES[name]
    path = root / name
    make_tree(path, fanout, depth, files, WIDE_FILES if name == "wide" else 0)
    return path


# ---------------------------------------------------------------- contenders


async def c_os_walk(top: str) -> int:
    return _count_os_walk(top)


async def c_aos_walk(top: str) -> int:
    return sum([len(d) + len(f) async for _, d, f in aos.walk(top)])


async def c_aos_fwalk(top: str) -> int:
    return sum([len(d) + len(f) async for _, d, f, _ in aos.fwalk(top)])


async def c_aos_scandir(top: str) -> int:
    count = 0
    todo = [top]
    while todo:
        path = todo.pop()
        async with aos.scandir(path) as it:
            async for entry in it:
                count += 1
                if entry.is_dir(follow_symlinks=False):
                    todo.append(entry.path)
    return count


async def c_anyio_rglob(top: str) -> int:
    return len([p async for p in anyio.Path(top).rglob("*")])


async def c_trio_rglob(top: str) -> int:
    import trio

    return len(list(await trio.Path(top).rglob("*")))


def _list_dir(path: str) -> list[tuple[str, bool]]:
    with os.scandir(path) as it:
        return [(e.path, e.is_dir(follow_symlinks=False)) for e in it]


async def c_to_thread(top: str) -> int:
    count = 0
    todo = [top]
    while todo:
        entries = await anyio.to_thread.run_sync(_list_dir, todo.pop())
        count += len(entries)
        todo.extend(p for p, is_dir in entries if is_dir)
    return count


def _count_os_walk(top: str) -> int:
    return sum(len(d) + len(f) for _, d, f in os.walk(top))


async def c_os_walk_thread(top: str) -> int:
    """The whole os.walk in one worker thread: no loop work at all, so its stall is what sharing
    the GIL with one thread that walks costs the loop (the floor for any walk off the loop)."""
    return await anyio.to_thread.run_sync(_count_os_walk, top)


async def c_idle(top: str) -> int:
    """No walk at all, for about as long as os.walk takes: the stall the ticker sees anyway on
    this machine (timer wake-up, the VM's scheduling), the floor of every other row's stall.
    Measured after the rounds, not among them: an idle CPU slowed the walk that came next."""
    await anyio.sleep(IDLE_S)
    return 0


IDLE = "idle (the ticker alone)"
IDLE_S = 0.15

CONTENDERS: dict[str, Callable[[str], Awaitable[int]]] = {
    "os.walk": c_os_walk,
    "os.walk in a thread": c_os_walk_thread,
    "aos.walk": c_aos_walk,
    "aos.fwalk": c_aos_fwalk,
    "aos.scandir (recursive)": c_aos_scandir,
    "anyio.Path.rglob": c_anyio_rglob,
    "trio.Path.rglob": c_trio_rglob,
    "to_thread per dir": c_to_thread,
}


SLOW_PEERS = {"anyio.Path.rglob", "trio.Path.rglob"}  # about 100x os.walk: one round, one tree


def applies(name: str, backend: str, tree: str, round_: int, rounds: int) -> bool:
    """Whether ``name`` runs in this round: the slow peers once, on ``balanced``, in the last
    round (in the first, the tree could still be coming back into the page cache: os.walk took
    979 ms there once, against 130 after, and made anyio.Path.rglob look 18x it, not 140x)."""
    if name == "trio.Path.rglob" and backend != "trio":
        return False
    return name not in SLOW_PEERS or (tree == "balanced" and round_ == rounds - 1)


# ---------------------------------------------------------------- measuring


async def timed(fn: Callable[[str], Awaitable[int]], top: str) -> tuple[float, float, int]:
    """(seconds, longest loop stall in seconds, entries) of one walk, with a 1 ms ticker."""
    stall = 0.0
    done = anyio.Event()

    async def ticker() -> None:
        nonlocal stall
        while not done.is_set():
            before = time.perf_counter()
            await anyio.sleep(0.001)
            stall = max(stall, time.perf_counter() - before - 0.001)

    async with anyio.create_task_group() as tg:
        tg.start_soon(ticker)
        await anyio.sleep(0.01)
        stall = 0.0
        start = time.perf_counter()
        count = await fn(top)
        elapsed = time.perf_counter() - start
        done.set()
    return elapsed, stall, count


def drop_caches() -> bool:
    try:
        os.sync()
        with open("/proc/sys/vm/drop_caches", "w") as f:
            f.write("3\n")
        return True
    except OSError:
        return False


def run_backend(backend: str, tree: str, top: str, rounds: int, cold: bool) -> dict[str, Any]:
    """Medians per contender for one backend and tree (rounds interleaved). ``ratio`` is the
    median over rounds of the contender's time over that of ``os.walk`` in the same round."""
    kwargs: dict[str, Any] = {}
    name = backend
    if backend == "uvloop":
        import uvloop

        name, kwargs = "asyncio", {"loop_factory": uvloop.new_event_loop}
    samples: dict[str, list[tuple[int, float, float, int]]] = {}  # (round, time, stall, entries)

    async def main() -> None:
        for round_ in range(rounds):
            for cname, fn in CONTENDERS.items():
                if not applies(cname, backend, tree, round_, rounds):
                    continue
                if cold:
                    await anyio.to_thread.run_sync(drop_caches)
                samples.setdefault(cname, []).append((round_, *await timed(fn, top)))
        if not cold:  # (a cold round is slow enough to show the floor in its own rows)
            samples[IDLE] = [(round_, *await timed(c_idle, top)) for round_ in range(rounds)]

    anyio.run(main, backend=name, backend_options=kwargs)
    reference = {s[0]: s[1] for s in samples["os.walk"]}
    return {
        cname: {
            "time": statistics.median(s[1] for s in runs),
            "ratio": statistics.median(s[1] / reference[s[0]] for s in runs),
            "stall": statistics.median(s[2] for s in runs),
            "max_stall": max(s[2] for s in runs),
            "entries": runs[0][3],
        }
        for cname, runs in samples.items()
    }


MEM_CHILD = """
import sys, anyio
sys.path.insert(0, {bench!r})
import bench_walk
fn = bench_walk.CONTENDERS.get({name!r})
if fn is not None:  # "none": the cost of the interpreter and the imports alone
    anyio.run(fn, {top!r}, backend={backend!r})
# VmHWM, not ru_maxrss: the latter keeps the forking parent's peak across exec.
print(next(l.split()[1] for l in open("/proc/self/status") if l.startswith("VmHWM:")))
"""


def peak_rss_kib(name: str, top: str, backend: str) -> int:
    code = MEM_CHILD.format(bench=str(Path(__file__).parent), name=name, top=top, backend=backend)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return int(out.stdout.split()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=Path("/tmp/aos-bench-walk"))
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--cold-rounds", type=int, default=2)
    parser.add_argument("--trees", default="balanced,deep,wide")
    parser.add_argument("--backends", default="asyncio,uvloop,trio")
    parser.add_argument("--mem-entries", type=int, default=1_000_000)
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--contenders", default=",".join(CONTENDERS))
    parser.add_argument(
        "--switch-interval",
        type=float,
        default=None,
        help="sys.setswitchinterval for the run (the GIL hand-off bounds the loop stall)",
    )
    args = parser.parse_args()
    if args.switch_interval is not None:
        sys.setswitchinterval(args.switch_interval)
    for name in set(CONTENDERS) - set(args.contenders.split(",")) - {"os.walk"}:
        del CONTENDERS[name]

    results: dict[str, Any] = {"warm": {}, "cold": {}, "memory": {}}
    for tree in args.trees.split(","):
        top = str(tree_path(args.root, tree))
        for backend in args.backends.split(","):
            print(f"warm {tree} {backend}", file=sys.stderr, flush=True)
            results["warm"][f"{tree}/{backend}"] = run_backend(
                backend, tree, top, args.rounds, False
            )
    if args.cold_rounds and drop_caches():
        top = str(tree_path(args.root, "balanced"))
        for backend in args.backends.split(","):
            print(f"cold balanced {backend}", file=sys.stderr, flush=True)
            results["cold"][f"balanced/{backend}"] = run_backend(
                backend, "balanced-cold", top, args.cold_rounds, True
            )
    if args.mem_entries:
        # fanout 10, depth 5, 9 files a directory: 1,111,110 entries (1M-class).
        fanout, depth, files = (10, 5, 9) if args.mem_entries >= 1_000_000 else (10, 4, 9)
        top = args.root / f"mem{depth}"
        results["memory"]["entries"] = make_tree(top, fanout, depth, files)
        for name in ["none", "os.walk", "aos.walk", "aos.fwalk", "to_thread per dir"]:
            print(f"memory {name}", file=sys.stderr, flush=True)
            results["memory"][name] = peak_rss_kib(name, str(top), "asyncio")
    text = json.dumps(results, indent=1)
    if args.json:
        args.json.write_text(text)
    print(render(results, args.rounds, args.cold_rounds))


def render(results: dict[str, Any], rounds: int, cold_rounds: int) -> str:
    """Markdown tables: time, ratio to os.walk in the same round, longest loop stall."""
    lines = []
    for phase, n in (("warm", rounds), ("cold", cold_rounds)):
        for key, runs in results[phase].items():
            if "os.walk" not in runs:
                continue
            lines += [
                f"### {phase} cache, {key} ({runs['os.walk']['entries']:,} entries, median of {n})",
                "",
                "| contender | time (ms) | x os.walk (same round) | longest stall, median (ms) "
                "| worst (ms) |",
                "| --- | ---: | ---: | ---: | ---: |",
            ]
            for name, m in runs.items():
                rounds_note = " (1 round)" if name in SLOW_PEERS else ""
                ratio = "-" if name == IDLE else f"{m['ratio']:.2f}"
                lines.append(
                    f"| {name}{rounds_note} | {m['time'] * 1000:,.0f} | {ratio} "
                    f"| {m['stall'] * 1000:.1f} | {m['max_stall'] * 1000:.1f} |"
                )
            lines.append("")
    mem = results.get("memory") or {}
    if mem:
        none = mem["none"]
        lines += [
            f"### peak RSS walking {mem['entries']:,} entries (asyncio, child process per contender)",
            "",
            "| contender | peak RSS (MiB) | above interpreter + imports (MiB) |",
            "| --- | ---: | ---: |",
        ]
        for name, kib in mem.items():
            if name != "entries":
                lines.append(f"| {name} | {kib / 1024:.1f} | {(kib - none) / 1024:.1f} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
