"""Process parameters through aos.blocking, compared with os: environment, ids, umask, codecs."""

from __future__ import annotations

import errno
import os
from pathlib import Path
from typing import Any

import pytest

from tests.blocking._parity import Log, run_both


def environment(m: Any, root: str, log: Log) -> None:
    key = "AOS_PARAMS_TEST"
    m.environ[key] = "value"
    try:
        log((m.getenv(key), m.environb[key.encode()], m.getenvb(key.encode())))
        m.putenv(key, "putenv only")  # changes the C environment, not os.environ
        log(m.environ[key])
        m.unsetenv(key)
        log(m.getenv(key))  # os.environ still has it
    finally:
        del m.environ[key]
    log((m.getenv(key), m.getenv(key, "default")))
    log.call(m.putenv, "A=B", "x")  # ValueError: illegal variable name
    log.call(m.putenv, "A", "x\0")  # ValueError: embedded null byte
    log(m.get_exec_path({"PATH": "/a:/b"}))
    log(m.get_exec_path({}) == m.defpath.split(m.pathsep))


def test_environment(tmp_path: Path) -> None:
    entries = run_both(environment, tmp_path)
    assert entries[0] == ("value", b"value", b"value")
    assert entries[1:3] == ["value", "value"]
    assert entries[3] == (None, "default")
    assert entries[4][0] is ValueError
    assert entries[5][0] is ValueError
    assert entries[6:] == [["/a", "/b"], True]


def identity(m: Any, root: str, log: Log) -> None:
    log((m.getuid(), m.geteuid(), m.getgid(), m.getegid()))
    log((m.getresuid(), m.getresgid()))
    log(sorted(m.getgroups()))
    log(m.uname().sysname)
    log.call(m.setuid, -5)  # OverflowError / ValueError / EINVAL, as os raises it
    log.call(m.getpgid, 2**22 + 12345)  # ESRCH
    old = m.umask(0o027)
    try:
        log(m.umask(0o027))
        path = m.path.join(root, "f")
        m.close(m.open(path, m.O_CREAT | m.O_WRONLY, 0o777))
        log(m.stat(path).st_mode & 0o777)
    finally:
        m.umask(old)
    log((m.strerror(errno.ENOENT), m.strerror(errno.EACCES)))
    log((m.fsencode("\udcff"), m.fsdecode(b"\xff"), m.fspath(Path("/x"))))
    log.call(m.fspath, 3)  # TypeError


def test_identity(tmp_path: Path) -> None:
    entries = run_both(identity, tmp_path)
    assert entries[0] == (os.getuid(), os.geteuid(), os.getgid(), os.getegid())
    assert entries[3] == "Linux"
    assert entries[5][:2] == (ProcessLookupError, errno.ESRCH)
    assert entries[6] == 0o027
    assert entries[7] == 0o750
    assert entries[8] == ("No such file or directory", "Permission denied")
    assert entries[9] == (b"\xff", "\udcff", "/x")
    assert entries[10][0] is TypeError


@pytest.mark.parametrize("name", ["getpriority", "getcwd", "get_exec_path"])
def test_importing_as_os_in_code(name: str) -> None:
    """``import aos.blocking as os`` gives callables that answer like os's."""
    import aos.blocking as aos_os

    args = {"getpriority": (os.PRIO_PROCESS, 0)}.get(name, ())
    assert getattr(aos_os, name)(*args) == getattr(os, name)(*args)
