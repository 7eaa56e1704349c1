"""The command line: ``du`` and ``find`` agree with the real tools on a generated tree; ``tree``,
errors, Ctrl-C and the loop option behave."""

from __future__ import annotations

import asyncio
import errno
import os
import select
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

import aos
from aos._cli import _common, _scan, main
from aos._cli._common import Progress, human_size
from tests.aio._helpers import loop_factories

pytestmark = pytest.mark.skipif(
    shutil.which("du") is None or shutil.which("find") is None, reason="needs GNU du and find"
)


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tree with every kind of entry du and find treat specially."""
    root = tmp_path_factory.mktemp("cli") / "root"
    (root / "a" / "b" / "c").mkdir(parents=True)
    (root / "empty").mkdir()
    (root / ".hidden").mkdir()
    for i, size in enumerate([0, 1, 511, 512, 513, 4095, 4096, 4097, 100_000, 1_500_000]):
        folder = [root, root / "a", root / "a" / "b", root / "a" / "b" / "c"][i % 4]
        (folder / f"f{i}.{'txt' if i % 2 else 'bin'}").write_bytes(b"x" * size)
    (root / ".hidden" / "secret.txt").write_bytes(b"y" * 3000)
    (root / "a" / "-Dash.txt").write_bytes(b"d")  # a name that looks like an option
    with open(root / "a" / "sparse.img", "wb") as f:  # apparent size far above blocks used
        f.truncate(5_000_000)
        f.write(b"z" * 10)
    os.link(root / "a" / "f1.txt", root / "hard1.txt")  # one inode, counted once
    os.link(root / "a" / "b" / "f6.bin", root / "a" / "b" / "c" / "hard2.bin")
    os.symlink("a/f1.txt", root / "link-to-file")
    os.symlink("a", root / "link-to-dir")
    os.symlink("nowhere", root / "a" / "dangling")
    os.mkfifo(root / "a" / "fifo")
    return root


def run_cli(*argv: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    status = main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


def run_tool(*argv: str) -> str:
    return subprocess.run(argv, check=True, capture_output=True, text=True).stdout


def run_tool_bytes(*argv: str) -> bytes:
    return subprocess.run(argv, check=True, capture_output=True).stdout


def as_table(output: str) -> dict[str, str]:
    """``size<TAB>path`` lines as {path: size}."""
    return {path: size for size, path in (line.split("\t", 1) for line in output.splitlines())}


@pytest.mark.parametrize(
    "options",
    [
        ["--block-size=1"],
        ["-b"],
        ["-s", "--block-size=1"],
        ["-sb"],
        ["-a", "--block-size=1"],
        ["-a", "-b", "--max-depth=1"],
        ["--max-depth=2"],
        ["-k"],
        ["-m", "-a"],
        ["-h", "-a"],
        ["--apparent-size", "-h"],
        ["-B", "512"],
        ["-B", "1KB"],  # SI units are powers of 1000, the others of 1024
        ["-B", "2MB"],
        ["-B", "1KiB"],
        ["-B", "010"],  # octal, as strtoumax reads it
        ["-B", "K"],  # a unit alone is printed after each size
        ["-a", "--block-size=KB"],
        ["-B", "kB"],
        ["-B", "KiB"],
        ["-B", "MB"],
        ["-B", "KD"],
        ["-B", "E"],
        ["-h", "-k"],  # the last unit given wins
        ["-k", "-h"],
        ["-b", "-k"],  # (-b's apparent sizes stay)
        ["-m", "-B1"],
        ["-B1", "-h"],
    ],
    ids=lambda options: " ".join(options),
)
def test_du_equals_du(tree: Path, options: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    status, out, err = run_cli("du", *options, str(tree), capsys=capsys)
    assert (status, err) == (0, "")
    expected = as_table(run_tool("du", *options, str(tree)))
    assert as_table(out) == expected
    assert len(out.splitlines()) == len(expected)  # no path printed twice


@pytest.mark.parametrize(
    "options", [["-s", "-a"], ["-sa"], ["-s", "-d", "1"], ["-s", "-d", "0"]], ids=" ".join
)
def test_du_refuses_or_warns_as_du_does(
    tree: Path, options: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    """-s with -a, or with a depth other than 0, is refused (status 1); with -d 0, a warning."""
    status, out, err = run_cli("du", *options, str(tree), capsys=capsys)
    theirs = subprocess.run(["du", *options, str(tree)], capture_output=True, text=True)
    assert (status, out) == (theirs.returncode, theirs.stdout)
    assert err == theirs.stderr.replace("du", "aos du")  # (du: ..., Try 'du --help' ...)


@pytest.mark.parametrize("slashes", ["/", "//", "///"])
def test_du_prints_a_path_with_trailing_slashes_as_du_does(
    tree: Path, slashes: str, capsys: pytest.CaptureFixture[str]
) -> None:
    path = str(tree / "a") + slashes
    status, out, err = run_cli("du", "-a", path, capsys=capsys)
    assert (status, err) == (0, "")
    assert out.splitlines() == run_tool("du", "-a", path).splitlines()


def test_paths_longer_than_path_max_are_walked_as_du_and_find_walk_them(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fd = _deep(tmp_path, 20)  # 20 names of 250 bytes: more than PATH_MAX (4096 bytes) allows
    leaf = os.open("leaf", os.O_WRONLY | os.O_CREAT, dir_fd=fd)
    os.write(leaf, b"x" * 5000)
    os.close(leaf)
    os.close(fd)
    status, out, err = run_cli("du", "-a", str(tmp_path), capsys=capsys)
    assert (status, err) == (0, "")
    assert out.splitlines() == run_tool("du", "-a", str(tmp_path)).splitlines()
    status, out, err = run_cli("find", str(tmp_path), "--size", "+9", capsys=capsys)
    assert (status, err) == (0, "")
    assert out.splitlines() == run_tool("find", str(tmp_path), "-size", "+9").splitlines()
    assert out.endswith("/leaf\n")


def _deep(top: Path, levels: int) -> int:
    """``levels`` directories of 250-byte names below ``top``: an fd of the innermost (its path
    is too long to open after 16)."""
    fd = os.open(top, os.O_RDONLY)
    for _ in range(levels):
        os.mkdir("N" * 250, dir_fd=fd)
        inner = os.open("N" * 250, os.O_RDONLY, dir_fd=fd)
        os.close(fd)
        fd = inner
    return fd


def test_errors_below_path_max_name_the_whole_path_and_leave_no_fd(tmp_path: Path) -> None:
    """A directory past PATH_MAX that cannot be opened: the error names its whole path, as
    GNU's tools do, and the parts of the path opened on the way are closed."""
    os.close(_deep(tmp_path, 20))
    missing = os.path.join(tmp_path, *["N" * 250] * 20, "missing")
    before = len(os.listdir("/proc/self/fd"))
    for _ in range(3):
        with pytest.raises(FileNotFoundError) as caught:
            _scan._read_directory(missing, want_stat=True)
        assert caught.value.filename == missing
    assert len(os.listdir("/proc/self/fd")) == before


def test_a_directory_that_opens_but_cannot_be_listed_is_reported_by_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """As /proc/1/map_files is to root in a container: the read of its fd fails. The error
    named the fd, and describing it ended the walk with a TypeError."""
    (tmp_path / "unlistable").mkdir()
    (tmp_path / "other").touch()
    real_scandir = os.scandir

    def refusing(path: Any) -> Any:
        if isinstance(path, int) and os.readlink(f"/proc/self/fd/{path}").endswith("unlistable"):
            raise PermissionError(errno.EACCES, "Permission denied", path)
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", refusing)
    for command in (["find"], ["du", "-a"]):
        status, out, err = run_cli(*command, str(tmp_path), capsys=capsys)
        assert status == 1
        assert (
            err == f"aos {command[0]}: cannot access '{tmp_path}/unlistable': Permission denied\n"
        )
        assert f"{tmp_path}/other" in out


@pytest.mark.parametrize("size", ["kb", "KIB", "1K ", "Ki", "1e", "Z", "1Y", "B", "0", "1.5K"])
def test_du_rejects_the_block_sizes_du_rejects(
    tmp_path: Path, size: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert subprocess.run(["du", "-B", size, str(tmp_path)], capture_output=True).returncode == 1
    with pytest.raises(SystemExit) as exit_info:
        main(["du", "-B", size, str(tmp_path)])
    assert exit_info.value.code == 2  # an argparse usage error
    assert "block size" in capsys.readouterr().err


@pytest.mark.parametrize(
    "options", [["-b"], ["-a", "-b"], ["-a", "-b", "--max-depth=1"]], ids=" ".join
)
def test_du_prints_in_the_order_du_does(
    tree: Path, options: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    """Each directory after what is in it, siblings in directory order, files (-a) where met."""
    status, out, _ = run_cli("du", *options, str(tree), capsys=capsys)
    assert status == 0
    assert out.splitlines() == run_tool("du", *options, str(tree)).splitlines()


def test_du_counts_hard_links_once_across_paths(
    tree: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    paths = [str(tree / "a"), str(tree / "hard1.txt"), str(tree)]
    status, out, _ = run_cli("du", "-sb", *paths, capsys=capsys)
    assert status == 0
    assert as_table(out) == as_table(run_tool("du", "-sb", *paths))


@pytest.mark.parametrize(
    "paths",
    [["t/a.txt", "t"], ["t/a.txt", "t/a.txt"], ["t", "t/sub/f"]],
    ids=" ".join,
)
@pytest.mark.parametrize("options", [["-b"], ["-sb"]], ids=" ".join)
def test_du_counts_a_path_given_twice_once(
    tmp_path: Path,
    paths: list[str],
    options: list[str],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With more than one PATH du remembers every inode, not only hard-linked ones."""
    (tmp_path / "t" / "sub").mkdir(parents=True)
    (tmp_path / "t" / "a.txt").write_text("x")
    (tmp_path / "t" / "sub" / "f").write_text("hi")
    monkeypatch.chdir(tmp_path)
    status, out, _ = run_cli("du", *options, *paths, capsys=capsys)
    assert status == 0
    assert out.splitlines() == run_tool("du", *options, *paths).splitlines()


@pytest.mark.parametrize(
    ("ours", "theirs"),
    [
        ([], []),
        (["--name", "*.txt"], ["-name", "*.txt"]),
        (["--iname", "F1*"], ["-iname", "F1*"]),
        (["--name", ".*"], ["-name", ".*"]),
        (["--type", "f"], ["-type", "f"]),
        (["--type", "d"], ["-type", "d"]),
        (["--type", "l"], ["-type", "l"]),
        (["--type", "p"], ["-type", "p"]),
        (["--type", "f,l"], ["-type", "f,l"]),
        (["--size", "+1k"], ["-size", "+1k"]),
        (["--size=-1M"], ["-size", "-1M"]),
        (["--size", "1"], ["-size", "1"]),
        (["--size", "513c"], ["-size", "513c"]),
        (["--size", "+2", "--size=-9"], ["-size", "+2", "-size", "-9"]),
        (["--size", "-1k"], ["-size", "-1k"]),  # (argparse alone took -1k for an option)
        (["--siz", "-1k"], ["-size", "-1k"]),  # (an abbreviation, as argparse allows)
        (["--name", "-*"], ["-name", "-*"]),
        (["--iname", "-D*"], ["-iname", "-D*"]),
        (["--size", "-2", "--size", "+0"], ["-size", "-2", "-size", "+0"]),
        (["--name", "f*", "--name", "*.txt"], ["-name", "f*", "-name", "*.txt"]),  # both apply
        (["--iname", "F*", "--name", "*1*"], ["-iname", "F*", "-name", "*1*"]),
        (["--type", "f,l", "--type", "l,d"], ["-type", "f,l", "-type", "l,d"]),
        (
            ["--type", "f", "--name", "f*", "--size=-2k"],
            ["-type", "f", "-name", "f*", "-size", "-2k"],
        ),
        (["--max-depth", "1"], ["-maxdepth", "1"]),
        (["--min-depth", "2", "--name", "*.bin"], ["-mindepth", "2", "-name", "*.bin"]),
    ],
    ids=lambda args: " ".join(args) or "all",
)
def test_find_equals_find(
    tree: Path, ours: list[str], theirs: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    status, out, err = run_cli("find", str(tree), *ours, capsys=capsys)
    assert (status, err) == (0, "")
    expected = run_tool("find", str(tree), *theirs)  # depth options come first in each case
    assert sorted(out.splitlines()) == sorted(expected.splitlines())
    assert out  # every case above matches something


@pytest.mark.parametrize(
    ("top", "pattern"), [("t/sub", "sub"), ("t/", "t"), ("t//", "t"), ("t/sub/.", "."), ("/", "/")]
)
@pytest.mark.parametrize("option", ["name", "iname"])
def test_find_matches_the_name_of_the_starting_point(
    tmp_path: Path,
    top: str,
    pattern: str,
    option: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """find tests a starting point's last component, without its trailing slashes."""
    (tmp_path / "t" / "sub").mkdir(parents=True)
    monkeypatch.chdir(tmp_path)
    theirs = ["-maxdepth", "0", f"-{option}", pattern]
    status, out, err = run_cli("find", top, "--max-depth=0", f"--{option}", pattern, capsys=capsys)
    assert (status, err) == (0, "")
    assert out == run_tool("find", top, *theirs) == f"{top}\n"


GLOB_NAMES = [
    "a*b",
    "axb",
    "bcd",
    "]x",
    "-y",
    "A1",
    "b\\c",
    "[ab]",
    "a[b",
    "^a",
    "!a",
    "a?",
    "z9",
    "[",
]


@pytest.mark.parametrize(
    "pattern",
    [
        "[^a]*",  # ^ negates, as ! does
        "[!a]*",
        "a\\*b",  # a backslash quotes the next character
        "a\\?",
        "\\[ab]",
        "b\\\\c",
        "[\\]]x",
        "[]]*",  # ] first in a bracket is literal
        "[!]]*",
        "[]-a]*",
        "[a-]*",
        "[z-a]*",  # an empty range
        "*[[:digit:]]",
        "[[:upper:]]*",
        "a[b",  # never closed: a literal [
        "[",
        "[[]*",
        "?",
    ],
)
@pytest.mark.parametrize("option", ["name", "iname"])
def test_find_reads_name_patterns_as_find_does(
    tmp_path: Path, pattern: str, option: str, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in GLOB_NAMES:
        (tmp_path / name).touch()
    status, out, err = run_cli(
        "find", str(tmp_path), "--min-depth=1", f"--{option}", pattern, capsys=capsys
    )
    assert (status, err) == (0, "")
    expected = run_tool("find", str(tmp_path), "-mindepth", "1", f"-{option}", pattern)
    assert sorted(out.splitlines()) == sorted(expected.splitlines())


BAR = "│\u00a0\u00a0 "  # what tree draws below an entry that has siblings after it


def gnu_tree(*argv: str | bytes) -> bytes:
    """What GNU tree 2 prints in a UTF-8 locale (the one whose drawing aos follows)."""
    version = subprocess.run(["tree", "--version"], capture_output=True, text=True).stdout
    if not version.startswith("tree v") or int(version[6:].split(".")[0]) < 2:
        pytest.skip(f"needs GNU tree 2 or later, not {version.strip()!r}")
    env = {**os.environ, "LC_ALL": "C.UTF-8"}
    done = subprocess.run(["tree", *argv], capture_output=True, env=env, check=True)
    return done.stdout


@pytest.mark.skipif(shutil.which("tree") is None, reason="needs GNU tree")
@pytest.mark.parametrize(
    "options", [[], ["-a"], ["-d"], ["-L", "1"], ["-a", "-d", "-L", "2"]], ids=" ".join
)
def test_tree_equals_tree(tree: Path, options: list[str]) -> None:
    assert run_aos_bytes("tree", *options, str(tree)) == gnu_tree(*options, str(tree))


@pytest.mark.skipif(shutil.which("tree") is None, reason="needs GNU tree")
def test_tree_writes_and_sorts_odd_names_as_tree_does(tmp_path: Path) -> None:
    """Control characters and bytes that are not UTF-8 in octal; byte order (C.UTF-8's)."""
    top = os.fsencode(tmp_path)
    for name in [b"new\nline", b"\xff\xfe", "\ue000pua".encode(), b"caf\xc3\xa9", b"tab\there"]:
        os.mkdir(os.path.join(top, name))
        open(os.path.join(top, name, b"x\x7fy"), "w").close()
    os.symlink(b"to\x01\xff", os.path.join(top, b"link"))
    assert run_aos_bytes("tree", "-a", str(tmp_path)) == gnu_tree("-a", top)


def test_tree_draws_sorted_entries(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "b" / "inner").mkdir(parents=True)
    (tmp_path / "a.txt").write_text("a")
    (tmp_path / "b" / "inner" / "deep.txt").write_text("d")
    (tmp_path / "b" / "z.txt").write_text("z")
    (tmp_path / ".dot").write_text("hidden")
    os.symlink("a.txt", tmp_path / "c-link")
    status, out, err = run_cli("tree", str(tmp_path), capsys=capsys)
    assert (status, err) == (0, "")
    assert out == (
        f"{tmp_path}\n"
        "├── a.txt\n"
        "├── b\n"
        f"{BAR}├── inner\n"
        f"{BAR}{BAR}└── deep.txt\n"
        f"{BAR}└── z.txt\n"
        "└── c-link -> a.txt\n"
        "\n3 directories, 4 files\n"  # (tree 2 counts a PATH with entries)
    )
    _, out, _ = run_cli("tree", "-a", "-d", "-L", "1", str(tmp_path), capsys=capsys)
    assert out == f"{tmp_path}\n└── b\n\n2 directories\n"
    _, out, _ = run_cli("tree", "-a", str(tmp_path / "b" / "inner"), capsys=capsys)
    assert out.endswith("└── deep.txt\n\n1 directory, 1 file\n")
    _, out, _ = run_cli(
        "tree", str(tmp_path / ".dot"), str(tmp_path / "b" / "z.txt"), capsys=capsys
    )
    assert out == (  # a PATH that is not a directory: tree's words, counted as a file
        f"{tmp_path}/.dot  [error opening dir]\n{tmp_path}/b/z.txt  [error opening dir]\n"
        "\n0 directories, 2 files\n"
    )


def test_tree_lists_a_link_to_a_directory_as_one_without_entering_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "dir").mkdir()
    (tmp_path / "dir" / "f").touch()
    (tmp_path / "file").touch()
    os.symlink("dir", tmp_path / "ldir")
    os.symlink("nowhere", tmp_path / "dangling")
    status, out, err = run_cli("tree", str(tmp_path), capsys=capsys)
    assert (status, err) == (0, "")
    assert out == (
        f"{tmp_path}\n"
        "├── dangling -> nowhere\n"
        "├── dir\n"
        f"{BAR}└── f\n"
        "├── file\n"
        "└── ldir -> dir\n"
        "\n3 directories, 3 files\n"
    )
    _, out, _ = run_cli("tree", "-d", str(tmp_path), capsys=capsys)
    assert out == f"{tmp_path}\n├── dir\n└── ldir -> dir\n\n3 directories\n"


def test_tree_shows_a_link_it_cannot_read_and_the_rest(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A link removed between the directory read and its readlink: tree's words, not a lost listing."""
    (tmp_path / "a").touch()
    os.symlink("a", tmp_path / "gone")

    async def removed_meanwhile(path: str) -> str:
        os.unlink(path)
        return await real_readlink(path)

    real_readlink = aos.readlink
    monkeypatch.setattr(aos, "readlink", removed_meanwhile)
    status, out, err = run_cli("tree", str(tmp_path), capsys=capsys)
    assert (status, err) == (0, "")
    assert out == (
        f"{tmp_path}\n├── a\n└── gone -> [Error reading symbolic link information]\n"
        "\n1 directory, 2 files\n"
    )


@pytest.mark.parametrize("loop", ["asyncio", "uvloop", "trio"])
def test_every_loop_gives_the_same_answer(
    tree: Path, loop: str, capsys: pytest.CaptureFixture[str]
) -> None:
    if loop == "uvloop":
        pytest.importorskip("uvloop", reason="uvloop is not installed")
    _, reference, _ = run_cli("du", "-a", "-b", str(tree), capsys=capsys)
    status, out, _ = run_cli("du", "-a", "-b", "--loop", loop, str(tree), capsys=capsys)
    assert status == 0
    assert as_table(out) == as_table(reference)


def test_missing_path_is_one_line_and_status_1(tmp_path: Path) -> None:
    missing = tmp_path / "missing"
    for command in ("du", "find", "tree"):
        done = subprocess.run(
            [sys.executable, "-m", "aos", command, str(missing)],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 1
        assert (
            done.stderr
            == f"aos {command}: cannot {'open' if command == 'tree' else 'access'} '{missing}': No such file or directory\n"
        )


def run_aos_bytes(*argv: str) -> bytes:
    """``python -m aos ARGV``'s stdout as bytes, under a strict UTF-8 stdout (as in a UTF-8 locale)."""
    env = {**os.environ, "PYTHONIOENCODING": "utf-8"}
    done = subprocess.run(
        [sys.executable, "-m", "aos", *argv], capture_output=True, env=env, timeout=60
    )
    assert (done.returncode, done.stderr) == (0, b"")
    return done.stdout


def test_names_that_are_not_utf8_are_printed_as_their_bytes(tmp_path: Path) -> None:
    """GNU tools print such a name's raw bytes; aos used to die of a UnicodeEncodeError."""
    os.mkdir(os.path.join(os.fsencode(tmp_path), b"caf\xe9"))
    open(os.path.join(os.fsencode(tmp_path), b"caf\xe9", b"na\xefve"), "w").close()
    top = str(tmp_path)
    found = run_aos_bytes("find", top)
    assert sorted(found.splitlines()) == sorted(run_tool_bytes("find", top).splitlines())
    du = run_aos_bytes("du", "-ab", top)
    assert du == run_tool_bytes("du", "-ab", top)
    drawn = run_aos_bytes("tree", top)  # (tree writes such a byte in octal: \351)
    last = "└── ".encode()
    assert drawn.endswith(last + b"caf\\351\n    " + last + b"na\\357ve\n\n2 directories, 1 file\n")


@pytest.mark.parametrize(
    ("ours", "theirs"),
    [
        (["du", "-d", "-1"], ["du", "-d", "-1"]),
        (["find", "--max-depth", "-1"], ["find", "-maxdepth", "-1"]),
        (["find", "--min-depth=-1"], ["find", "-mindepth", "-1"]),
        (["tree", "-L", "0"], ["tree", "-L", "0"]),
    ],
    ids=lambda argv: " ".join(argv),
)
def test_a_depth_out_of_range_is_rejected_as_gnu_does(
    tmp_path: Path, ours: list[str], theirs: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    if shutil.which(theirs[0]) is None:
        pytest.skip(f"needs GNU {theirs[0]}")
    tool, *options = theirs
    assert subprocess.run([tool, str(tmp_path), *options], capture_output=True).returncode == 1
    with pytest.raises(SystemExit) as exit_info:
        main([*ours, str(tmp_path)])
    assert exit_info.value.code == 2  # an argparse usage error
    assert "or more, not" in capsys.readouterr().err


def test_other_paths_are_still_reported_after_an_error(
    tree: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status, out, err = run_cli("du", "-sb", str(tree / "missing"), str(tree / "a"), capsys=capsys)
    assert status == 1
    assert len(err.splitlines()) == 1
    assert as_table(out) == as_table(run_tool("du", "-sb", str(tree / "a")))


def test_unreadable_directory_is_reported_and_the_walk_goes_on(tmp_path: Path) -> None:
    (tmp_path / "locked").mkdir()
    (tmp_path / "open").mkdir()
    (tmp_path / "open" / "file").write_text("x")
    os.chmod(tmp_path / "locked", 0)
    command = [sys.executable, "-m", "aos", "find", str(tmp_path)]
    if os.geteuid() == 0:  # root reads any directory: run the child without that power
        setpriv = shutil.which("setpriv")
        if setpriv is None:
            pytest.skip("running as root and setpriv (util-linux) is not installed")
        command[:0] = [setpriv, "--bounding-set=-dac_override,-dac_read_search"]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=60)
    finally:
        os.chmod(tmp_path / "locked", 0o755)
    assert done.returncode == 1
    assert done.stderr == f"aos find: cannot access '{tmp_path}/locked': Permission denied\n"
    assert sorted(done.stdout.splitlines()) == [
        str(tmp_path),
        f"{tmp_path}/locked",
        f"{tmp_path}/open",
        f"{tmp_path}/open/file",
    ]


def more_names_than_a_pipe_holds(directory: Path) -> None:
    """2,000 files of 105-byte names: far more output than a pipe holds."""
    for i in range(2000):
        (directory / f"{i:04d}-{'x' * 100}").touch()


def test_ctrl_c_stops_without_a_traceback(tmp_path: Path) -> None:
    """SIGINT while ``find`` is blocked writing to a full pipe: it dies of SIGINT, as GNU tools
    do (a shell says 130, and a script's loop stops too), with nothing on stderr."""
    more_names_than_a_pipe_holds(tmp_path)
    child = subprocess.Popen(
        [sys.executable, "-m", "aos", "find", str(tmp_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        assert child.stdout is not None
        ready, _, _ = select.select([child.stdout], [], [], 60)  # it is walking and writing
        assert ready
        child.send_signal(signal.SIGINT)
        _, err = child.communicate(timeout=60)  # reads the rest, so a slow exit cannot deadlock
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert child.returncode == -signal.SIGINT
    assert err == b""


@pytest.mark.parametrize("loop", ["asyncio", "uvloop", "trio"])
def test_ctrl_c_stops_a_command_whose_reader_reads_no_more(tmp_path: Path, loop: str) -> None:
    """``aos find / | less``, with less paused: ``find`` blocked writing to a full pipe dies of
    the first SIGINT, as GNU find does (on asyncio and uvloop it used to go on: the runner's
    cancel waited for the write)."""
    if loop == "uvloop":
        pytest.importorskip("uvloop", reason="uvloop is not installed")
    more_names_than_a_pipe_holds(tmp_path)
    with subprocess.Popen(
        [sys.executable, "-m", "aos", "find", "--loop", loop, str(tmp_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    ) as child:
        assert child.stdout is not None
        assert child.stderr is not None
        try:
            ready, _, _ = select.select([child.stdout], [], [], 60)  # it is writing
            assert ready
            time.sleep(0.5)  # the pipe is full: it is blocked in write
            child.send_signal(signal.SIGINT)
            assert child.wait(timeout=30) == -signal.SIGINT
            assert child.stderr.read() == b""
        finally:
            if child.poll() is None:
                child.kill()


def launcher(how: str) -> list[str]:
    """``python -m aos``, or the ``aos`` command that installing aos makes."""
    if how == "python -m aos":
        return [sys.executable, "-m", "aos"]
    script = Path(sys.executable).with_name("aos")
    if not script.exists():
        pytest.skip(f"aos is not installed beside {sys.executable} (no {script})")
    return [str(script)]


@pytest.mark.parametrize("how", ["python -m aos", "aos"])
@pytest.mark.parametrize("argv", [["find"], ["du", "-a"], ["tree"]], ids=" ".join)
def test_a_reader_that_goes_away_ends_the_command_quietly(
    tmp_path: Path, argv: list[str], how: str
) -> None:
    """``aos find | head -1``: it dies of SIGPIPE, as GNU tools do (a shell says 141), with
    nothing on stderr (find and du reported a \"Broken pipe\" error per PATH left; the
    installed command exited with 141 instead)."""
    more_names_than_a_pipe_holds(tmp_path)
    with subprocess.Popen(
        [*launcher(how), *argv, str(tmp_path), str(tmp_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    ) as child:  # (closes its pipes and waits for it on the way out)
        assert child.stdout is not None
        assert child.stderr is not None
        try:
            assert child.stdout.readline()
            child.stdout.close()
            err = child.stderr.read()
            child.wait(timeout=60)
        finally:
            if child.poll() is None:
                child.kill()
    assert (child.returncode, err) == (-signal.SIGPIPE, b"")


def test_progress_renders_counts(tmp_path: Path) -> None:
    pytest.importorskip("rich", reason="rich (the cli extra) is not installed")
    progress = Progress("du:", enabled=False)
    progress.advance("/some/dir", 2048)
    progress.advance("/some/dir/file", 1024)
    text = progress._render().plain
    assert text.startswith("du: 2 entries, 3.0KB")
    assert "/some/dir/file" in text


def test_forced_progress_leaves_the_results_alone(
    tree: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status, out, _ = run_cli("du", "-sb", "--progress", str(tree), capsys=capsys)
    assert status == 0
    assert as_table(out) == as_table(run_tool("du", "-sb", str(tree)))


@pytest.mark.parametrize(
    ("n", "text"),
    [
        (0, "0"),
        (1023, "1023"),
        (1024, "1.0K"),
        (1025, "1.1K"),
        (10 * 1024 - 1, "10K"),
        (10 * 1024, "10K"),
        (10 * 1024 + 1, "11K"),
        (1024**2 - 1, "1.0M"),
        (1024**2, "1.0M"),
        (5 * 1024**3 + 1, "5.1G"),
    ],
)
def test_human_size_rounds_up_like_du(n: int, text: str) -> None:
    assert human_size(n) == text


def _engine_frame() -> Any:
    """A frame of code that counts as aos's engine (its module's name is under aos._async)."""
    namespace: dict[str, Any] = {"__name__": "aos._async._somewhere", "sys": sys}
    exec("def step():\n    return sys._getframe()\n", namespace)
    return namespace["step"]()


@pytest.mark.parametrize("factory", loop_factories())
def test_ctrl_c_inside_the_engine_is_raised_by_the_loops_next_callback(factory: Any) -> None:
    """The command's SIGINT handler raises KeyboardInterrupt where the loop's thread is, but
    not inside aos's engine (a worker thread starting: the interrupt was lost there): the code
    there goes on, and the loop raises it from a callback. Elsewhere it is raised at once."""
    went_on: list[bool] = []

    async def interrupted(frame: Any) -> None:
        _common._interrupt(signal.SIGINT, frame)
        went_on.append(True)
        await asyncio.Event().wait()  # (until the loop raises it)

    with asyncio.Runner(loop_factory=factory) as runner, pytest.raises(KeyboardInterrupt):
        runner.run(interrupted(_engine_frame()))
    assert went_on == [True]
    with asyncio.Runner(loop_factory=factory) as runner, pytest.raises(KeyboardInterrupt):
        runner.run(interrupted(sys._getframe()))
    assert went_on == [True]
    with pytest.raises(KeyboardInterrupt):  # no loop running: at once
        _common._interrupt(signal.SIGINT, _engine_frame())
