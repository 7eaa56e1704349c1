"""aos's calls leave no reference cycles behind.

An object in a cycle is freed only by the cyclic garbage collector, and a full collection scans
the whole heap with the loop stopped: in the offload benchmark one took 7.5 ms. Calls that free
everything by reference counting never bring a collection closer.
"""

from __future__ import annotations

import gc
import os
from collections.abc import Awaitable, Callable
from pathlib import Path

import anyio
import pytest

import aos

pytestmark = pytest.mark.anyio

ROUNDS = 50


@pytest.fixture(autouse=True)
def _no_blocking_on_the_loop() -> None:
    """Without blockbuster here (the other tests of these calls have it): its wrappers of the os
    functions run on worker threads too, and every error os raises there gets, as its
    ``__context__``, the error the wrapper caught (no running loop), whose traceback's frames
    lead back to the error: cycles that are blockbuster's, not aos's."""


@pytest.fixture
def place(tmp_path: Path) -> Path:
    """A directory with a few files and a subdirectory."""
    for i in range(5):
        (tmp_path / f"f{i}").write_bytes(b"x")
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "x").write_bytes(b"x")
    return tmp_path


async def stat(place: Path, pipe: tuple[int, int]) -> None:
    await aos.stat(place)  # answered on the loop's thread
    await aos.stat("/proc/self")  # by a worker


async def symlink_unlink(place: Path, pipe: tuple[int, int]) -> None:
    await aos.symlink("target", place / "link")
    await aos.unlink(place / "link")


async def side_by_side_links(place: Path, pipe: tuple[int, int]) -> None:
    """Calls that overlap go to io_uring where the kernel has it, each path in a buffer: here
    paths of many lengths."""

    async def link_unlink(name: str) -> None:
        await aos.symlink("target", place / name)
        await aos.unlink(place / name)

    async with anyio.create_task_group() as tg:
        for i in range(8):
            tg.start_soon(link_unlink, "n" * (1 + 29 * i))


async def open_close(place: Path, pipe: tuple[int, int]) -> None:
    await aos.close(await aos.open(place / "f0", os.O_RDONLY))


async def listdir(place: Path, pipe: tuple[int, int]) -> None:
    await aos.listdir(place)


async def scandir(place: Path, pipe: tuple[int, int]) -> None:
    async with aos.scandir(place) as entries:
        async for entry in entries:
            entry.is_dir()


async def walk(place: Path, pipe: tuple[int, int]) -> None:
    async for _ in aos.walk(place):
        pass


async def pipe_write_read(place: Path, pipe: tuple[int, int]) -> None:
    await aos.write(pipe[1], b"x")
    await aos.read(pipe[0], 1)


async def spawn_wait(place: Path, pipe: tuple[int, int]) -> None:
    pid = await aos.posix_spawn("/bin/true", ["true"], os.environ)
    await aos.waitpid(pid, 0)


async def side_by_side_spawns(place: Path, pipe: tuple[int, int]) -> None:
    """A spawn among children in flight goes through libc on a spawner thread."""
    async with anyio.create_task_group() as tg:
        for _ in range(4):
            tg.start_soon(spawn_wait, place, pipe)


async def failing_calls(place: Path, pipe: tuple[int, int]) -> None:
    """Errors answered inline, by a worker, and by io_uring (beside another call)."""
    await expect_missing(aos.stat, place / "missing")
    await expect_missing(aos.stat, Path("/proc/self/missing"))
    await expect_missing(aos.unlink, place / "missing")
    await expect_missing(aos.listdir, place / "missing")
    with pytest.raises(FileNotFoundError):
        await aos.open(place / "missing", os.O_RDONLY)
    async with anyio.create_task_group() as tg:
        for i in range(4):
            tg.start_soon(expect_missing, aos.rmdir, place / f"missing{i}")


async def walk_errors(place: Path, pipe: tuple[int, int]) -> None:
    """An error a walk hands to ``onerror``, and one fwalk raises (both read on a worker)."""
    errors: list[OSError] = []
    async for _ in aos.walk(place / "missing", onerror=errors.append):
        pass
    assert len(errors) == 1
    with pytest.raises(FileNotFoundError):
        async for _ in aos.fwalk(place / "missing"):
            pass


async def expect_missing(call: Callable[[Path], Awaitable[object]], path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        await call(path)


async def path_exists(place: Path, pipe: tuple[int, int]) -> None:
    await aos.path.exists(place / "f0")


CALLS: dict[str, Callable[[Path, tuple[int, int]], Awaitable[None]]] = {
    f.__name__: f
    for f in (
        stat,
        symlink_unlink,
        side_by_side_links,
        open_close,
        listdir,
        scandir,
        walk,
        pipe_write_read,
        spawn_wait,
        side_by_side_spawns,
        path_exists,
        failing_calls,
        walk_errors,
    )
}


@pytest.mark.parametrize("name", sorted(CALLS))
async def test_calls_leave_no_reference_cycles(
    name: str, place: Path, pipe: tuple[int, int]
) -> None:
    call = CALLS[name]
    for _ in range(3):  # caches, worker threads, the loop's channel
        await call(place, pipe)
    gc.collect()
    gc.disable()
    try:
        for _ in range(ROUNDS):
            await call(place, pipe)
        found = gc.collect()
    finally:
        gc.enable()
    assert found == 0, f"{found} objects in reference cycles after {ROUNDS} rounds of {name}"
