"""The aos namespace accounts for every public name of aos.blocking.

Each public name of :mod:`aos.blocking` is, in :mod:`aos`, exactly one of: offloaded (made by
``offload`` from that very function), hand-written (an async function of module ``aos``), or
passed through (the very same object). The three sets are derived at run time.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import os
import pickle
import posixpath
import subprocess
import sys
from pathlib import Path

import pytest

import aos
import aos.path
from aos import blocking
from aos._async import _fd
from aos._async._offload import QUERY, Policy, policy_of

# Every name that can block, by the module that must give it an async face. The modules of
# this package's own table are aos._async._fd/_files/_xattr/_params/_random; the others are
# written by other hands and are expected to provide these names.
KNOWN_BLOCKING: dict[str, set[str]] = {
    "aos._async._fd": {
        "close", "closerange", "dup", "dup2", "fchmod", "fchown", "fdatasync", "fpathconf",
        "fstat", "fstatvfs", "fsync", "ftruncate", "lockf", "lseek", "open", "openpty", "pipe",
        "pipe2", "posix_fadvise", "posix_fallocate", "pread", "preadv", "pwrite", "pwritev",
        "sendfile", "ttyname", "copy_file_range", "splice", "posix_openpt",
    },
    "aos._async._files": {
        "access", "chdir", "chmod", "chown", "chroot", "fchdir", "getcwd", "getcwdb", "lchown",
        "link", "listdir", "lstat", "makedirs", "mkdir", "mkfifo", "mknod", "pathconf",
        "readlink", "remove", "removedirs", "rename", "renames", "replace", "rmdir", "stat",
        "statvfs", "symlink", "sync", "truncate", "unlink", "utime", "memfd_create", "eventfd",
        "eventfd_read", "eventfd_write", "timerfd_create",
    },
    "aos._async._xattr": {"getxattr", "listxattr", "removexattr", "setxattr"},
    "aos._async._params": {"getgrouplist", "getlogin", "initgroups"},
    "aos._async._random": {"getrandom", "urandom"},
    # Expected from the modules other engineers fill:
    "aos._async._fd_io": {"read", "readv", "write", "writev"},
    "aos._async._iter": {"scandir", "walk", "fwalk"},
    "aos._async._process": {
        "posix_spawn", "posix_spawnp", "wait", "wait3", "wait4", "waitid", "waitpid", "system",
        "spawnl", "spawnle", "spawnlp", "spawnlpe", "spawnv", "spawnve", "spawnvp",
        "spawnvpe",
    },
}  # fmt: skip

# popen is passed through on purpose: it returns a file object whose own methods block, so an
# async popen would be a half-measure; its start is a spawn, which aos also runs inline (the GIL
# is held throughout it anyway). Async programs use posix_spawn with pipes and aos.read.

# Names that never block and so must be the very objects of aos.blocking (a sample per kind).
NEVER_BLOCKING = {
    "getpid", "getuid", "umask", "fspath", "fsencode", "strerror", "environ", "getenv",
    "get_terminal_size", "isatty", "get_blocking", "set_inheritable", "device_encoding",
    "major", "makedev", "cpu_count", "sysconf", "sched_yield", "sched_getaffinity", "uname",
    "O_RDONLY", "SEEK_SET", "stat_result", "DirEntry", "PathLike", "supports_fd", "error",
    "sep", "linesep", "name", "_exit", "fork", "execv", "abort", "waitstatus_to_exitcode",
    "popen", "kill", "times",
}  # fmt: skip

ASYNC_MODULES = ("_fd", "_fd_io", "_files", "_iter", "_later", "_params", "_process", "_random",
                 "_sched", "_sysinfo", "_tuning", "_xattr")  # fmt: skip


def public_blocking_names() -> set[str]:
    return {n for n in dir(blocking) if not n.startswith("_")} | set(blocking.__all__)


def present(names: set[str]) -> set[str]:
    """The names this platform and Python provide, as os does."""
    return {n for n in names if hasattr(blocking, n)}


def is_offloaded(name: str) -> bool:
    obj = getattr(aos, name, None)
    return policy_of(obj) is not None and getattr(obj, "__wrapped__", None) is getattr(
        blocking, name
    )


def is_hand_written(name: str) -> bool:
    obj = getattr(aos, name, None)
    return (
        callable(obj)
        and obj is not getattr(blocking, name)
        and policy_of(obj) is None
        and getattr(obj, "__module__", None) == "aos"
    )


def is_passed_through(name: str) -> bool:
    return getattr(aos, name, None) is getattr(blocking, name)


def all_known_blocking() -> set[str]:
    return set().union(*KNOWN_BLOCKING.values())


@pytest.mark.parametrize("name", sorted(public_blocking_names()))
def test_every_public_name_is_accounted_for(name: str) -> None:
    if name == "path":
        assert aos.path is not blocking.path
        assert aos.path.__name__ == "aos.path"
        return
    kinds = [is_offloaded(name), is_hand_written(name), is_passed_through(name)]
    assert sum(kinds) == 1, f"{name}: offloaded/hand-written/passed-through = {kinds}"


@pytest.mark.parametrize("name", sorted(all_known_blocking()))
def test_known_blocking_name_has_an_async_face(name: str) -> None:
    if not hasattr(blocking, name):
        pytest.skip(f"os.{name} does not exist on this platform/Python")
    home = next(m for m, names in KNOWN_BLOCKING.items() if name in names)
    assert is_offloaded(name) or is_hand_written(name), f"{name} is not async: expected from {home}"


@pytest.mark.parametrize("name", sorted(NEVER_BLOCKING))
def test_never_blocking_name_is_the_same_object(name: str) -> None:
    assert getattr(aos, name) is getattr(blocking, name)


def test_nothing_else_is_async() -> None:
    """An async face the table does not list is a decision nobody wrote down."""
    undocumented = {
        n for n in public_blocking_names() - {"path"} if not is_passed_through(n)
    } - all_known_blocking()
    assert not undocumented


def offloaded_names() -> list[str]:
    return sorted(n for n in public_blocking_names() if is_offloaded(n))


@pytest.mark.parametrize("name", offloaded_names())
def test_offloaded_signature_is_the_os_signature(name: str) -> None:
    ours, theirs = getattr(aos, name), getattr(blocking, name)
    try:
        expected = inspect.signature(theirs)
    except ValueError:  # e.g. os.utime on 3.11: `ns=<unrepresentable>`; ours must say the same
        with pytest.raises(ValueError, match=r"invalid signature"):
            inspect.signature(ours)
    else:
        assert inspect.signature(ours) == expected
    assert inspect.iscoroutinefunction(ours)
    assert ours.__name__ == theirs.__name__
    assert ours.__module__ == "aos"
    assert ours.__doc__.startswith(f"Like :func:`os.{name}`, but async.")


def test_no_public_name_os_lacks() -> None:
    tuning = set(getattr(importlib.import_module("aos._async._tuning"), "__all__", ()))
    extra = {n for n in dir(aos) if not n.startswith("_")} - public_blocking_names()
    assert extra <= {"blocking", "path"} | tuning, sorted(extra)


@pytest.mark.parametrize("module", ASYNC_MODULES)
def test_async_module_declares_all(module: str) -> None:
    """Star-import takes ``__all__``: without one, helpers (``offload``, ``MUTATE``) would leak."""
    mod = importlib.import_module(f"aos._async.{module}")
    assert isinstance(getattr(mod, "__all__", None), list), f"aos._async.{module} has no __all__"
    for name in mod.__all__:
        assert getattr(aos, name) is getattr(mod, name), f"{name} of {module} is shadowed"


def test_star_import_mirrors_os() -> None:
    assert sorted(aos.__all__) == sorted(os.__all__)
    assert aos.__version__


def test_static_pass_through_list_matches_run_time() -> None:
    """The names aos/__init__.py imports for type checkers are exactly the ones passed through."""
    tree = ast.parse(Path(aos.__file__).read_text())
    static: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and ast.unparse(node.test) == "_TYPE_CHECKING":
            for sub in ast.walk(node):
                if isinstance(sub, ast.ImportFrom) and sub.module == "aos.blocking":
                    static |= {alias.asname or alias.name for alias in sub.names}
    passed = {n for n in public_blocking_names() - {"path"} if is_passed_through(n)}
    # `st` (os's alias of stat) is not re-exported by blocking's stub view; expected async names
    # that other modules have yet to provide are reported by the test above, not here.
    assert present(static) == passed - {"st"} - all_known_blocking()


# --- aos.path ---------------------------------------------------------------------------

PATH_ASYNC = {
    "exists", "lexists", "isfile", "isdir", "islink", "ismount", "getsize", "getmtime",
    "getatime", "getctime", "samefile", "sameopenfile", "realpath", "abspath", "relpath",
    "expanduser",
}  # fmt: skip


def test_path_all_mirrors_os_path() -> None:
    assert sorted(aos.path.__all__) == sorted(posixpath.__all__)


def test_path_has_no_public_name_os_path_lacks() -> None:
    """Its helpers are private: ``dir(aos.path)``, and a REPL's completion, offer os.path's names."""
    extra = {n for n in dir(aos.path) if not n.startswith("_")} - set(dir(posixpath))
    assert not extra, sorted(extra)


@pytest.mark.parametrize("name", sorted(PATH_ASYNC))
def test_path_disk_query_is_async(name: str) -> None:
    ours, theirs = getattr(aos.path, name), getattr(posixpath, name)
    assert policy_of(ours) is QUERY
    assert ours.__wrapped__ is theirs
    assert inspect.signature(ours) == inspect.signature(theirs)
    assert inspect.iscoroutinefunction(ours)
    # Its home is aos.path, as os.path.exists's is os.path: pickle finds it there.
    assert (ours.__module__, ours.__qualname__) == ("aos.path", name)
    assert pickle.loads(pickle.dumps(ours)) is ours
    assert ours.__doc__.startswith(f"Like :func:`os.path.{name}`, but async.")


@pytest.mark.parametrize("name", sorted(set(posixpath.__all__) - PATH_ASYNC))
def test_path_string_function_is_passed_through(name: str) -> None:
    assert getattr(aos.path, name) is getattr(posixpath, name)


LATER_OS_PATH = """
import posixpath, threading, anyio
posixpath.LATER_NAME = object()
posixpath.later_query = lambda path: (path, threading.current_thread().name)
posixpath.__all__ += ["LATER_NAME", "later_query"]
import aos.path
assert aos.path.LATER_NAME is posixpath.LATER_NAME
assert {"LATER_NAME", "later_query"} <= set(aos.path.__all__)
from aos.path import *
assert LATER_NAME is posixpath.LATER_NAME
async def main():
    assert await aos.path.later_query("/") == ("/", "aos-worker")  # a QUERY, on a worker
for backend in ("asyncio", "trio"):
    anyio.run(main, backend=backend)
"""


def test_a_name_a_later_os_path_adds_is_there() -> None:
    """A release may add names to os.path (3.13.4 added ``ALLOW_MISSING``): aos.path has a
    constant as its object, and awaits a function (it may look at the disk) as ``QUERY``."""
    done = subprocess.run([sys.executable, "-c", LATER_OS_PATH], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_every_name_of_os_path_has_its_place() -> None:
    """On a tested release, aos.path places every name itself (the constant ALLOW_MISSING of
    the 2025 security releases is left to the fallback, as it should be)."""
    assert aos.path._LATER_NAMES <= {"ALLOW_MISSING"}


LATER_OS = """
import os, threading, anyio
os._later_helper = lambda: threading.current_thread().name  # a private helper of os.py
exec("def later_call():\\n    return _later_helper()", vars(os))  # a function of os.py
os.LATER_CONSTANT = object()
os.__all__ += ["later_call", "LATER_CONSTANT"]
import aos, aos.blocking
assert aos.blocking.later_call is os.later_call and aos.blocking.later_call() == "MainThread"
assert aos.blocking.LATER_CONSTANT is aos.LATER_CONSTANT is os.LATER_CONSTANT
assert {"later_call", "LATER_CONSTANT"} <= set(aos.__all__) & set(aos.blocking.__all__)
async def main():
    assert await aos.later_call() == "aos-wait"  # the wait lane: it may wait for good
for backend in ("asyncio", "trio"):
    anyio.run(main, backend=backend)
"""


def test_a_function_a_later_os_adds_is_offloaded() -> None:
    """A release may add names to os (3.14 added ``readinto``): aos.blocking has each as os's
    object, and aos runs a new function in the wait lane (it may block), as ``MUTATE``."""
    done = subprocess.run([sys.executable, "-c", LATER_OS], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_policies_recorded() -> None:
    """Read-only calls are QUERY; the table of mutations is never QUERY."""
    for name in ("stat", "lstat", "fstat", "access", "readlink", "listdir", "getxattr", "pread"):
        assert policy_of(getattr(aos, name)) is QUERY, name
    for name in ("open", "dup", "dup2", "pipe", "mkdir", "rename", "fsync", "preadv"):
        assert policy_of(getattr(aos, name)) is Policy.MUTATE, name
    assert policy_of(aos.system) is Policy.WAIT
    # hand-written, gives a cancelled F_LOCK's lock back; what it offloads is still a MUTATE
    assert policy_of(aos.lockf) is None
    assert policy_of(_fd._lockf) is Policy.MUTATE
    if sys.platform == "linux":  # hand-written: an eventfd's read waits on the loop
        assert policy_of(aos.eventfd_read) is None
