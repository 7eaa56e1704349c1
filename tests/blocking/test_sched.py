"""The scheduler interface through aos.blocking, compared with os on this very process."""

from __future__ import annotations

import errno
from pathlib import Path
from typing import Any

from tests.blocking._parity import Log, run_both


def scenario(m: Any, root: str, log: Log) -> None:
    affinity = m.sched_getaffinity(0)
    log(affinity)
    try:
        m.sched_setaffinity(0, {min(affinity)})
        log(m.sched_getaffinity(0))
    finally:
        m.sched_setaffinity(0, affinity)
    log.call(m.sched_setaffinity, 0, set())  # EINVAL
    log(m.sched_getscheduler(0))
    log(m.sched_getparam(0).sched_priority)
    log((m.sched_get_priority_min(m.SCHED_FIFO), m.sched_get_priority_max(m.SCHED_FIFO)))
    log(m.sched_get_priority_max(m.SCHED_OTHER))
    log.call(m.sched_get_priority_max, -5)  # EINVAL
    log.call(m.sched_yield)
    log(m.sched_rr_get_interval(0) >= 0)
    log.call(m.sched_getscheduler, 2**22 + 12345)  # ESRCH: no such pid
    log(m.sched_param(3).sched_priority)


def test_sched(tmp_path: Path) -> None:
    entries = run_both(scenario, tmp_path)
    assert entries[1] == {min(entries[0])}
    assert entries[2][:2] == (OSError, errno.EINVAL)
    assert entries[5] == (1, 99)
    assert entries[6] == 0
    assert entries[7][:2] == (OSError, errno.EINVAL)
    assert entries[8] == ("ok", None)
    assert entries[10][:2] == (ProcessLookupError, errno.ESRCH)
    assert entries[11] == 3
