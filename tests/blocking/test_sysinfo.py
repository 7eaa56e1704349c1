"""Miscellaneous system information through aos.blocking, compared with os."""

from __future__ import annotations

import errno
from pathlib import Path
from typing import Any

from tests.blocking._parity import Log, run_both


def scenario(m: Any, root: str, log: Log) -> None:
    log(m.cpu_count())
    log(len(m.sched_getaffinity(0)) <= m.cpu_count())
    if hasattr(m, "process_cpu_count"):  # 3.13+
        log(m.process_cpu_count() == len(m.sched_getaffinity(0)))
    log(len(m.getloadavg()))
    log((m.sysconf("SC_PAGE_SIZE"), m.sysconf(m.sysconf_names["SC_OPEN_MAX"]) > 0))
    log.call(m.sysconf, "SC_NO_SUCH_NAME")  # ValueError
    log.call(m.sysconf, -1)  # EINVAL
    log(m.confstr("CS_PATH"))
    log.call(m.confstr, "CS_NO_SUCH_NAME")
    log(m.pathconf(root, "PC_NAME_MAX"))
    fd = m.open(root, m.O_RDONLY)
    try:
        log(m.fpathconf(fd, "PC_NAME_MAX"))
    finally:
        m.close(fd)
    log.call(m.pathconf, m.path.join(root, "missing"), "PC_NAME_MAX")
    log((m.curdir, m.pardir, m.sep, m.altsep, m.extsep, m.pathsep, m.defpath, m.linesep, m.devnull))
    log(m.uname().sysname)


def test_sysinfo(tmp_path: Path) -> None:
    import os

    entries = run_both(scenario, tmp_path)
    assert entries[0] == os.cpu_count()
    assert entries[1] is True
    offset = 1 if hasattr(os, "process_cpu_count") else 0
    if offset:
        assert entries[2] is True
    rest = entries[2 + offset :]
    assert rest[0] == 3
    assert rest[1] == (os.sysconf("SC_PAGESIZE"), True)
    assert rest[2][0] is ValueError
    assert rest[3][:2] == (OSError, errno.EINVAL)
    assert rest[5][0] is ValueError
    assert rest[6] == rest[7] == 255
    assert rest[8][:3] == (FileNotFoundError, errno.ENOENT, "<root>/missing")
    assert rest[9][:3] == (".", "..", "/")
    assert rest[10] == "Linux"
