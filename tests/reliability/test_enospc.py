"""Full disk: on a 1 MiB tmpfs, writes raise ENOSPC exactly as os does, every byte a write
acknowledged is there, and data written before stays intact."""

from __future__ import annotations

import errno
import os
import random
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest

import aos
from tests.reliability.conftest import outcome

CHUNK = 65536
KEPT = 256 * 1024


@pytest.fixture
def small_fs(tmp_path: Path) -> Iterator[Path]:
    """A 1 MiB tmpfs mounted under ``tmp_path`` (skipped where mounting is not allowed)."""
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    try:
        result = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mnt)],
            capture_output=True,
            text=True,
            check=False,
        )
    except OSError as error:
        pytest.skip(f"cannot run mount: {error}")
    if result.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs (needs root): {result.stderr.strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", str(mnt)], check=True)


def _write(fd: int, data: bytes, offset: int) -> int:
    return os.write(fd, data)


def _pwrite(fd: int, data: bytes, offset: int) -> int:
    return os.pwrite(fd, data, offset)


def _writev(fd: int, data: bytes, offset: int) -> int:
    half = len(data) // 2
    return os.writev(fd, [data[:half], data[half:]])


async def _awrite(fd: int, data: bytes, offset: int) -> int:
    return await aos.write(fd, data)


async def _apwrite(fd: int, data: bytes, offset: int) -> int:
    return await aos.pwrite(fd, data, offset)


async def _awritev(fd: int, data: bytes, offset: int) -> int:
    half = len(data) // 2
    return await aos.writev(fd, [data[:half], data[half:]])


WRITERS: dict[str, tuple[Callable[..., Any], Callable[..., Any]]] = {
    "write": (_awrite, _write),
    "pwrite": (_apwrite, _pwrite),
    "writev": (_awritev, _writev),
}


async def write_kept_file(path: Path) -> bytes:
    """Write a file of random bytes through aos before the disk fills; return its content."""
    data = random.randbytes(KEPT)
    fd = await aos.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        view = memoryview(data)
        while view:
            view = view[await aos.write(fd, view) :]
    finally:
        await aos.close(fd)
    return data


async def fill(write: Callable[..., Any], fd: int) -> tuple[int, OSError | None]:
    """Write until the disk is full: the bytes acknowledged, and the error that stopped it."""
    written = 0
    for _ in range(64):  # 4 MiB: more than the disk holds
        try:
            written += await write(fd, b"z" * CHUNK, written)
        except OSError as error:
            return written, error
    return written, None


def assert_same_error(got: BaseException, expected: BaseException) -> None:
    assert type(got) is type(expected)
    assert isinstance(got, OSError)
    assert isinstance(expected, OSError)
    assert got.errno == expected.errno == errno.ENOSPC
    assert (got.args, got.filename, got.filename2, str(got)) == (
        expected.args,
        expected.filename,
        expected.filename2,
        str(expected),
    )
    assert got.__cause__ is None
    assert got.__context__ is None


@pytest.mark.anyio
@pytest.mark.parametrize("how", sorted(WRITERS))
async def test_full_disk_raises_enospc_like_os(small_fs: Path, how: str) -> None:
    write, write_sync = WRITERS[how]
    kept = await write_kept_file(small_fs / "kept")

    fd = await aos.open(small_fs / "fill", os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        written, error = await fill(write, fd)
        kind, reference = await anyio.to_thread.run_sync(
            outcome, write_sync, fd, b"z" * CHUNK, written
        )
        assert kind == "raised", "os wrote to the full disk"
        assert error is not None, "aos wrote 4 MiB to a 1 MiB disk"
        assert_same_error(error, reference)
        assert (await aos.fstat(fd)).st_size == written, "acknowledged bytes are missing"
    finally:
        await aos.close(fd)

    fd = await aos.open(small_fs / "kept", os.O_RDONLY)
    try:
        assert await aos.read(fd, 2 * KEPT) == kept
    finally:
        await aos.close(fd)


@pytest.mark.anyio
async def test_fallocate_beyond_the_disk_raises_enospc_like_os(small_fs: Path) -> None:
    kept = await write_kept_file(small_fs / "kept")
    fd = await aos.open(small_fs / "big", os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        try:
            await aos.posix_fallocate(fd, 0, 4 * 1024 * 1024)
        except OSError as caught:
            error = caught
        else:
            pytest.fail("aos allocated 4 MiB on a 1 MiB disk")
        kind, reference = await anyio.to_thread.run_sync(
            outcome, os.posix_fallocate, fd, 0, 4 * 1024 * 1024
        )
        assert kind == "raised"
        assert_same_error(error, reference)
    finally:
        await aos.close(fd)
    fd = await aos.open(small_fs / "kept", os.O_RDONLY)
    try:
        assert await aos.read(fd, 2 * KEPT) == kept
    finally:
        await aos.close(fd)
