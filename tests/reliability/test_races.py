"""Races: a directory swapped for a symlink to outside the tree while ``walk`` (followlinks
False) or ``fwalk`` (follow_symlinks False) walks never makes them yield anything from outside.

The swap happens inside the loop body, between two yields, at every yield position and for
every directory of the tree: the directory is renamed away and a symlink to a directory
outside the tree, holding a file named ``SECRET``, takes its name.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import anyio
import pytest

import aos

DIRS = ("a", "a/a1", "a/a2", "b", "c")
"""The directories of the walked tree, any of which is swapped."""

YIELDS = len(DIRS) + 1
"""Triples a full walk of the tree yields (the root too)."""


def make_tree(base: Path) -> tuple[Path, Path]:
    """A fresh tree and, beside it, the outside directory the symlinks point to."""
    if base.exists():
        shutil.rmtree(base)
    root, outside = base / "tree", base / "outside"
    for d in DIRS:
        (root / d).mkdir(parents=True)
        (root / d / "file").write_text(d)
    outside.mkdir()
    (outside / "SECRET").write_text("outside")
    (outside / "secret_dir").mkdir()
    return root, outside


def swap_for_symlink(directory: Path, target: Path) -> None:
    directory.rename(directory.with_name(directory.name + ".moved"))
    directory.symlink_to(target, target_is_directory=True)


def escaped(names: list[Any]) -> bool:
    return any(os.fsdecode(name) in {"SECRET", "secret_dir"} for name in names)


@pytest.mark.anyio
@pytest.mark.parametrize("topdown", [True, False], ids=["topdown", "bottomup"])
@pytest.mark.parametrize("kind", ["walk", "fwalk"])
async def test_walk_never_escapes_a_tree_whose_directory_becomes_a_symlink(
    tmp_path: Path, kind: str, topdown: bool
) -> None:
    escapes = []
    for at_yield in range(YIELDS):
        for swapped in DIRS:
            root, outside = await anyio.to_thread.run_sync(make_tree, tmp_path / "t")
            outside_id = (await aos.stat(outside)).st_ino
            if kind == "walk":
                it: Any = aos.walk(root, topdown=topdown, followlinks=False)
            else:
                it = aos.fwalk(root, topdown=topdown, follow_symlinks=False)
            n = 0
            async for item in it:
                top, dirnames, filenames = item[:3]
                if escaped(dirnames + filenames) or "outside" in os.fsdecode(top):
                    escapes.append(f"swap {swapped} at yield {at_yield}: {item[:3]}")
                if kind == "fwalk" and (await aos.fstat(item[3])).st_ino == outside_id:
                    escapes.append(f"swap {swapped} at yield {at_yield}: fd of outside")
                if n == at_yield:
                    await anyio.to_thread.run_sync(swap_for_symlink, root / swapped, outside)
                n += 1
    assert not escapes, "\n".join(escapes)


def test_blocking_walk_never_escapes_either(tmp_path: Path) -> None:
    """The same race on :func:`aos.blocking.walk` (top-down)."""
    escapes = []
    for at_yield in range(YIELDS):
        for swapped in DIRS:
            root, outside = make_tree(tmp_path / "t")
            for n, (top, dirnames, filenames) in enumerate(
                aos.blocking.walk(root, followlinks=False)
            ):
                if escaped(dirnames + filenames):
                    escapes.append(f"swap {swapped} at yield {at_yield}: {top}")
                if n == at_yield:
                    swap_for_symlink(root / swapped, outside)
    assert not escapes, "\n".join(escapes)
