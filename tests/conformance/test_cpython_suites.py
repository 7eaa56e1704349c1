"""CPython's own ``test_os`` and ``test_posix`` pass with ``os`` replaced by ``aos.blocking``.

Each module runs twice in child processes (see ``runner.py``), once as is and once with its
module global ``os`` set to ``aos.blocking``; the two runs go side by side, as the slowest
tests (3.13's timerfd tests) mostly sleep. Every test id that passed with ``os`` must pass
with ``aos.blocking``. A test that did not is run once more on its own, so that a
timing-sensitive test that merely flaked under the parallel load is not counted; one that
fails again is a real difference.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

import aos

RUNNER = Path(__file__).with_name("runner.py")
SUITES = ("test.test_os", "test.test_posix")

KNOWN_DIFFERENCES: dict[str, str] = {}
"""Test ids that pass with os and not with aos.blocking, each with the reason. The check is
exact: a difference fixed later fails this test until its entry is removed."""

MIN_PASSED = {"test.test_os": 200, "test.test_posix": 100}
"""Far fewer passes with plain os than this means the suite did not really run."""


def _child_env() -> dict[str, str]:
    """The environment for the runners: this one, with the aos under test importable first."""
    import os

    env = dict(os.environ)
    root = str(Path(aos.__file__).resolve().parents[1])
    env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if "PYTHONPATH" in env else "")
    return env


def _start(
    module: str, replacement: str | None, out: Path, only: list[str] | None = None
) -> subprocess.Popen[bytes]:
    args = [sys.executable, str(RUNNER), module, "--json", str(out)]
    if replacement is not None:
        args += ["--os", replacement]
    if only is not None:
        args += ["--only", *only]
    # Own working directory: the suites create their TESTFN files in the current directory.
    cwd = out.parent / out.stem
    cwd.mkdir()
    return subprocess.Popen(
        args, cwd=cwd, env=_child_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )


def _finish(proc: subprocess.Popen[bytes], out: Path) -> tuple[dict[str, str], str]:
    """Wait for a runner; its outcomes and its stderr (the tracebacks)."""
    _, stderr = proc.communicate(timeout=300)
    text = stderr.decode(errors="replace")
    assert proc.returncode == 0, f"runner failed ({proc.returncode}):\n{text[-5000:]}"
    outcomes: dict[str, str] = json.loads(out.read_text())
    return outcomes, text


def _has_cpython_tests() -> bool:
    """Whether this interpreter ships its ``test`` package (some distributions split it off)."""
    try:
        return importlib.util.find_spec("test.test_os") is not None
    except ImportError:
        return False


@pytest.mark.skipif(not _has_cpython_tests(), reason="no CPython test package")
@pytest.mark.parametrize("module", SUITES)
@pytest.mark.timeout(600)
def test_same_passes_as_os(module: str, tmp_path: Path) -> None:
    with_os = _start(module, None, tmp_path / "os.json")
    with_aos = _start(module, "aos.blocking", tmp_path / "aos.json")
    os_outcomes, _ = _finish(with_os, tmp_path / "os.json")
    aos_outcomes, aos_stderr = _finish(with_aos, tmp_path / "aos.json")

    assert set(aos_outcomes) == set(os_outcomes)
    passed = {t for t, outcome in os_outcomes.items() if outcome == "passed"}
    assert len(passed) >= MIN_PASSED[module], f"only {len(passed)} tests passed with os"

    suspects = sorted(t for t in passed if aos_outcomes[t] != "passed")
    differing = set()
    if suspects:  # confirm each on its own, without the load of the parallel run
        rerun_out = tmp_path / "rerun.json"
        rerun, rerun_stderr = _finish(
            _start(module, "aos.blocking", rerun_out, suspects), rerun_out
        )
        differing = {t for t in suspects if rerun.get(t) != "passed"}
        aos_stderr = rerun_stderr
    expected = {t for t in KNOWN_DIFFERENCES if t.startswith(module + ".") and t in passed}
    assert differing - expected == set(), f"new differences:\n{aos_stderr[-10000:]}"
    assert expected - differing == set(), "fixed: remove these from KNOWN_DIFFERENCES"
