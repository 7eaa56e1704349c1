"""Static checks of the async faces' types (mypy and pyright); never run."""

from __future__ import annotations

import os
from typing import assert_type

import aos
import aos.path


async def faces() -> None:
    assert_type(await aos.stat("x"), os.stat_result)
    assert_type(await aos.lstat(b"x"), os.stat_result)
    assert_type(await aos.readlink(b"x"), bytes)
    assert_type(await aos.readlink("x"), str)
    assert_type(await aos.listdir("x"), list[str])
    assert_type(await aos.listdir(b"x"), list[bytes])
    assert_type(await aos.listdir(3), list[str])
    assert_type(await aos.open("x", aos.O_RDONLY), int)
    assert_type(await aos.pipe(), tuple[int, int])
    assert_type(await aos.pread(0, 4, 0), bytes)
    assert_type(await aos.getcwd(), str)
    assert_type(await aos.urandom(8), bytes)
    assert_type(await aos.mkdir("x", 0o700, dir_fd=None), None)
    assert_type(aos.getpid(), int)
    assert_type(aos.fspath(b"x"), bytes)
    assert_type(aos.environ, os._Environ[str])
    assert_type(await aos.path.exists("x"), bool)
    assert_type(await aos.path.getsize("x"), int)
    assert_type(await aos.path.realpath(b"x"), bytes)
    assert_type(await aos.path.abspath("x"), str)
    assert_type(await aos.path.relpath(b"x"), bytes)
    name: str = os.fsdecode(b"a")
    assert_type(aos.path.join(name, "b"), str)


async def wrong_calls() -> None:
    await aos.stat(1.5)  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]
    await aos.mkdir("x", mode="r")  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]
