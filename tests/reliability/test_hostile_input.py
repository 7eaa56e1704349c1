"""Hostile input for every public async name of aos: NUL bytes, wrong types, huge and negative
sizes, closed and invalid fds, symlink loops, over-long names, non-UTF-8 bytes names.

The list of names is read from :mod:`aos` at run time. Each name is called with every hostile
value that fits one of its parameters (the other arguments harmless: paths under a missing
directory, a read-only fd of a small file), once through aos and once through
:mod:`aos.blocking` in a worker thread, on two identical trees. The outcomes must be the same:
exception class, errno, message, filename, filename2, nothing chained; and afterwards the loop
and the worker pool still serve.
"""

from __future__ import annotations

import inspect
import os
import shutil
from pathlib import Path
from typing import Any

import anyio
import pytest

import aos
from aos._async._offload import Policy, policy_of
from tests.aio._helpers import routes_for, take_route
from tests.reliability.conftest import async_names, outcome

NOT_CALLED = {
    "closerange": "closes every fd in a range: a hostile bound would close the test's own fds",
    "initgroups": "changes the process's supplementary groups",
    "system": "runs a shell command",
    "popen": "runs a shell command",
    **dict.fromkeys(
        ["spawnl", "spawnle", "spawnlp", "spawnlpe", "spawnv", "spawnve", "spawnvp", "spawnvpe"],
        "starts a program (with a missing file, os's forked child exits 127); not compared here",
    ),
}
"""Async names never called with hostile input, and why."""

SIGNATURES = {  # builtins without an introspectable signature (on some Python version)
    "chmod": ["path", "mode"],
    "utime": ["path"],
    "posix_spawn": ["path", "argv", "env"],
    "posix_spawnp": ["path", "argv", "env"],
    "get_terminal_size": ["fd"],
}

CLOSED_FD = 4000
"""An fd number that is never open in the test process."""

NO_PID = 4_194_305
"""Above the largest pid_max Linux allows: no process has it."""

FD_CREATORS = {
    "eventfd",
    "open",
    "dup",
    "dup2",
    "pipe",
    "pipe2",
    "openpty",
    "posix_openpt",
    "timerfd_create",
    "memfd_create",
}


def kind_of(name: str, param: str) -> str | None:
    """The kind of value a parameter takes, or ``None`` when the test knows no harmless value."""
    if name in {"copy_file_range", "splice"} and param in {"src", "dst"}:
        return "fd"
    if name in {"makedirs", "removedirs"} and param == "name":
        return "path"
    if name == "setxattr" and param == "value":
        return "data"
    return KINDS.get(param)


KINDS = {
    **dict.fromkeys(["path", "src", "dst", "top", "old", "new"], "path"),
    **dict.fromkeys(["fd", "fd2", "in_fd", "out_fd", "dir_fd"], "fd"),
    **dict.fromkeys(["length", "count", "size", "offset", "offset_src", "offset_dst"], "size"),
    **dict.fromkeys(["position"], "size"),
    **dict.fromkeys(["mode", "flags", "options", "advice", "whence"], "int"),
    **dict.fromkeys(["uid", "gid"], "id"),
    **dict.fromkeys(["pid", "id"], "pid"),
    **dict.fromkeys(["data", "buffer"], "data"),
    "buffers": "buffers",
    "attribute": "text",
    "name": "text",
    "user": "text",
    "idtype": "int",
    "command": "int",
    "group": "id",
    "device": "int",
    "argv": "argv",
    "env": "env",
    "initval": "size",
    "oflag": "int",
    "clockid": "int",
    "value": "size",
}


class Tree:
    """One of the two identical trees the calls run on, with the harmless base arguments."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.fd = -1

    def reset(self) -> None:
        """(Re)make the tree: a small file, a symlink loop, nothing under ``nodir``."""
        for child in self.root.iterdir():
            if child.is_dir() and not child.is_symlink():
                shutil.rmtree(child)
            else:
                child.unlink()
        (self.root / "file").write_bytes(b"data")
        (self.root / "loop").symlink_to("loop")
        (self.root / "dir").mkdir()

    def base(self, kind: str, param: str) -> Any:
        """A harmless value: every path is under a missing directory, the fd is read-only."""
        return {
            "path": str(self.root / "nodir" / param),
            "fd": self.fd,
            "size": 4,
            "int": 0,
            "id": -1,
            "pid": NO_PID,
            "data": b"data",
            "buffers": [bytearray(4)],
            "text": "user.aos",
            "argv": ["x"],
            "env": {},
        }[kind]

    def hostile(self, kind: str) -> list[tuple[str, Any]]:
        """The hostile values for a parameter of ``kind``, labelled."""
        root = str(self.root)
        broad: list[tuple[str, Any]] = [("float", 1.5), ("object", object()), ("None", None)]
        sizes: list[tuple[str, Any]] = [("-1", -1), ("2**40", 2**40), ("2**63", 2**63)]
        sizes.append(("2**200", 2**200))
        values: dict[str, list[tuple[str, Any]]] = {
            "path": [
                ("NUL str", f"{root}/a\0b"),
                ("NUL bytes", os.fsencode(root) + b"/a\0b"),
                ("symlink loop", f"{root}/loop/x"),
                ("symlink loop leaf", f"{root}/loop"),
                ("name of 300 bytes", f"{root}/{'x' * 300}"),
                ("path of 6000 bytes", root + "/x" * 3000),
                ("non-UTF-8 bytes", os.fsencode(root) + b"/\xff\xfe"),
                ("surrogate str", f"{root}/\udcff"),
                ("closed fd", CLOSED_FD),
                ("fd -1", -1),
                ("float", 1.5),
                ("list", [root]),
            ],
            "fd": [
                ("closed fd", CLOSED_FD),
                ("-1", -1),
                ("2**31", 2**31),
                ("2**70", 2**70),
                ("str", "3"),
                *broad,
            ],
            "size": [*sizes, ("str", "4"), *broad],
            "int": [("-1", -1), ("2**70", 2**70), ("str", "0"), ("float", 1.5)],
            "id": [("2**40", 2**40), ("-2**40", -(2**40)), ("str", "0"), ("float", 1.5)],
            "pid": [("2**70", 2**70), ("str", "1"), ("float", 1.5)],
            "data": [("str", "data"), ("list", [b"a"]), *broad],
            "buffers": [
                ("bytes", b"data"),
                ("list of float", [1.5]),
                ("read-only buffer", [memoryview(b"ro")]),
                *broad,
            ],
            "text": [("NUL", "a\0b"), ("non-UTF-8 bytes", b"\xff\xfe"), ("int", 1), ("None", None)],
            "argv": [("empty", []), ("NUL", ["a\0b"]), ("str", "x"), ("None", None)],
            "env": [("NUL", {"A": "a\0b"}), ("list", [1]), ("None", None)],
        }
        return values[kind]


def params_of(name: str) -> list[tuple[str, str | None]] | None:
    """The (parameter, kind) pairs to try, or ``None`` when a required one has no base value."""
    sync = getattr(aos.blocking, name)
    if name in SIGNATURES:
        required = SIGNATURES[name]
        optional: list[str] = []
    else:
        try:
            sig = inspect.signature(sync)
        except ValueError:  # no signature to read: add the name to SIGNATURES
            return None
        kinds = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
        required = [  # a path with a default (listdir, scandir) is tried as well
            p.name
            for p in sig.parameters.values()
            if p.kind in kinds and (p.default is p.empty or p.name == "path")
        ]
        optional = [p for p in sig.parameters if p == "dir_fd"]
    pairs = [(p, kind_of(name, p)) for p in required + optional]
    if any(kind is None for p, kind in pairs if p in required):
        return None
    return pairs


def cases() -> list[Any]:
    params = []
    for name in sorted(async_names()):
        if name in NOT_CALLED:
            continue
        pairs = params_of(name)
        if pairs:  # names without parameters take no hostile value
            for route in routes_for(getattr(aos, name)):
                params.append(pytest.param(name, pairs, route, id=f"{name}-{route}"))
    return params


async def call_async(name: str, args: list[Any], kwargs: dict[str, Any]) -> tuple[str, Any]:
    func = getattr(aos, name)
    try:
        if name == "scandir":
            async with func(*args, **kwargs) as it:
                return "ok", [entry.name async for entry in it]
        if name in {"walk", "fwalk"}:
            return "ok", [item[:3] async for item in func(*args, **kwargs)]
        return "ok", await func(*args, **kwargs)
    except Exception as error:
        return "raised", error


def call_sync(name: str, args: list[Any], kwargs: dict[str, Any]) -> tuple[str, Any]:
    func = getattr(aos.blocking, name)
    if name == "scandir":

        def listed() -> list[Any]:
            with func(*args, **kwargs) as it:
                return [entry.name for entry in it]

        return outcome(listed)
    if name in {"walk", "fwalk"}:
        return outcome(lambda: [item[:3] for item in func(*args, **kwargs)])
    return outcome(func, *args, **kwargs)


def reset_and_call_sync(
    trees: tuple[Tree, Tree], name: str, args: list[Any], kwargs: dict[str, Any]
) -> tuple[str, Any]:
    """In a worker: reset both trees (unless the call only reads), call the blocking face,
    release what it created."""
    if policy_of(getattr(aos, name)) is not Policy.QUERY:
        for tree in trees:
            tree.reset()
    result = call_sync(name, args, kwargs)
    release(name, result)
    return result


def release(name: str, result: tuple[str, Any]) -> None:
    """Close the fds a successful creating call returned (call it in a worker)."""
    kind, value = result
    if kind != "ok" or name not in FD_CREATORS:
        return
    for fd in [value] if isinstance(value, int) else value:
        os.close(fd)


def normal(value: Any, tree: Tree, reference: Tree) -> Any:
    """``value`` with ``tree``'s root replaced by ``reference``'s, for comparison."""
    if isinstance(value, str):
        return value.replace(str(tree.root), str(reference.root))
    if isinstance(value, bytes):
        return value.replace(os.fsencode(tree.root), os.fsencode(reference.root))
    if isinstance(value, tuple):
        return tuple(normal(v, tree, reference) for v in value)
    if isinstance(value, list):
        return [normal(v, tree, reference) for v in value]
    return value


def describe(result: tuple[str, Any], tree: Tree, reference: Tree) -> tuple[Any, ...]:
    kind, value = result
    if kind == "ok":
        return ("ok", type(value).__name__)
    error: BaseException = value
    fields: tuple[Any, ...] = (type(error).__name__, normal(str(error), tree, reference))
    fields += (normal(error.args, tree, reference),)
    if isinstance(error, OSError):
        fields += (error.errno, normal(error.filename, tree, reference))
        fields += (normal(error.filename2, tree, reference),)
    fields += (error.__cause__ is None, error.__suppress_context__ or error.__context__ is None)
    return fields


@pytest.fixture
def trees(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """Two identical trees, one for each face, each with a read-only fd of its file; the
    working directory is an empty one, so a relative name never lands in the checkout."""
    (tmp_path / "cwd").mkdir()
    monkeypatch.chdir(tmp_path / "cwd")
    pair = (Tree(tmp_path / "async"), Tree(tmp_path / "sync"))
    for tree in pair:
        tree.root.mkdir()
        tree.reset()
        tree.fd = os.open(tree.root / "file", os.O_RDONLY)
    try:
        yield pair
    finally:
        for tree in pair:
            os.close(tree.fd)


@pytest.mark.anyio
@pytest.mark.parametrize(("name", "pairs", "route"), cases())
async def test_hostile_input_fails_like_os(
    name: str,
    pairs: list[tuple[str, str]],
    route: str,
    trees: tuple[Tree, Tree],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    atree, stree = trees
    taken = take_route(route, monkeypatch)
    mismatches = []
    tried = 0
    for i, (param, kind) in enumerate(pairs):
        for (label, avalue), (_, svalue) in zip(
            atree.hostile(kind), stree.hostile(kind), strict=True
        ):
            aargs = [atree.base(k, p) for p, k in pairs[:i] if p != "dir_fd"]
            sargs = [stree.base(k, p) for p, k in pairs[:i] if p != "dir_fd"]
            akw, skw = {}, {}
            if param == "dir_fd":
                akw, skw = {"dir_fd": avalue}, {"dir_fd": svalue}
            else:
                aargs.append(avalue)
                sargs.append(svalue)
                rest = [(p, k) for p, k in pairs[i + 1 :] if p != "dir_fd"]
                aargs += [atree.base(k, p) for p, k in rest]
                sargs += [stree.base(k, p) for p, k in rest]
            expected = await anyio.to_thread.run_sync(reset_and_call_sync, trees, name, sargs, skw)
            with anyio.fail_after(10):
                got = await call_async(name, aargs, akw)
            await anyio.to_thread.run_sync(release, name, got)
            tried += 1
            if describe(got, atree, stree) != describe(expected, stree, stree):
                mismatches.append(
                    f"{name}({param}={label}): aos {describe(got, atree, stree)}"
                    f" != os {describe(expected, stree, stree)}"
                )
    assert tried
    assert not mismatches, "\n".join(mismatches)
    assert (taken() > 0) is (route != "worker")

    # The loop and the worker pool still serve, many calls at once.
    async with anyio.create_task_group() as tg:
        for _ in range(10):
            tg.start_soon(aos.stat, atree.root / "file")
    assert (await aos.fstat(atree.fd)).st_size == 4


def test_hostile_input_covers_the_async_names() -> None:
    """Every async name either takes hostile input above, takes no argument, or is listed in
    ``NOT_CALLED`` with a reason; the core calls of every section are there."""
    names = async_names()
    assert {"open", "read", "write", "stat", "scandir", "walk", "fwalk"} <= set(names)
    uncovered = []
    for name in names:
        if name in NOT_CALLED:
            continue
        if params_of(name) is None:
            uncovered.append(name)
    assert not uncovered, f"async names with a parameter the test has no value for: {uncovered}"


def async_path_names() -> list[str]:
    """The names of :mod:`aos.path` that are async faces of ``os.path`` calls."""
    return sorted(
        n for n in aos.path.__all__ if getattr(aos.path, n) is not getattr(os.path, n, None)
    )


def _forget_blockbuster_context(result: tuple[str, Any]) -> None:
    """On asyncio, blockbuster wraps ``os.lstat`` and friends, which os.path calls through the
    os module: off the loop its wrapper calls the real function inside an ``except
    RuntimeError`` ("no running event loop"), so the reference error gains that context. It is
    the instrument's, not os.path's or aos.path's (whose worker calls the same wrappers): drop
    it, on both sides; any other context is still compared."""
    kind, error = result
    context = getattr(error, "__context__", None)
    if kind == "raised" and isinstance(context, RuntimeError):
        if str(context) == "no running event loop":
            error.__context__ = None


PATH_PARAM_KINDS = {"sameopenfile": "fd"}
"""The kind of hostile value an aos.path call takes first, where it is not a path."""


@pytest.mark.anyio
@pytest.mark.parametrize("name", async_path_names())
async def test_hostile_input_to_aos_path_fails_like_os_path(
    name: str, trees: tuple[Tree, Tree]
) -> None:
    """Each async ``aos.path`` call, given every hostile value as its first argument (and a
    harmless second one where it takes two), returns or raises exactly what ``os.path`` does."""
    atree, stree = trees
    kind = PATH_PARAM_KINDS.get(name, "path")
    required = [
        p
        for p in inspect.signature(getattr(os.path, name)).parameters.values()
        if p.default is p.empty and p.kind is not p.VAR_POSITIONAL
    ]
    mismatches = []
    for (label, avalue), (_, svalue) in zip(atree.hostile(kind), stree.hostile(kind), strict=True):
        aargs = [avalue] + [atree.base(kind, "second")] * (len(required) - 1)
        sargs = [svalue] + [stree.base(kind, "second")] * (len(required) - 1)
        expected = await anyio.to_thread.run_sync(outcome, getattr(os.path, name), *sargs)
        _forget_blockbuster_context(expected)
        with anyio.fail_after(10):
            try:
                got: tuple[str, Any] = ("ok", await getattr(aos.path, name)(*aargs))
            except Exception as error:
                got = ("raised", error)
        _forget_blockbuster_context(got)
        if describe(got, atree, stree) != describe(expected, stree, stree):
            mismatches.append(
                f"{name}({label}): aos.path {describe(got, atree, stree)}"
                f" != os.path {describe(expected, stree, stree)}"
            )
    assert not mismatches, "\n".join(mismatches)
    assert await aos.path.isfile(atree.root / "file")  # and aos.path still serves
