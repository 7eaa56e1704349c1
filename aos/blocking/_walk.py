"""Iterative ``walk`` and ``fwalk`` with exactly the semantics of :func:`os.walk` and :func:`os.fwalk`.

Both keep an explicit stack instead of recursing, so trees of any depth walk without
``RecursionError`` (Python 3.11's own ``os.walk`` fails at about 1,000 levels). The order of
the triples, top-down pruning by editing ``dirnames`` in place, ``onerror``, link handling,
``dir_fd`` and ``bytes`` paths are those of the ``os`` versions.
"""

from __future__ import annotations

import os
import stat as _stat
import sys
from collections.abc import Callable, Iterator
from typing import Any, AnyStr, Final, Generic, NamedTuple, overload

__all__ = ["fwalk", "walk"]

OnError = Callable[[OSError], object]
"""The type of the ``onerror`` callback."""

# Python 3.13's shutil.rmtree passes this private marker of os.walk; honour it where it exists.
_SYMLINKS_AS_FILES: Final[object] = getattr(os, "_walk_symlinks_as_files", object())


def walk(
    top: AnyStr | os.PathLike[AnyStr],
    topdown: bool = True,
    onerror: OnError | None = None,
    followlinks: bool = False,
) -> Iterator[tuple[AnyStr, list[AnyStr], list[AnyStr]]]:
    """Directory tree generator, like :func:`os.walk`, without recursion."""
    sys.audit("os.walk", top, topdown, onerror, followlinks)
    # A path to visit, a subdirectory to visit unless it is a link by then, or a finished
    # (dirpath, dirnames, filenames) to yield.
    stack: list[AnyStr | _Subdir[AnyStr] | tuple[AnyStr, list[AnyStr], list[AnyStr]]]
    stack = [os.fspath(top)]
    while stack:
        item = stack.pop()
        if isinstance(item, _Subdir):
            # Checked now, right before listing, not when pushed: a directory swapped for a
            # symlink while the caller handled its siblings is not followed out of the tree.
            if not followlinks and os.path.islink(item.path):
                continue
            item = item.path
        elif isinstance(item, tuple):
            yield item
            continue
        listing = _list_for_walk(item, topdown, onerror, followlinks)
        if listing is None:
            continue
        dirs, nondirs, walk_into = listing
        if topdown:
            yield item, dirs, nondirs
            # dirs is read only now, so the caller's in-place edits prune the walk.
            stack.extend(_Subdir(os.path.join(item, name)) for name in reversed(dirs))
        else:
            stack.append((item, dirs, nondirs))
            stack.extend(reversed(walk_into))


class _Subdir(NamedTuple, Generic[AnyStr]):
    """walk work item: a subdirectory found top-down, to enter unless it is a link by then."""

    path: AnyStr


def _list_for_walk(
    top: AnyStr,
    topdown: bool,
    onerror: OnError | None,
    followlinks: object,
    links: list[bool] | None = None,
) -> tuple[list[AnyStr], list[AnyStr], list[AnyStr]] | None:
    """Read one directory for :func:`walk`: (dirnames, filenames, subdirectory paths to walk
    into bottom-up), or ``None`` after reporting an error to ``onerror``. Bottom-up, ``links``
    (if given) gets, for each dirname in turn, whether it is a symlink the walk does not go
    into."""
    dirs: list[AnyStr] = []
    nondirs: list[AnyStr] = []
    walk_into: list[AnyStr] = []
    try:
        scandir_it = os.scandir(top)
    except OSError as error:
        if onerror is not None:
            onerror(error)
        return None
    as_files = followlinks is _SYMLINKS_AS_FILES
    with scandir_it:
        try:
            # One try around the loop (a walk's per-entry cost is most of a warm walk's): in
            # its body only the catches of is_dir and _is_symlink see an OSError, so what
            # reaches this one is the iterator's.
            for entry in scandir_it:
                try:
                    is_dir = entry.is_dir(follow_symlinks=False) if as_files else entry.is_dir()
                except OSError:
                    is_dir = False
                if not is_dir:
                    nondirs.append(entry.name)
                    continue
                dirs.append(entry.name)
                if not topdown:
                    skipped = not followlinks and _is_symlink(entry)
                    if links is not None:
                        links.append(skipped)
                    if not skipped:
                        walk_into.append(entry.path)
        except OSError as error:
            if onerror is not None:
                onerror(error)
            return None
    return dirs, nondirs, walk_into


def _is_symlink(entry: os.DirEntry[AnyStr]) -> bool:
    try:
        return entry.is_symlink()
    except OSError:
        return False


FwalkTriple = tuple[Any, list[Any], list[Any], int]
"""What fwalk yields: (dirpath, dirnames, filenames, dirfd), str or bytes alike."""


class _Visit(NamedTuple):
    """fwalk work item: open and list ``name`` (relative to ``parent_fd``), known as ``path``."""

    is_root: bool
    parent_fd: int | None
    path: str | bytes
    name: str | bytes
    entry: os.DirEntry[str] | None


class _Close(NamedTuple):
    """fwalk work item: close a directory fd once its subtree is done."""

    fd: int


@overload
def fwalk(
    top: str | os.PathLike[str] = ".",
    topdown: bool = True,
    onerror: OnError | None = None,
    *,
    follow_symlinks: bool = False,
    dir_fd: int | None = None,
) -> Iterator[tuple[str, list[str], list[str], int]]: ...
@overload
def fwalk(
    top: bytes | os.PathLike[bytes],
    topdown: bool = True,
    onerror: OnError | None = None,
    *,
    follow_symlinks: bool = False,
    dir_fd: int | None = None,
) -> Iterator[tuple[bytes, list[bytes], list[bytes], int]]: ...
def fwalk(
    top: str | bytes | os.PathLike[str] | os.PathLike[bytes] = ".",
    topdown: bool = True,
    onerror: OnError | None = None,
    *,
    follow_symlinks: bool = False,
    dir_fd: int | None = None,
) -> Iterator[tuple[Any, list[Any], list[Any], int]]:
    """Directory tree generator yielding directory fds too, like :func:`os.fwalk`.

    Every directory is opened relative to its parent's fd and checked with the
    ``lstat()/open()/fstat()`` trick, so a directory swapped for a symlink mid-walk is never
    entered unless ``follow_symlinks`` is true. All fds are closed on every exit path.
    """
    sys.audit("os.fwalk", top, topdown, onerror, follow_symlinks, dir_fd)
    top = os.fspath(top)
    stack: list[_Visit | _Close | FwalkTriple] = [_Visit(True, dir_fd, top, top, None)]
    try:
        while stack:
            work = stack.pop()
            if isinstance(work, _Close):
                os.close(work.fd)
            elif isinstance(work, _Visit):
                listed = _fwalk_list(stack, work, topdown, onerror, follow_symlinks)
                if listed is None:
                    continue
                found, entries = listed
                if topdown:
                    yield found  # the caller may edit found[1] in place to prune the walk
                else:
                    stack.append(found)
                _push_subdirs(stack, found, entries)
            else:
                yield work
    finally:
        for work in stack:
            if isinstance(work, _Close):
                os.close(work.fd)


def _fwalk_list(
    stack: list[_Visit | _Close | FwalkTriple],
    work: _Visit,
    topdown: bool,
    onerror: OnError | None,
    follow_symlinks: bool,
) -> tuple[FwalkTriple, list[os.DirEntry[str]] | None] | None:
    """Open and list one directory for :func:`fwalk`, pushing the close of its fd on ``stack``.

    Returns the tuple to yield and, bottom-up without following links, the subdirectories'
    entries (whose lstat guards the descent); ``None`` when the directory is skipped.
    """
    try:
        if not follow_symlinks:
            if work.entry is None:
                orig_st = os.stat(work.name, follow_symlinks=False, dir_fd=work.parent_fd)
            else:
                orig_st = work.entry.stat(follow_symlinks=False)
        # O_NONBLOCK: a directory swapped for a FIFO must not hang the open (as in 3.13's os).
        topfd = os.open(work.name, os.O_RDONLY | os.O_NONBLOCK, dir_fd=work.parent_fd)
    except OSError as err:
        if work.is_root:
            raise
        if onerror is not None:
            onerror(err)
        return None
    stack.append(_Close(topfd))
    if not follow_symlinks:
        if work.is_root and not _stat.S_ISDIR(orig_st.st_mode):
            return None
        if not os.path.samestat(orig_st, os.stat(topfd)):
            return None
    isbytes = isinstance(work.path, bytes)
    dirs: list[Any] = []
    nondirs: list[Any] = []
    entries: list[os.DirEntry[str]] | None = None if topdown or follow_symlinks else []
    for entry in os.scandir(topfd):
        name = os.fsencode(entry.name) if isbytes else entry.name
        try:
            if entry.is_dir():
                dirs.append(name)
                if entries is not None:
                    entries.append(entry)
            else:
                nondirs.append(name)
        except OSError:
            if _is_symlink(entry):
                nondirs.append(name)
    return (work.path, dirs, nondirs, topfd), entries


def _push_subdirs(
    stack: list[_Visit | _Close | FwalkTriple],
    found: FwalkTriple,
    entries: list[os.DirEntry[str]] | None,
) -> None:
    """Push a visit of each subdirectory of ``found``, first one on top."""
    path, dirs, _, topfd = found
    prefix = os.path.join(path, path[:0])  # the path with a trailing separator
    if entries is None:
        stack.extend(_Visit(False, topfd, prefix + name, name, None) for name in reversed(dirs))
    else:
        stack.extend(
            _Visit(False, topfd, prefix + name, name, entry)
            for name, entry in zip(reversed(dirs), reversed(entries), strict=True)
        )
