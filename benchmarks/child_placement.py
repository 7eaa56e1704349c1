"""Where the kernel runs a spawned child, and whether the parent's work overlaps it.

Not a benchmark of aos: a check of the machine the spawn benchmark runs on. A sync
``posix_spawn`` + ``waitpid`` parent sleeps as soon as its child is spawned; an event loop's
thread does some work per child first. Where the kernel runs the child on another CPU, that
work overlaps the child's ``exec``; where it packs both onto one CPU, the work adds to the wall
time. This prints:

- how often the child, just before it exits, runs on the CPU its parent ran on (the child is a
  small C program, built with ``cc``, that reports ``sched_getcpu()``);
- the time per child when the parent computes for a while as the child runs, and when it
  computes for as long after reaping it (blocks of 20 children, alternating, medians of 40).
  Equal times mean the two never ran side by side;
- aos's sequential spawn + wait as a multiple of sync ``posix_spawn`` + ``waitpid`` (blocks of
  10 children, each after a sync block, medians of 60), with the parent pinned to one CPU and
  its children to the same CPU or to another (the parent's affinity is set to the other CPU
  for the spawn, so the child inherits it, in the sync reference too).

    python benchmarks/child_placement.py
"""

from __future__ import annotations

import ctypes
import os
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import anyio

import aos

TRUE = "/bin/true"
ENV = dict(os.environ)
CHILD_C = r"""
#define _GNU_SOURCE
#include <sched.h>
#include <fcntl.h>
#include <unistd.h>
int main(int argc, char **argv) {
    int cpu = sched_getcpu();
    int fd = open(argv[1], O_WRONLY);
    pwrite(fd, &cpu, sizeof cpu, 0);
    return 0;
}
"""


def spin(seconds: float) -> None:
    """Compute (on this thread) for ``seconds``."""
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


def same_cpu_share(child: str, report: str, spin_for: float, count: int = 400) -> float:
    """The share of ``count`` children that ran on the parent's CPU, the parent computing for
    ``spin_for`` seconds after each spawn."""
    sched_getcpu = ctypes.CDLL(None).sched_getcpu
    fd = os.open(report, os.O_RDONLY)
    try:
        same = 0
        for _ in range(count):
            pid = os.posix_spawn(child, [child, report], ENV)
            spin(spin_for)
            parent_cpu = sched_getcpu()
            os.waitpid(pid, 0)
            (child_cpu,) = struct.unpack("i", os.pread(fd, 4, 0))
            same += child_cpu == parent_cpu
    finally:
        os.close(fd)
    return same / count


def time_per_child(spin_for: float, while_child_runs: bool, count: int = 20) -> float:
    """Seconds per spawn + wait of ``/bin/true``, the parent computing for ``spin_for`` seconds
    while the child runs, or after reaping it."""
    start = time.perf_counter()
    for _ in range(count):
        pid = os.posix_spawn(TRUE, [TRUE], ENV)
        if while_child_runs:
            spin(spin_for)
        os.waitpid(pid, 0)
        if not while_child_runs:
            spin(spin_for)
    return (time.perf_counter() - start) / count


def aos_against_sync(backend: str, apart: bool, blocks: int = 60) -> float:
    """aos's spawn + wait over sync's, the children on the parent's CPU or (``apart``) not."""
    cpus = sorted(os.sched_getaffinity(0))
    parent, other = {cpus[0]}, {cpus[1]}
    child = other if apart else parent

    def sync_block() -> None:
        for _ in range(10):
            os.sched_setaffinity(0, child)
            pid = os.posix_spawn(TRUE, [TRUE], ENV)
            os.sched_setaffinity(0, parent)
            os.waitpid(pid, 0)

    async def ratios() -> list[float]:
        found = []
        for _ in range(blocks):
            start = time.perf_counter()
            sync_block()
            reference = time.perf_counter() - start
            start = time.perf_counter()
            for _ in range(10):
                os.sched_setaffinity(0, child)
                pid = await aos.posix_spawn(TRUE, [TRUE], ENV)
                os.sched_setaffinity(0, parent)
                await aos.waitpid(pid, 0)
            found.append((time.perf_counter() - start) / reference)
        return found

    os.sched_setaffinity(0, parent)
    try:
        options: dict[str, object] = {}
        if backend == "uvloop":
            import uvloop

            backend, options = "asyncio", {"loop_factory": uvloop.new_event_loop}
        found: list[float] = anyio.run(ratios, backend=backend, backend_options=options)
    finally:
        os.sched_setaffinity(0, cpus)
    return statistics.median(found)


def main() -> None:
    with tempfile.TemporaryDirectory() as place:
        child, report = str(Path(place, "child")), str(Path(place, "cpu"))
        source = Path(place, "child.c")
        source.write_text(CHILD_C)
        subprocess.run(["cc", "-O2", "-o", child, str(source)], check=True)
        Path(report).write_bytes(bytes(4))
        for spin_for in (0.0, 50e-6):
            share = same_cpu_share(child, report, spin_for)
            print(
                f"parent computing {spin_for * 1e6:3.0f} us after the spawn: "
                f"the child ran on its CPU in {share:.0%} of spawns"
            )
    for spin_for in (0.0, 50e-6, 100e-6, 200e-6):
        during: list[float] = []
        after: list[float] = []
        for i in range(40):
            for times in (during, after) if i % 2 else (after, during):
                times.append(time_per_child(spin_for, while_child_runs=times is during))
        print(
            f"computing {spin_for * 1e6:3.0f} us: per child, while the child runs "
            f"{statistics.median(during) * 1e6:.0f} us, after reaping it "
            f"{statistics.median(after) * 1e6:.0f} us"
        )
    if len(os.sched_getaffinity(0)) < 2:
        print("one CPU: no other CPU to run children on", file=sys.stderr)
        return
    for backend in ("asyncio", "uvloop", "trio"):
        print(
            f"aos spawn + wait on {backend}, x sync: children on the parent's CPU "
            f"{aos_against_sync(backend, apart=False):.2f}, on another CPU "
            f"{aos_against_sync(backend, apart=True):.2f}"
        )


if __name__ == "__main__":
    main()
