"""Parity: every offloaded name, sync and async, on the same fixture tree, good and bad input.

The names come from the package at run time (every public ``aos`` and ``aos.path`` function
made by ``offload``), so a new offloaded name without a row in :data:`GOOD` fails. Each row
is run with its good input and with every bad input its first argument admits (missing path,
NUL byte, wrong type, name too long, symlink loop, closed fd, negative size), and the
outcomes are compared: the result (normalised where it holds fds or volatile fields), or the
exception's class, ``errno``, ``filename``, ``filename2`` and message; and after a mutation,
the state of the tree.
"""

from __future__ import annotations

import os
import shutil
import stat as st
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest

import aos
import aos.path
from aos import blocking
from aos._async._offload import MUTATE, QUERY, call, policy_of
from tests.aio._helpers import routes_for, take_route

T = TypeVar("T")
Args = tuple[tuple[Any, ...], dict[str, Any]]

HIGH_FD = 700  # fixture fds live here, far from the numbers anything else is handed
FROZEN_TIMES_NS = (4_000_000_000 * 10**9, 1_000_000_000 * 10**9)  # (atime: 2096, mtime: 2001)


class Tree:
    """A small file tree at a fixed path, rebuilt identically for each run, and its fds."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.fds: list[int] = []
        self.cwd = os.getcwd()

    def build(self) -> None:
        shutil.rmtree(self.base, ignore_errors=True)
        (self.base / "d").mkdir(parents=True)
        (self.base / "empty").mkdir()
        (self.base / "d" / "f").write_bytes(b"hello")
        (self.base / "f").write_bytes(b"0123456789")
        os.setxattr(self.base / "f", "user.a", b"1")
        os.symlink("f", self.base / "link")
        os.symlink("missing", self.base / "dangling")
        os.symlink("loop", self.base / "loop")
        # Fixed times, each atime after its mtime and ctime: then no access changes an atime
        # (relatime), and the sync and async runs see the same stat results however far apart.
        for name in (".", "d", "empty", "d/f", "f", "link", "dangling", "loop"):
            os.utime(self.base / name, ns=FROZEN_TIMES_NS, follow_symlinks=False)

    def p(self, name: str) -> str:
        return str(self.base / name)

    def keep(self, fd: int) -> int:
        """Move ``fd`` to the next high number and remember to close it."""
        high = HIGH_FD + len(self.fds)
        os.dup2(fd, high)
        os.close(fd)
        self.fds.append(high)
        return high

    def fd(self, name: str = "f", flags: int = os.O_RDWR) -> int:
        return self.keep(os.open(self.p(name), flags))

    def pipe(self) -> tuple[int, int]:
        r, w = os.pipe()
        return self.keep(r), self.keep(w)

    def eventfd(self, value: int) -> int:
        return self.keep(os.eventfd(value))

    def snapshot(self) -> list[tuple[Any, ...]]:
        """What a mutation may change: names, kinds, sizes, modes, link targets, epoch times."""
        rows: list[tuple[Any, ...]] = []
        for dirpath, dirnames, filenames in os.walk(self.base):
            for name in sorted(dirnames + filenames):
                path = os.path.join(dirpath, name)
                s = os.lstat(path)
                target = os.readlink(path) if st.S_ISLNK(s.st_mode) else None
                mtime = s.st_mtime_ns if s.st_mtime < 1e9 else None  # set by utime, else now
                rows.append((os.path.relpath(path, self.base), s.st_mode, s.st_size, target, mtime))
        return sorted(rows)

    def cleanup(self) -> None:
        os.chdir(self.cwd)
        for fd in self.fds:
            try:
                os.close(fd)
            except OSError:
                pass
        self.fds.clear()


def f_(t: Tree) -> int:
    return t.fd("f")


UID, GID = os.getuid(), os.getgid()

# name -> the good input, built on a fresh tree. The first argument is replaced by each bad input.
GOOD: dict[str, Callable[[Tree], Args]] = {
    # aos._async._fd
    "close": lambda t: ((t.fd(),), {}),
    "closerange": lambda t: ((t.fd(), t.fd() + 1), {}),
    "dup": lambda t: ((t.fd(),), {}),
    "dup2": lambda t: ((t.fd(), t.fd("d/f")), {}),
    "fchmod": lambda t: ((t.fd(), 0o600), {}),
    "fchown": lambda t: ((t.fd(), UID, GID), {}),
    "fdatasync": lambda t: ((t.fd(),), {}),
    "fpathconf": lambda t: ((t.fd(), "PC_NAME_MAX"), {}),
    "fstat": lambda t: ((t.fd(),), {}),
    "fstatvfs": lambda t: ((t.fd(),), {}),
    "fsync": lambda t: ((t.fd(),), {}),
    "ftruncate": lambda t: ((t.fd(), 3), {}),
    "lockf": lambda t: ((t.fd(), os.F_LOCK, 0), {}),
    "lseek": lambda t: ((t.fd(), 2, os.SEEK_SET), {}),
    "open": lambda t: ((t.p("f"), os.O_RDONLY), {}),
    "openpty": lambda t: ((), {}),
    "pipe": lambda t: ((), {}),
    "pipe2": lambda t: ((os.O_CLOEXEC,), {}),
    "posix_fadvise": lambda t: ((t.fd(), 0, 0, os.POSIX_FADV_NORMAL), {}),
    "posix_fallocate": lambda t: ((t.fd(), 0, 100), {}),
    "pread": lambda t: ((t.fd(), 4, 2), {}),
    "preadv": lambda t: ((t.fd(), [bytearray(4)], 1), {}),
    "pwrite": lambda t: ((t.fd(), b"xy", 1), {}),
    "pwritev": lambda t: ((t.fd(), [b"ab", b"cd"], 3), {}),
    "sendfile": lambda t: ((t.fd("d/f"), t.fd(), 0, 5), {}),
    "ttyname": lambda t: ((t.fd(),), {}),
    "copy_file_range": lambda t: ((t.fd(), t.fd("d/f"), 5), {}),
    "splice": lambda t: ((t.fd(), t.pipe()[1], 5), {}),
    "posix_openpt": lambda t: ((os.O_RDWR | os.O_NOCTTY,), {}),
    # aos._async._fd_io (the readiness-aware calls keep the os errors too)
    "read": lambda t: ((t.fd(), 4), {}),
    "write": lambda t: ((t.fd(), b"xy"), {}),
    "readv": lambda t: ((t.fd(), [bytearray(3), bytearray(2)]), {}),
    "writev": lambda t: ((t.fd(), [b"a", b"bc"]), {}),
    # aos._async._files
    "access": lambda t: ((t.p("f"), os.R_OK), {}),
    "stat": lambda t: ((t.p("link"),), {}),
    "lstat": lambda t: ((t.p("link"),), {}),
    "listdir": lambda t: ((t.p(""),), {}),
    "readlink": lambda t: ((t.p("link"),), {}),
    "pathconf": lambda t: ((t.p("f"), "PC_NAME_MAX"), {}),
    "statvfs": lambda t: ((t.p("f"),), {}),
    "getcwd": lambda t: ((), {}),
    "getcwdb": lambda t: ((), {}),
    "chdir": lambda t: ((t.p("d"),), {}),
    "fchdir": lambda t: ((t.fd("d", os.O_RDONLY),), {}),
    "chroot": lambda t: ((t.p("f"),), {}),  # ENOTDIR: never actually change the root
    "chmod": lambda t: ((t.p("f"), 0o640), {}),
    "chown": lambda t: ((t.p("f"), UID, GID), {}),
    "lchown": lambda t: ((t.p("link"), UID, GID), {}),
    "link": lambda t: ((t.p("f"), t.p("new")), {}),
    "symlink": lambda t: (("f", t.p("new")), {}),
    "mkdir": lambda t: ((t.p("new"),), {}),
    "makedirs": lambda t: ((t.p("new/a/b"),), {}),
    "mkfifo": lambda t: ((t.p("fifo"),), {}),
    "mknod": lambda t: ((t.p("node"), 0o600 | st.S_IFIFO), {}),
    "remove": lambda t: ((t.p("f"),), {}),
    "unlink": lambda t: ((t.p("link"),), {}),
    "rmdir": lambda t: ((t.p("empty"),), {}),
    "removedirs": lambda t: ((t.p("empty"),), {}),
    "rename": lambda t: ((t.p("f"), t.p("g")), {}),
    "renames": lambda t: ((t.p("f"), t.p("x/y/g")), {}),
    "replace": lambda t: ((t.p("f"), t.p("d/f")), {}),
    "truncate": lambda t: ((t.p("f"), 3), {}),
    "utime": lambda t: ((t.p("f"), (1, 2)), {}),
    "sync": lambda t: ((), {}),
    "memfd_create": lambda t: (("aos-parity", 0), {}),
    "eventfd": lambda t: ((0,), {}),
    "eventfd_read": lambda t: ((t.eventfd(3),), {}),
    "eventfd_write": lambda t: ((t.eventfd(0), 2), {}),
    "timerfd_create": lambda t: ((1,), {}),  # CLOCK_MONOTONIC
    # aos._async._xattr
    "getxattr": lambda t: ((t.p("f"), "user.a"), {}),
    "listxattr": lambda t: ((t.p("f"),), {}),
    "setxattr": lambda t: ((t.p("f"), "user.b", b"2"), {}),
    "removexattr": lambda t: ((t.p("f"), "user.a"), {}),
    # aos._async._params: initgroups only ever gets bad input (it would change our groups)
    "getgrouplist": lambda t: (("root", 0), {}),
    "getlogin": lambda t: ((), {}),
    "initgroups": lambda t: ((b"\0", 0), {}),
    # aos._async._process (offloaded ones only; hand-written ones have their own tests)
    "system": lambda t: ((f"exit 3 # {t.base}",), {}),
    # aos._async._random
    "urandom": lambda t: ((8,), {}),
    "getrandom": lambda t: ((8, os.GRND_NONBLOCK), {}),
    # aos.path
    "path.exists": lambda t: ((t.p("link"),), {}),
    "path.lexists": lambda t: ((t.p("dangling"),), {}),
    "path.isfile": lambda t: ((t.p("f"),), {}),
    "path.isdir": lambda t: ((t.p("d"),), {}),
    "path.islink": lambda t: ((t.p("link"),), {}),
    "path.ismount": lambda t: ((t.p("d"),), {}),
    "path.getsize": lambda t: ((t.p("f"),), {}),
    "path.getmtime": lambda t: ((t.p("f"),), {}),
    "path.getatime": lambda t: ((t.p("f"),), {}),
    "path.getctime": lambda t: ((t.p("f"),), {}),
    "path.samefile": lambda t: ((t.p("f"), t.p("link")), {}),
    "path.sameopenfile": lambda t: ((t.fd(), t.fd("link")), {}),
    "path.realpath": lambda t: ((t.p("link"),), {}),
    "path.abspath": lambda t: (("d/f",), {}),
    "path.relpath": lambda t: ((t.p("d/f"), t.p("")), {}),
    "path.expanduser": lambda t: (("~root/x",), {}),
}

# Names whose first argument is an fd (the rest take a path, or nothing, or a number).
FD_FIRST = {
    "close", "closerange", "dup", "dup2", "fchmod", "fchown", "fdatasync", "fpathconf", "fstat",
    "fstatvfs", "fsync", "ftruncate", "lockf", "lseek", "posix_fadvise", "posix_fallocate",
    "pread", "preadv", "pwrite", "pwritev", "sendfile", "ttyname", "copy_file_range", "splice",
    "fchdir", "eventfd_read", "eventfd_write", "path.sameopenfile", "read", "write", "readv",
    "writev",
}  # fmt: skip
NO_PATH_FIRST = {
    "openpty", "pipe", "pipe2", "posix_openpt", "getcwd", "getcwdb", "sync", "memfd_create",
    "eventfd", "timerfd_create", "getgrouplist", "getlogin", "initgroups", "urandom", "getrandom",
    "system", "path.abspath", "path.expanduser",
}  # fmt: skip

# name -> where a negative size goes: (argument index, value).
NEGATIVE: dict[str, tuple[int, int]] = {
    "truncate": (1, -1),
    "read": (1, -1),
    "ftruncate": (1, -1),
    "pread": (1, -1),
    "posix_fallocate": (2, -1),
    "lseek": (1, -1),
    "sendfile": (3, -1),
    "copy_file_range": (2, -1),
    "splice": (2, -1),
    "urandom": (0, -1),
    "getrandom": (0, -1),
    "closerange": (1, -5),
    "memfd_create": (1, -1),
}

# Good rows that raise by design: they must never succeed here (or no longer can).
GOOD_RAISES = {"chroot", "ttyname", "initgroups", "getlogin"}

CLOSED_FD = 999  # above HIGH_FD's range, never opened


def bad_firsts(name: str, t: Tree) -> dict[str, Any]:
    """The bad values for the first argument of ``name``."""
    if name == "closerange":  # closerange(-1, n) would close this process's own fds
        return {"closed fd": CLOSED_FD, "wrong type": "x"}
    if name in FD_FIRST:
        return {"closed fd": CLOSED_FD, "wrong type": "x", "negative fd": -1}
    if name in NO_PATH_FIRST:
        return {"wrong type": 1.5}
    return {
        "missing path": t.p("missing"),
        "NUL byte": t.p("a\0b"),
        "wrong type": 1.5,
        "name too long": t.p("x" * 300),
        "path too long": t.p("/".join(["x" * 200] * 30)),  # (makedirs makes those that fit)
        "symlink loop": t.p("loop/x"),
        "bytes path": os.fsencode(t.p("missing")),
    }


def cases(name: str, t: Tree) -> dict[str, Args]:
    """Every input of ``name``: its good one, then one per bad first argument and negative size."""
    args, kwargs = GOOD[name](t)
    out = {"good": (args, kwargs)}
    if args:
        for label, value in bad_firsts(name, t).items():
            out[label] = ((value, *args[1:]), kwargs)
    if name in NEGATIVE:
        index, value = NEGATIVE[name]
        changed = list(args)
        changed[index] = value
        out["negative size"] = (tuple(changed), kwargs)
    return out


def normalise(result: Any, t: Tree) -> Any:
    """A result as compared: fds it created are closed and counted, volatile fields dropped."""
    if isinstance(result, os.statvfs_result):
        return (result.f_bsize, result.f_frsize, result.f_blocks, result.f_flag, result.f_namemax)
    return result


FD_RESULTS = {
    "open", "dup", "openpty", "pipe", "pipe2", "posix_openpt", "memfd_create", "eventfd",
    "timerfd_create",
}  # fmt: skip


def outcome(name: str, fn: Callable[..., Any], result_or_exc: Any, t: Tree) -> Any:
    """A comparable record of what a call did."""
    if isinstance(result_or_exc, BaseException):
        e = result_or_exc
        fields: tuple[object, ...] = (type(e), str(e), e.args)
        if isinstance(e, OSError):
            fields += (e.errno, e.filename, e.filename2)
        return ("raised", fields)
    if name in FD_RESULTS:
        fds = result_or_exc if isinstance(result_or_exc, tuple) else (result_or_exc,)
        for fd in fds:
            os.close(fd)
        return ("returned", "fds", len(fds))
    if name in ("urandom", "getrandom"):
        return ("returned", type(result_or_exc), len(result_or_exc))
    return ("returned", normalise(result_or_exc, t))


async def in_worker(fn: Callable[..., T], *args: Any) -> T:
    """Run sync reference code off the event loop, on aos's own (daemon) workers.

    Not ``anyio.to_thread``: on asyncio its non-daemon worker may still be returning from its
    last hand-off when the leak check looks, which reads as a leaked thread.
    """
    return await call(MUTATE, None, fn, *args)


def sync_face(name: str) -> Callable[..., Any]:
    face: Callable[..., Any] = (
        getattr(blocking.path, name[5:]) if name.startswith("path.") else getattr(blocking, name)
    )
    return face


def async_face(name: str) -> Callable[..., Any]:
    face: Callable[..., Any] = (
        getattr(aos.path, name[5:]) if name.startswith("path.") else getattr(aos, name)
    )
    return face


def offloaded_names() -> list[str]:
    """Every public name of aos and aos.path that ``offload`` made from an aos.blocking function."""
    names = [
        n
        for n in dir(aos)
        if policy_of(getattr(aos, n)) is not None
        and getattr(getattr(aos, n), "__wrapped__", None) is getattr(blocking, n, None)
    ]
    names += [f"path.{n}" for n in dir(aos.path) if policy_of(getattr(aos.path, n)) is not None]
    return sorted(names)


def run_sync(name: str, t: Tree, label: str, rebuild: bool) -> tuple[Any, Any]:
    if rebuild:
        t.cleanup()
        t.build()
    args, kwargs = cases(name, t)[label]
    try:
        result: Any = sync_face(name)(*args, **kwargs)
    except Exception as e:  # compared field by field below
        result = e
    return outcome(name, sync_face(name), result, t), t.snapshot()


def prepare(name: str, t: Tree, label: str, rebuild: bool) -> Args:
    if rebuild:
        t.cleanup()
        t.build()
    return cases(name, t)[label]


def finish(name: str, t: Tree, result: Any) -> tuple[Any, Any]:
    return outcome(name, async_face(name), result, t), t.snapshot()


@pytest.fixture
def tree(tmp_path: Path) -> Tree:
    return Tree(tmp_path / "t")


def test_every_offloaded_name_has_a_row() -> None:
    missing = [n for n in offloaded_names() if n not in GOOD]
    assert not missing, f"offloaded names with no parity row: {missing}"
    unknown = [n for n in FD_FIRST | NO_PATH_FIRST | set(NEGATIVE) if n not in GOOD]
    assert not unknown


def offloaded_routes() -> list[Any]:
    return [
        pytest.param(name, route, id=f"{name}-{route}")
        for name in offloaded_names()
        for route in routes_for(async_face(name))
    ]


@pytest.mark.anyio
@pytest.mark.parametrize(("name", "route"), offloaded_routes())
async def test_parity(name: str, route: str, tree: Tree, monkeypatch: pytest.MonkeyPatch) -> None:
    t = tree
    taken = take_route(route, monkeypatch)
    rebuild = policy_of(async_face(name)) is not QUERY  # queries share one tree
    await in_worker(t.build)
    try:
        labels = await in_worker(lambda: list(cases(name, t)))
        for label in labels:
            expected = await in_worker(run_sync, name, t, label, rebuild)
            args, kwargs = await in_worker(prepare, name, t, label, rebuild)
            try:
                result: Any = await async_face(name)(*args, **kwargs)
            except Exception as e:  # compared field by field
                result = e
            got = await in_worker(finish, name, t, result)
            assert got == expected, f"{name} with {label}"
    finally:
        await in_worker(t.cleanup)
    assert (taken() > 0) is (route != "worker")


PREDICATES = {
    "path.exists",
    "path.lexists",
    "path.isfile",
    "path.isdir",
    "path.islink",
    "path.ismount",
}


def test_parity_table_exercises_both_outcomes(tmp_path: Path) -> None:
    """The table is no tautology: most good inputs succeed, and each name has a bad input that raises."""
    t = Tree(tmp_path / "t")
    failing_good, never_raising = [], []
    try:
        for name in offloaded_names():
            raised = False
            for label in cases(name, t) if name in GOOD else ():
                (kind, *_), _ = run_sync(name, t, label, rebuild=True)
                if label == "good" and kind != "returned":
                    failing_good.append(name)
                raised |= kind == "raised"
            if not raised and name not in PREDICATES and GOOD[name](t)[0]:
                never_raising.append(name)
    finally:
        t.cleanup()
    assert sorted(failing_good) == sorted(GOOD_RAISES & set(offloaded_names()))
    assert not never_raising
