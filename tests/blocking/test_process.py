"""Process management through aos.blocking, compared with os: children are always reaped."""

from __future__ import annotations

import errno
import signal
import sys
from pathlib import Path
from typing import Any

from tests.blocking._parity import Log, run_both


def children(m: Any, root: str, log: Log) -> None:
    py = sys.executable
    pid = m.posix_spawn(py, [py, "-c", "raise SystemExit(7)"], m.environ)
    _, status = m.waitpid(pid, 0)
    log((m.WIFEXITED(status), m.WEXITSTATUS(status), m.waitstatus_to_exitcode(status)))
    pid = m.spawnv(m.P_NOWAIT, py, [py, "-c", "import time; time.sleep(30)"])
    m.kill(pid, signal.SIGTERM)
    _, status = m.waitpid(pid, 0)
    log((m.WIFSIGNALED(status), m.WTERMSIG(status), m.waitstatus_to_exitcode(status)))
    log(m.spawnv(m.P_WAIT, py, [py, "-c", "raise SystemExit(3)"]))
    log(m.system(f"{py} -c 'raise SystemExit(2)'") >> 8)
    with m.popen(f"{py} -c 'print(42)'") as pipe:
        log(pipe.read())
    pid = m.fork()
    if pid == 0:
        m._exit(5)
    log(m.waitid(m.P_PID, pid, m.WEXITED)[3:5])  # si_status, si_code
    log.call(m.waitpid, -1, m.WNOHANG)  # ChildProcessError: none left
    log.call(m.kill, 2**22 + 12345, 0)  # ProcessLookupError
    log.call(m.posix_spawn, m.path.join(root, "missing"), ["x"], {})


def test_children(tmp_path: Path) -> None:
    entries = run_both(children, tmp_path)
    assert entries[0] == (True, 7, 7)
    assert entries[1] == (True, signal.SIGTERM, -signal.SIGTERM)
    assert entries[2:5] == [3, 2, "42\n"]
    assert entries[5] == (5, 1)  # CLD_EXITED
    assert entries[6][:2] == (ChildProcessError, errno.ECHILD)
    assert entries[7][:2] == (ProcessLookupError, errno.ESRCH)
    assert entries[8][:3] == (FileNotFoundError, errno.ENOENT, "<root>/missing")


def this_process(m: Any, root: str, log: Log) -> None:
    log((m.getpid(), m.getppid(), m.getpgrp(), m.getsid(0)))
    times = m.times()
    log(times.user >= 0 and times.elapsed > 0)
    log(m.getpriority(m.PRIO_PROCESS, 0))
    log.call(m.getpriority, m.PRIO_PROCESS, 2**22 + 12345)  # ESRCH
    log(m.WEXITSTATUS(3 << 8))
    log.call(m.waitstatus_to_exitcode, -1)  # ValueError
    fd = m.pidfd_open(m.getpid())
    try:
        log(fd >= 0)
    finally:
        m.close(fd)
    log.call(m.pidfd_open, 2**22 + 12345)
    log(callable(m.register_at_fork))
    log.call(m.register_at_fork)  # TypeError: at least one argument


def test_this_process(tmp_path: Path) -> None:
    import os

    entries = run_both(this_process, tmp_path)
    assert entries[0][0] == os.getpid()
    assert entries[1] is True
    assert entries[3][:2] == (ProcessLookupError, errno.ESRCH)
    assert entries[4] == 3
    assert entries[5][0] is ValueError
    assert entries[7][:2] == (ProcessLookupError, errno.ESRCH)
    assert entries[9][0] is TypeError
