"""The runnable examples: each one's ``main`` on every loop, and each script run as a user runs it."""

from __future__ import annotations

import http.client
import importlib
import mimetypes
import os
import re
import select
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import anyio
import anyio.from_thread
import anyio.lowlevel
import pytest

import aos

T = TypeVar("T")

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
sys.path.insert(0, str(EXAMPLES))
walker: Any = importlib.import_module("walker")
static_server: Any = importlib.import_module("static_server")
deploy: Any = importlib.import_module("deploy")
parallel_run: Any = importlib.import_module("parallel_run")


async def in_own_thread(fn: Callable[[], T]) -> T:
    """``fn()`` in a daemon thread of its own (not an anyio worker, which outlives the test)."""
    done = anyio.Event()
    token = anyio.lowlevel.current_token()
    outcome: list[T | BaseException] = []

    def target() -> None:
        try:
            outcome.append(fn())
        except BaseException as err:
            outcome.append(err)
        finally:
            anyio.from_thread.run_sync(done.set, token=token)

    threading.Thread(target=target, daemon=True).start()
    await done.wait()
    result = outcome[0]
    if isinstance(result, BaseException):
        raise result
    return result


# walker ------------------------------------------------------------------------------------------


@pytest.fixture
def small_tree(tmp_path: Path) -> Path:
    root = tmp_path / "tree"
    (root / "a" / "b").mkdir(parents=True)
    (root / "c").mkdir()
    for i, folder in enumerate([root, root / "a", root / "a" / "b", root / "c"] * 3):
        (folder / f"file{i}").write_bytes(b"x" * (i * 1000 + 1))
    os.symlink("a", root / "link")
    return root


@pytest.fixture
def walk_reference(small_tree: Path) -> tuple[int, int, int, list[tuple[int, str]]]:
    """What walker.main must find in small_tree, computed with os.walk and os.lstat."""
    top = small_tree
    directories = files = total = 0
    sizes = []
    for dirpath, _, filenames in os.walk(top):
        directories += 1
        for name in filenames:
            size = os.lstat(os.path.join(dirpath, name)).st_size
            files += 1
            total += size
            sizes.append((size, os.path.join(dirpath, name)))
    return directories, files, total, sorted(sizes, reverse=True)[:3]


@pytest.mark.anyio
async def test_walker_counts_the_tree(
    small_tree: Path,
    walk_reference: tuple[int, int, int, list[tuple[int, str]]],
    capsys: pytest.CaptureFixture[str],
) -> None:
    expected = walk_reference
    summary = await walker.main(str(small_tree), largest=3)
    assert (summary.directories, summary.files, summary.total_bytes, summary.largest) == expected
    assert capsys.readouterr().out.startswith(f"{expected[0]} directories, {expected[1]} files, ")


# static_server -----------------------------------------------------------------------------------


@pytest.fixture
def site(tmp_path: Path) -> Path:
    root = tmp_path / "site"
    (root / "docs").mkdir(parents=True)
    (root / "hello.txt").write_text("hello\n")
    (root / "big.bin").write_bytes(os.urandom(3 * 1024 * 1024))  # more than a socket buffer holds
    (root / "docs" / "index.html").write_text("<h1>docs</h1>")
    (root / "empty").write_bytes(b"")
    (tmp_path / "secret").write_text("outside the root")
    mimetypes.init()  # here, so that no test leaves an idle anyio worker behind from serve()'s call
    return root


@pytest.fixture
def big_file(site: Path) -> bytes:
    return (site / "big.bin").read_bytes()


def fetch(port: int, method: str, target: str) -> tuple[int, dict[str, str], bytes]:
    """One request with a real HTTP client over loopback."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request(method, target)
        response = conn.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        conn.close()


@pytest.mark.anyio
async def test_static_server_serves_files_with_sendfile(site: Path, big_file: bytes) -> None:
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
    port = listener.extra(anyio.abc.SocketAttribute.local_port)

    def client() -> dict[str, tuple[int, dict[str, str], bytes]]:
        requests = {
            "big": ("GET", "/big.bin"),
            "hello": ("GET", "/hello.txt"),
            "head": ("HEAD", "/hello.txt"),
            "index": ("GET", "/docs/"),
            "empty": ("GET", "/empty"),
            "missing": ("GET", "/missing"),
            "escape": ("GET", "/../secret"),
            "encoded-escape": ("GET", "/%2e%2e/secret"),
            "post": ("POST", "/hello.txt"),
        }
        return {key: fetch(port, *request) for key, request in requests.items()}

    async with anyio.create_task_group() as tg:
        tg.start_soon(static_server.serve, str(site), listener)
        answers = await in_own_thread(client)
        tg.cancel_scope.cancel()

    big = big_file
    assert answers["big"][0] == 200
    assert answers["big"][2] == big
    assert answers["big"][1]["Content-Length"] == str(len(big))
    assert answers["hello"][0::2] == (200, b"hello\n")
    assert answers["hello"][1]["Content-Type"] == "text/plain"
    assert answers["head"][0::2] == (200, b"")
    assert answers["head"][1]["Content-Length"] == "6"
    assert answers["index"][0::2] == (200, b"<h1>docs</h1>")
    assert answers["empty"][0::2] == (200, b"")
    assert answers["missing"][0] == 404
    for key in ("escape", "encoded-escape"):
        assert answers[key][0] == 404  # resolved inside the root, where there is no such file
        assert b"outside" not in answers[key][2]
    assert answers["post"][0] == 405


# deploy ------------------------------------------------------------------------------------------


@pytest.fixture
def releases(tmp_path: Path) -> Path:
    site = tmp_path / "site"
    for version in ("v1", "v2"):
        (site / "releases" / version).mkdir(parents=True)
        (site / "releases" / version / "index.html").write_text(version)
    return site


@pytest.mark.anyio
async def test_deploy_swaps_the_link_and_readers_never_miss(
    releases: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert await deploy.main(str(releases), "releases/v1") is None
    assert capsys.readouterr().out == f"{releases}/current -> releases/v1 (was nothing)\n"
    stop = threading.Event()
    seen: list[str] = []
    failures: list[OSError] = []

    def reader() -> None:  # a real concurrent reader, in a thread of its own
        while not stop.is_set():
            try:
                seen.append((releases / "current" / "index.html").read_text())
            except OSError as err:
                failures.append(err)

    async with anyio.create_task_group() as tg:
        tg.start_soon(in_own_thread, reader)
        try:
            for i in range(60):
                previous = await deploy.deploy(str(releases), f"releases/v{1 + (i + 1) % 2}")
                assert previous == f"releases/v{1 + i % 2}"
        finally:
            stop.set()

    assert failures == []
    assert set(seen) <= {"v1", "v2"}
    assert len(seen) > 0
    assert await aos.readlink(releases / "current") == "releases/v1"
    assert sorted(await aos.listdir(releases)) == ["current", "releases"]  # no staged link left


@pytest.mark.anyio
async def test_deploy_refuses_a_missing_release(releases: Path) -> None:
    with pytest.raises(SystemExit, match="is not a directory"):
        await deploy.main(str(releases), "releases/v9")
    assert not await aos.path.lexists(releases / "current")


# parallel_run ------------------------------------------------------------------------------------


def py(code: str) -> list[str]:
    return [sys.executable, "-c", code]


@pytest.mark.anyio
async def test_parallel_run_reports_every_status(capsys: pytest.CaptureFixture[str]) -> None:
    commands = [
        py("pass"),
        py("import sys; sys.exit(3)"),
        py("import os, signal; os.kill(os.getpid(), signal.SIGTERM)"),
        ["no-such-command-aos-test"],
        py("print('child output')"),
    ]
    results = await parallel_run.main(commands, jobs=2)
    assert [r.exit_code for r in results] == [0, 3, -signal.SIGTERM, 127, 0]
    assert [list(r.command) for r in results] == commands
    out = capsys.readouterr().out
    assert out.count("\n") == len(commands)
    assert re.search(r"^\[\s*exit 3 .*sys.exit\(3\)", out, re.MULTILINE)
    assert re.search(r"^\[\s*exit 127 .*no-such-command-aos-test", out, re.MULTILINE)


@pytest.mark.anyio
async def test_cancelled_run_kills_and_reaps_its_children(tmp_path: Path) -> None:
    started = tmp_path / "started"
    sleeper = py(
        f"import os, time; open({str(started)!r}, 'w').write(str(os.getpid())); time.sleep(60)"
    )
    with anyio.CancelScope() as scope:
        async with anyio.create_task_group() as tg:
            tg.start_soon(parallel_run.main, [sleeper, sleeper], 2)
            # Another process writes the file: there is no event to wait on, so poll.
            while not (await aos.path.exists(started) and (await anyio.Path(started).read_text())):  # noqa: ASYNC110
                await anyio.sleep(0.01)
            scope.cancel()
    assert scope.cancelled_caught
    # The autouse leak check fails the test if either child is still running or unreaped.


# the scripts, run as a user runs them ------------------------------------------------------------


def script(name: str, *args: str, loop: str) -> list[str]:
    return [sys.executable, str(EXAMPLES / name), *args, "--loop", loop]


LOOPS = ["asyncio", "trio"]


@pytest.mark.parametrize("loop", LOOPS)
def test_scripts_run(loop: str, small_tree: Path, releases: Path) -> None:
    """walker, deploy and parallel_run started as scripts, side by side."""
    jobs = {
        "walker": subprocess.Popen(
            script("walker.py", str(small_tree), loop=loop), stdout=subprocess.PIPE, text=True
        ),
        "deploy": subprocess.Popen(
            script("deploy.py", str(releases), "releases/v2", loop=loop),
            stdout=subprocess.PIPE,
            text=True,
        ),
        "parallel_run": subprocess.Popen(
            script(
                "parallel_run.py",
                "-j",
                "2",
                f"{sys.executable} -c pass",
                f"{sys.executable} -c 'exit(4)'",
                loop=loop,
            ),
            stdout=subprocess.PIPE,
            text=True,
        ),
    }
    outputs = {name: (job.communicate(timeout=60)[0], job.returncode) for name, job in jobs.items()}
    assert outputs["walker"][1] == 0
    assert outputs["walker"][0].startswith("4 directories, 12 files, ")
    assert outputs["deploy"] == (f"{releases}/current -> releases/v2 (was nothing)\n", 0)
    assert os.readlink(releases / "current") == "releases/v2"
    out, status = outputs["parallel_run"]
    assert status == 1  # one command failed
    assert sorted(re.findall(r"^\[\s*(ok|exit \d+) ", out, re.MULTILINE)) == ["exit 4", "ok"]


@pytest.mark.parametrize("loop", LOOPS)
def test_static_server_script_serves_and_stops_on_ctrl_c(loop: str, site: Path) -> None:
    server = subprocess.Popen(
        script("static_server.py", str(site), "--port", "0", loop=loop),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        ready, _, _ = select.select([server.stdout], [], [], 60)
        assert ready
        banner = server.stdout.readline()
        port = int(banner.rsplit(":", 1)[1].strip("/\n"))
        assert fetch(port, "GET", "/hello.txt")[0::2] == (200, b"hello\n")
        server.send_signal(signal.SIGINT)
        _, err = server.communicate(timeout=60)
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
    assert (server.returncode, err) == (0, ""), err
