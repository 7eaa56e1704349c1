"""aos.blocking provides every public name of os, as the very same objects where os has them in C."""

from __future__ import annotations

import importlib
import inspect
import os
import subprocess
import sys
import types

import pytest

import aos.blocking

OWN = {"walk", "fwalk"}  # aos's own iterative implementations
# os.py's own Python functions: the same code, with aos.blocking as their globals
REBOUND = {
    n
    for n in {m for m in dir(os) if not m.startswith("_")} | {"_execvpe", "_spawnvef"}
    if isinstance(getattr(os, n, None), types.FunctionType) and getattr(os, n).__module__ == "os"
} - OWN
SECTIONS = (
    "_module",
    "_params",
    "_fd",
    "_files",
    "_xattr",
    "_process",
    "_sched",
    "_sysinfo",
    "_random",
)


def public_os_names() -> set[str]:
    """What a user can reach as os.X: every non-underscore name plus os.__all__ (``_exit``)."""
    return {n for n in dir(os) if not n.startswith("_")} | set(os.__all__)


def test_every_public_os_name_is_present() -> None:
    missing = sorted(public_os_names() - set(dir(aos.blocking)))
    assert not missing, f"aos.blocking lacks: {missing}"


def test_every_name_has_its_section() -> None:
    """Names of a later os are passed through as they are; on a tested release, none is."""
    assert aos.blocking._LATER_NAMES == frozenset()


def test_no_name_os_lacks() -> None:
    public = {n for n in dir(aos.blocking) if not n.startswith("_")}
    extra = public - public_os_names() - {"blocking"}
    assert not extra, f"aos.blocking has names os does not: {sorted(extra)}"


@pytest.mark.parametrize("name", sorted(public_os_names() - OWN - REBOUND))
def test_same_object_as_os(name: str) -> None:
    assert getattr(aos.blocking, name) is getattr(os, name)


@pytest.mark.parametrize("name", sorted(REBOUND))
def test_os_python_function_runs_with_our_globals(name: str) -> None:
    ours, theirs = getattr(aos.blocking, name), getattr(os, name)
    assert ours.__code__ is theirs.__code__
    assert ours.__defaults__ == theirs.__defaults__
    assert ours.__globals__ is vars(aos.blocking)
    assert inspect.signature(ours) == inspect.signature(theirs)


def test_patching_reaches_os_python_functions(monkeypatch: pytest.MonkeyPatch) -> None:
    """As with os: assigning aos.blocking.environ is what get_exec_path reads."""
    monkeypatch.setattr(aos.blocking, "environ", {"PATH": "/nowhere:/else"})
    assert aos.blocking.get_exec_path() == ["/nowhere", "/else"]
    assert os.get_exec_path() != ["/nowhere", "/else"]


def bare_signature(func: object) -> inspect.Signature:
    """The signature without annotations: names, kinds and defaults, as os's own have."""
    sig = inspect.signature(func)  # type: ignore[arg-type]
    params = [p.replace(annotation=p.empty) for p in sig.parameters.values()]
    return sig.replace(parameters=params, return_annotation=sig.empty)


@pytest.mark.parametrize("name", sorted(OWN))
def test_own_walks_have_os_signatures(name: str) -> None:
    ours, theirs = getattr(aos.blocking, name), getattr(os, name)
    assert ours is not theirs
    assert bare_signature(ours) == inspect.signature(theirs)
    assert ours.__name__ == theirs.__name__


def test_star_import_equals_os() -> None:
    assert sorted(aos.blocking.__all__) == sorted(os.__all__)


def test_capability_sets_hold_our_functions() -> None:
    # shutil.rmtree chooses its fd-based version by exactly these memberships
    assert {aos.blocking.open, aos.blocking.stat, aos.blocking.unlink, aos.blocking.rmdir} <= (
        aos.blocking.supports_dir_fd
    )
    assert aos.blocking.scandir in aos.blocking.supports_fd
    assert aos.blocking.stat in aos.blocking.supports_follow_symlinks


def test_environ_is_shared_with_os(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(aos.blocking.environ, "AOS_TEST_VAR", "1")
    assert os.environ["AOS_TEST_VAR"] == "1"
    assert aos.blocking.getenv("AOS_TEST_VAR") == "1"


def test_each_name_lives_in_one_section() -> None:
    homes: dict[str, str] = {}
    for section in SECTIONS:
        module = importlib.import_module(f"aos.blocking.{section}")
        for name, value in vars(module).items():
            if name.startswith("__") or (isinstance(value, types.ModuleType) and name != "path"):
                continue
            if name in public_os_names():
                assert name not in homes or name == "sys", (
                    f"{name} in {homes.get(name)} and {section}"
                )
                homes[name] = section
    assert set(homes) >= public_os_names() - {"abc", "st", "sys"}


def test_drop_in_for_existing_code(tmp_path: os.PathLike[str]) -> None:
    """A script written for os runs unchanged with ``import aos.blocking as os``."""
    script = f"""
import aos.blocking as os, shutil
root = os.path.join({str(tmp_path)!r}, "t")
os.makedirs(os.path.join(root, "a", "b"), exist_ok=True)
with open(os.path.join(root, "a", "f.txt"), "w") as f:
    f.write("x")
os.symlink("a", os.path.join(root, "link"))
fd = os.open(os.path.join(root, "a", "f.txt"), os.O_RDONLY)
assert os.read(fd, 1) == b"x"
os.close(fd)
walked = [(d, sorted(ds), sorted(fs)) for d, ds, fs in os.walk(root)]
assert len(walked) == 3, walked
shutil.rmtree(root)
assert not os.path.exists(root)
print("ok")
"""
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "ok"
