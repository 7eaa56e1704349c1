"""An async directory walker: count a tree's directories and files, sum their sizes, name the largest.

``aos.walk`` lists the tree with the semantics of :func:`os.walk`; the files of each directory
are then ``lstat``-ed concurrently, a few at a time, in a task group.

    python examples/walker.py /usr/share --largest 5 --loop trio
"""

from __future__ import annotations

import argparse
import heapq
import os
from dataclasses import dataclass, field

import anyio
from _loop import add_loop_option, run

import aos


@dataclass
class Summary:
    """What the walk found (symbolic links count as files and are not followed)."""

    directories: int = 0
    files: int = 0
    total_bytes: int = 0
    largest: list[tuple[int, str]] = field(default_factory=list)  # (size, path), biggest first


async def main(top: str = ".", largest: int = 5, concurrency: int = 16) -> Summary:
    """Walk ``top`` and print a summary of it; return the summary."""
    summary = Summary()
    limiter = anyio.CapacityLimiter(concurrency)
    sizes: list[tuple[int, str]] = []

    async def measure(path: str) -> None:
        async with limiter:
            try:
                st = await aos.lstat(path)
            except FileNotFoundError:  # removed since it was listed
                return
        summary.files += 1
        summary.total_bytes += st.st_size
        sizes.append((st.st_size, path))

    async for dirpath, _dirnames, filenames in aos.walk(top):
        summary.directories += 1
        async with anyio.create_task_group() as tg:
            for name in filenames:
                tg.start_soon(measure, os.path.join(dirpath, name))
    summary.largest = heapq.nlargest(largest, sizes)
    print(
        f"{summary.directories} directories, {summary.files} files, {summary.total_bytes:,} bytes"
    )
    for size, path in summary.largest:
        print(f"{size:>14,}  {path}")
    return summary


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("top", nargs="?", default=".")
    parser.add_argument(
        "--largest", type=int, default=5, help="how many of the largest files to show"
    )
    add_loop_option(parser)
    args = parser.parse_args()
    run(main, args.top, args.largest, loop=args.loop)
