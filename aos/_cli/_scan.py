"""The tree walk the commands share: depth first, iterative, one worker hop per directory, without following links."""

from __future__ import annotations

import os
import stat
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass

import aos
from aos._async._offload import QUERY, call


@dataclass(slots=True)
class Found:
    """One entry of the walk. ``top`` is ``True`` for the path the walk started from."""

    path: str
    parent: str
    depth: int
    is_dir: bool
    st: os.stat_result | None
    top: bool = False

    @property
    def name(self) -> str:
        """The base name as find's ``-name`` sees it, trailing slashes dropped: ``t/`` is ``t``."""
        return os.path.basename(self.path.rstrip("/")) or self.path[:1]


async def scan(
    top: str,
    *,
    want_stat: bool,
    on_error: Callable[[OSError], None],
    max_depth: int | None = None,
) -> AsyncIterator[Found]:
    """Yield ``top`` and then every entry below it (down to ``max_depth``), parents before children.

    Each directory is read whole, with its entries' ``lstat``, in one worker hop (a ``QUERY``:
    a cancelled walk returns at once). ``top`` itself is ``lstat``-ed and its errors propagate (a missing
    path is the caller's to report); errors below it go to ``on_error`` and the walk goes on.
    Symbolic links are never followed. With ``want_stat`` each entry carries its ``lstat``.
    """
    top_st = await aos.lstat(top)
    top_is_dir = stat.S_ISDIR(top_st.st_mode)
    yield Found(top, "", 0, top_is_dir, top_st, top=True)
    if not top_is_dir or max_depth == 0:
        return
    # Depth first in directory order, as du and find go: a subdirectory is walked as soon as it
    # is met, before its later siblings (so a hard link is counted where du counts it).
    stack: list[Iterator[Found]] = []
    listing = await _try_list(top, 1, want_stat, on_error)
    stack.append(iter(listing))
    while stack:
        found = next(stack[-1], None)
        if found is None:
            stack.pop()
            continue
        yield found
        if found.is_dir and (max_depth is None or found.depth < max_depth):
            stack.append(iter(await _try_list(found.path, found.depth + 1, want_stat, on_error)))


async def _try_list(
    directory: str, depth: int, want_stat: bool, on_error: Callable[[OSError], None]
) -> list[Found]:
    try:
        return await _list(directory, depth, want_stat, on_error)
    except OSError as err:
        on_error(err)
        return []


async def _list(
    directory: str, depth: int, want_stat: bool, on_error: Callable[[OSError], None]
) -> list[Found]:
    """The entries of one directory, with their ``lstat`` when wanted (errors skip the entry)."""
    found: list[Found] = []
    for name, is_dir, st in await call(QUERY, None, _read_directory, directory, want_stat):
        if isinstance(st, OSError):  # vanished since it was listed, or unreadable
            on_error(st)
            continue
        found.append(Found(os.path.join(directory, name), directory, depth, is_dir, st))
    return found


def _read_directory(
    directory: str, want_stat: bool
) -> list[tuple[str, bool, os.stat_result | OSError | None]]:
    """In a worker: list ``directory`` and ``lstat`` its entries, all in one hop.

    One hop per directory instead of one per entry made ``aos du -s /usr`` four times faster (24 s to 6 s) than
    ``aos.scandir`` with an awaited ``entry.stat()`` for each entry.
    """
    listing: list[tuple[str, bool, os.stat_result | OSError | None]] = []
    with os.scandir(directory) as entries:
        for entry in entries:
            if not want_stat:
                listing.append((entry.name, entry.is_dir(follow_symlinks=False), None))
                continue
            try:
                st = entry.stat(follow_symlinks=False)
            except OSError as err:
                listing.append((entry.name, False, err))
            else:
                listing.append((entry.name, stat.S_ISDIR(st.st_mode), st))
    return listing
