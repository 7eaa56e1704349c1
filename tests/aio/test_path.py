"""aos.path: the disk queries are awaitable and answer exactly as os.path does."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import aos.path
from aos import blocking


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    (tmp_path / "d").mkdir()
    (tmp_path / "f").write_bytes(b"12345")
    os.symlink("f", tmp_path / "link")
    os.symlink("missing", tmp_path / "dangling")
    os.symlink("loop", tmp_path / "loop")
    return tmp_path.resolve()


@pytest.mark.anyio
async def test_queries_answer_like_os_path(tree: Path) -> None:
    f, d, link, dangling = (str(tree / n) for n in ("f", "d", "link", "dangling"))
    assert await aos.path.exists(link)
    assert not await aos.path.exists(dangling)
    assert await aos.path.lexists(dangling)
    assert await aos.path.isfile(f)
    assert not await aos.path.isfile(d)
    assert await aos.path.isdir(d)
    assert not await aos.path.isdir(f)
    assert await aos.path.islink(link)
    assert not await aos.path.islink(f)
    assert await aos.path.ismount("/")
    assert not await aos.path.ismount(d)
    assert await aos.path.getsize(f) == 5
    assert await aos.path.samefile(f, link)
    assert await aos.path.realpath(link) == f
    assert await aos.path.realpath(os.fsencode(link)) == os.fsencode(f)
    assert await aos.path.abspath("/a/../b") == "/b"
    assert await aos.path.relpath(f, str(tree)) == "f"
    assert await aos.path.expanduser("/no/tilde") == "/no/tilde"


@pytest.mark.anyio
async def test_times_and_open_files(tree: Path) -> None:
    f = str(tree / "f")
    await aos.utime(f, (1_000_000, 2_000_000))
    assert await aos.path.getatime(f) == 1_000_000
    assert await aos.path.getmtime(f) == 2_000_000
    assert await aos.path.getctime(f) > 0
    fd1 = await aos.open(f, os.O_RDONLY)
    fd2 = await aos.open(str(tree / "link"), os.O_RDONLY)
    try:
        assert await aos.path.sameopenfile(fd1, fd2)
    finally:
        await aos.close(fd1)
        await aos.close(fd2)


@pytest.mark.anyio
async def test_errors_are_os_errors(tree: Path) -> None:
    with pytest.raises(FileNotFoundError) as info:
        await aos.path.getsize(str(tree / "missing"))
    assert info.value.filename == str(tree / "missing")
    with pytest.raises(OSError, match=r"Too many levels of symbolic links"):
        await aos.path.realpath(str(tree / "loop"), strict=True)


def test_string_functions_are_os_path() -> None:
    assert aos.path.join is blocking.path.join
    assert aos.path.join("a", "b") == "a/b"
    assert aos.path.splitext("x.tar.gz") == ("x.tar", ".gz")
