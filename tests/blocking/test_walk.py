"""aos.blocking.walk and fwalk yield exactly what os.walk and os.fwalk yield, in the same order.

Every comparison runs both on the same tree under ``tmp_path`` and compares the full sequence of
triples (fwalk's directory fds by the inode they have open), the errors passed to ``onerror``
field by field, and the exceptions raised.
"""

from __future__ import annotations

import errno
import gc
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

import aos.blocking
from tests.blocking._parity import describe_error

Walker = Callable[..., Iterator[Any]]
Record = tuple[list[tuple[Any, ...]], list[tuple[Any, ...]], tuple[Any, ...] | None]
"""What one walk did: the triples, the errors given to onerror, the exception it raised."""

DEEP = 1500


def record(
    walker: Walker,
    top: Any,
    *,
    prune: Callable[[Any, list[Any]], None] | None = None,
    limit: int | None = None,
    **kwargs: Any,
) -> Record:
    """Run ``walker(top, onerror=..., **kwargs)`` to the end (or ``limit`` triples).

    ``prune(dirpath, dirnames)`` may edit dirnames in place as each triple is yielded. fwalk's
    fd is recorded as the (st_dev, st_ino) it has open, checked while the fd is valid.
    """
    triples: list[tuple[Any, ...]] = []
    errors: list[tuple[Any, ...]] = []
    raised = None
    try:
        for triple in walker(top, onerror=lambda e: errors.append(describe_error(e)), **kwargs):
            dirpath, dirnames, filenames, *fd = triple
            if prune is not None:
                prune(dirpath, dirnames)
            opened = [(s.st_dev, s.st_ino) for s in map(os.fstat, fd)]
            triples.append((dirpath, list(dirnames), list(filenames), *opened))
            if limit is not None and len(triples) >= limit:
                break
    except Exception as error:
        raised = describe_error(error)
    return triples, errors, raised


def assert_same_walk(name: str, top: Any, **kwargs: Any) -> Record:
    """Walk ``top`` with os.NAME and aos.blocking.NAME; assert they agree; return the record."""
    theirs = record(getattr(os, name), top, **kwargs)
    ours = record(getattr(aos.blocking, name), top, **kwargs)
    assert ours == theirs
    return ours


@contextmanager
def fd_limit(at_least: int) -> Iterator[None]:
    """Raise RLIMIT_NOFILE's soft limit to ``at_least`` for the block (fwalk holds one fd a level)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= at_least:
        yield
        return
    if hard != resource.RLIM_INFINITY and hard < at_least:
        pytest.skip(f"RLIMIT_NOFILE hard limit {hard} < {at_least}")
    resource.setrlimit(resource.RLIMIT_NOFILE, (at_least, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def make_tree(root: Path) -> Path:
    """A tree with nested dirs, files, links to dirs and files, dangling links, a loop, odd bytes.

    Returns ``root / "t"``, the top to walk.
    """
    top = root / "t"
    for d in ("a/b/c", "a/e", "d", "empty"):
        (top / d).mkdir(parents=True)
    for f in ("f1", "a/f2", "a/b/f3", "a/b/c/f4", "d/f5"):
        (top / f).write_text(f)
    os.symlink("a", top / "link_to_dir")
    os.symlink("a/b/f3", top / "link_to_file")
    os.symlink("nowhere", top / "dangling")
    os.symlink("..", top / "a" / "e" / "up")  # a loop back to t when links are followed
    os.symlink("self", top / "self")  # ELOOP on stat
    os.symlink("../../d", top / "a" / "b" / "link_to_d")
    odd = os.fsencode(top) + b"/bad\xff\xfename"  # not valid UTF-8: surrogate-escaped as str
    os.mkdir(odd)
    with open(odd + b"/file\xe9", "w") as out:
        out.write("x")
    return top


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    return make_tree(tmp_path)


@pytest.mark.parametrize("as_bytes", [False, True], ids=["str", "bytes"])
@pytest.mark.parametrize("topdown", [True, False], ids=["topdown", "bottomup"])
@pytest.mark.parametrize("follow", [False, True], ids=["nofollow", "follow"])
def test_walk_matches_os(tree: Path, as_bytes: bool, topdown: bool, follow: bool) -> None:
    top: Any = os.fsencode(tree) if as_bytes else str(tree)
    triples, errors, raised = assert_same_walk("walk", top, topdown=topdown, followlinks=follow)
    assert raised is None
    dirpaths = [t[0] for t in triples]
    assert not errors
    name = os.fsencode if as_bytes else os.fsdecode
    if follow:  # into link_to_dir, and round the a/e/up loop until stat says ELOOP: a "file"
        assert os.path.join(top, name("link_to_dir")) in dirpaths
        assert any(name("up") in filenames for _, _, filenames in triples)
    else:
        assert len(triples) == 8  # t, a, a/b, a/b/c, a/e, d, empty, bad\xff\xfename
    assert os.path.join(top, name(b"bad\xff\xfename")) in dirpaths


@pytest.mark.parametrize("as_bytes", [False, True], ids=["str", "bytes"])
@pytest.mark.parametrize("topdown", [True, False], ids=["topdown", "bottomup"])
@pytest.mark.parametrize("follow", [False, True], ids=["nofollow", "follow"])
def test_fwalk_matches_os(tree: Path, as_bytes: bool, topdown: bool, follow: bool) -> None:
    if follow:  # fwalk has no ELOOP to stop it going round a loop: break the loop
        os.unlink(tree / "a" / "e" / "up")
    top: Any = os.fsencode(tree) if as_bytes else str(tree)
    triples, errors, raised = assert_same_walk(
        "fwalk", top, topdown=topdown, follow_symlinks=follow
    )
    assert raised is None
    assert not errors
    # following: also link_to_dir, its b, b/c and e, and link_to_d under a/b and link_to_dir/b
    assert len(triples) == (14 if follow else 8)


@pytest.mark.parametrize("name", ["walk", "fwalk"])
def test_pruning_in_place(tree: Path, name: str) -> None:
    def prune(dirpath: Any, dirnames: list[Any]) -> None:
        dirnames[:] = sorted((d for d in dirnames if d != "b"), reverse=True)
        if dirpath.endswith("d"):
            dirnames.append("not_there")  # a name that is not a directory: an error or skip

    triples, errors, _ = assert_same_walk(name, str(tree), prune=prune)
    missing = "not_there" if name == "fwalk" else str(tree / "d" / "not_there")  # fwalk: dir_fd
    assert [e[:3] for e in errors] == [(FileNotFoundError, errno.ENOENT, missing)]
    assert not any(t[0].endswith("/b") for t in triples)
    assert [t[0] for t in triples[1:3]] == [str(tree / "empty"), str(tree / "d")]


@pytest.mark.parametrize("name", ["walk", "fwalk"])
def test_clearing_dirnames_stops_descent(tree: Path, name: str) -> None:
    triples, _, _ = assert_same_walk(name, str(tree), prune=lambda _, dirnames: dirnames.clear())
    assert len(triples) == 1


@pytest.mark.parametrize("name", ["walk", "fwalk"])
@pytest.mark.parametrize("topdown", [True, False])
@pytest.mark.parametrize("top", ["missing", "f1", "dangling", "self", "link_to_dir"])
def test_odd_tops(tree: Path, name: str, topdown: bool, top: str) -> None:
    """Tops that are missing, files or links: the same errors to onerror or raised, or triples."""
    assert_same_walk(name, str(tree / top), topdown=topdown)


def test_onerror_gets_the_scandir_error(tree: Path) -> None:
    _, errors, _ = assert_same_walk("walk", str(tree / "missing"))
    assert errors == [
        (FileNotFoundError, errno.ENOENT, str(tree / "missing"), None, os.strerror(errno.ENOENT))
    ]


def test_fwalk_missing_top_raises(tree: Path) -> None:
    _, _, raised = assert_same_walk("fwalk", str(tree / "missing"))
    assert raised is not None
    assert raised[:3] == (FileNotFoundError, errno.ENOENT, str(tree / "missing"))


@pytest.mark.parametrize("follow", [False, True])
@pytest.mark.parametrize("as_bytes", [False, True], ids=["str", "bytes"])
def test_fwalk_dir_fd(tree: Path, follow: bool, as_bytes: bool) -> None:
    os.unlink(tree / "a" / "e" / "up")
    fd = os.open(tree, os.O_RDONLY | os.O_DIRECTORY)
    try:
        top = b"a" if as_bytes else "a"
        triples, _, _ = assert_same_walk("fwalk", top, dir_fd=fd, follow_symlinks=follow)
        assert triples[0][0] == top
        assert len(triples) == (5 if follow else 4)
    finally:
        os.close(fd)


def test_walk_accepts_pathlike(tree: Path) -> None:
    triples, _, _ = assert_same_walk("walk", tree)
    assert triples[0][0] == str(tree)
    assert_same_walk("fwalk", tree)


def test_walk_closes_scandir_when_abandoned(tree: Path) -> None:
    """Stopping part way (the leak check of conftest watches the fds) agrees with os too."""
    assert_same_walk("walk", str(tree), limit=2)
    assert_same_walk("fwalk", str(tree), limit=2)
    walker: Any = aos.blocking.fwalk(str(tree))
    next(walker)
    walker.close()  # closes every fd fwalk holds


@pytest.fixture
def deep_tree(tmp_path: Path) -> Iterator[str]:
    """``tmp_path/d/d/.../d``, 1,500 levels, removed afterwards without recursion: on 3.11
    pytest's own clean-up of old temporary dirs (shutil.rmtree) would hit the recursion limit."""
    make_deep(tmp_path, DEEP)
    yield str(tmp_path)
    for dirpath, _, _ in aos.blocking.walk(str(tmp_path / "d"), topdown=False):
        os.rmdir(dirpath)


def make_deep(root: Path, depth: int) -> Path:
    """``root/d/d/.../d``, ``depth`` levels under ``root``, built without deep paths or recursion."""
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for _ in range(depth):
            os.mkdir("d", dir_fd=fd)
            child = os.open("d", os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
            os.close(fd)
            fd = child
    finally:
        os.close(fd)
    return root


@pytest.mark.parametrize("topdown", [True, False])
@pytest.mark.parametrize("name", ["walk", "fwalk"])
def test_deep_tree_has_no_recursion_limit(deep_tree: str, name: str, topdown: bool) -> None:
    """A 1,500-level tree walks fully; os's recursive versions (``walk`` before 3.12, ``fwalk``
    before 3.13) raise RecursionError."""
    top = deep_tree
    with fd_limit(DEEP + 200):
        ours = record(getattr(aos.blocking, name), top, topdown=topdown)
        with warnings.catch_warnings():  # 3.11's os.walk leaks scandir iterators on RecursionError
            warnings.simplefilter("ignore", ResourceWarning)
            theirs = record(getattr(os, name), top, topdown=topdown)
            gc.collect()
    triples, errors, raised = ours
    assert raised is None
    assert not errors
    assert len(triples) == DEEP + 1
    if sys.version_info < ((3, 12) if name == "walk" else (3, 13)):
        assert theirs[2] is not None
        assert theirs[2][0] is RecursionError
    else:
        assert ours == theirs


# Unreadable directories: root's CAP_DAC_OVERRIDE / CAP_DAC_READ_SEARCH ignore permission bits,
# so the comparison runs in a child that has them dropped.
DROP_CAPS: list[list[str]] = []
if shutil.which("setpriv"):
    DROP_CAPS.append(
        ["setpriv", "--inh-caps=-all", "--bounding-set=-dac_override,-dac_read_search"]
    )
if shutil.which("capsh"):
    DROP_CAPS.append(["capsh", "--drop=cap_dac_override,cap_dac_read_search", "--"])

UNREADABLE_CHILD = """
import json, os, sys
sys.path.insert(0, sys.argv[2])
import aos.blocking
from tests.blocking.test_walk import record
def plain(r):
    t, e, x = r
    return [list(map(repr, t)), [repr(v) for v in e], repr(x)]
out = {}
for name, flag in (("walk", "followlinks"), ("fwalk", "follow_symlinks")):
    for topdown in (True, False):
        for follow in (False, True):
            kw = {"topdown": topdown, flag: follow}
            out[f"{name} {kw}"] = [plain(record(getattr(m, name), sys.argv[1], **kw)) for m in (os, aos.blocking)]
try:
    os.listdir(os.path.join(sys.argv[1], "no_perms"))
    out["caps dropped"] = False
except PermissionError:
    out["caps dropped"] = True
print(json.dumps(out))
"""


def run_without_dac_caps(args: list[str]) -> subprocess.CompletedProcess[str]:
    """Run ``args`` with the DAC override capabilities dropped, by the first tool that works."""
    for prefix in DROP_CAPS:
        done = subprocess.run([*prefix, *args], capture_output=True, text=True, timeout=60)
        if done.returncode == 0:
            return done
    pytest.skip(
        f"cannot drop CAP_DAC_OVERRIDE (tried {[p[0] for p in DROP_CAPS]}): no setpriv/capsh, or not permitted"
    )


def test_unreadable_dirs(tmp_path: Path) -> None:
    top = tmp_path / "t"
    for d, mode in (("no_perms", 0o000), ("exec_only", 0o111), ("read_only", 0o444)):
        (top / d / "sub").mkdir(parents=True)
        (top / d / "file").write_text("x")
        (top / d).chmod(mode)
    (top / "ok").mkdir()
    os.symlink("no_perms", top / "link_to_no_perms")
    try:
        repo = str(Path(__file__).resolve().parents[2])
        done = run_without_dac_caps([sys.executable, "-c", UNREADABLE_CHILD, str(top), repo])
    finally:
        for d in ("no_perms", "exec_only", "read_only"):
            (top / d).chmod(0o755)
    out = json.loads(done.stdout)
    assert out.pop("caps dropped") is True
    assert len(out) == 8
    for key, (theirs, ours) in out.items():
        assert ours == theirs, key
        assert "PermissionError" in "".join(theirs[1]), key  # the unreadable dirs were reported


NAMES = ["a", "b", "cc", "é", "x y", "\udcff"]  # "\udcff" is the non-UTF-8 byte 0xff
Spec = list[tuple[int, str, str, int]]
SPECS = st.lists(
    st.tuples(
        st.integers(0, 30),  # parent: an index into the dirs made so far
        st.sampled_from(NAMES),
        st.sampled_from(["dir", "dir", "file", "link"]),
        st.integers(0, 30),  # link target: an index into everything made so far, 0 = dangling
    ),
    max_size=14,
)


def build(top: str, spec: Spec) -> None:
    """Make a random tree from ``spec``; links may point anywhere, loops and dangling included."""
    os.mkdir(top)
    dirs, made = [top], [top]
    for parent_index, name, kind, target_index in spec:
        parent = dirs[parent_index % len(dirs)]
        path = os.path.join(parent, name)
        if os.path.lexists(path):
            continue
        if kind == "dir":
            os.mkdir(path)
            dirs.append(path)
        elif kind == "file":
            with open(path, "w"):
                pass
        else:
            target = "missing" if target_index == 0 else made[target_index % len(made)]
            os.symlink(os.path.relpath(target, parent), path)
        made.append(path)


def has_link_loop(top: str) -> bool:
    """Whether following links leads back into a directory on the way (fwalk would not stop)."""
    for dirpath, _, _ in os.walk(top, followlinks=True):
        real, up = os.path.realpath(dirpath), dirpath
        while up != top:
            up = os.path.dirname(up)
            if os.path.realpath(up) == real:
                return True
    return False


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(spec=SPECS, pruned=st.sets(st.sampled_from(NAMES)), as_bytes=st.booleans())
def test_random_trees(tmp_path: Path, spec: Spec, pruned: set[str], as_bytes: bool) -> None:
    with tempfile.TemporaryDirectory(dir=tmp_path) as scratch:
        top = os.path.join(scratch, "t")
        build(top, spec)
        loop = has_link_loop(top)
        walk_top: Any = os.fsencode(top) if as_bytes else top
        unwanted = {os.fsencode(n) for n in pruned} if as_bytes else pruned

        def prune(_: Any, dirnames: list[Any]) -> None:
            dirnames[:] = [d for d in dirnames if d not in unwanted]

        for topdown in (True, False):
            for follow in (False, True):
                for edit in (None, prune):
                    # a loop followed goes on until ELOOP (walk): compare the first 200 triples
                    assert_same_walk(
                        "walk", walk_top, topdown=topdown, followlinks=follow, prune=edit, limit=200
                    )
                    if not (follow and loop):  # fwalk round a loop only stops at EMFILE
                        assert_same_walk(
                            "fwalk", walk_top, topdown=topdown, follow_symlinks=follow, prune=edit
                        )
