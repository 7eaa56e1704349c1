"""Random numbers through aos.blocking, compared with os."""

from __future__ import annotations

import errno
import os
from pathlib import Path
from typing import Any

import pytest

from tests.blocking._parity import Log, run_both


def scenario(m: Any, root: str, log: Log) -> None:
    log([len(m.urandom(n)) for n in (0, 1, 32, 4096)])
    log(m.urandom(32) != m.urandom(32))
    log.call(m.urandom, -1)  # ValueError
    if hasattr(m, "getrandom"):
        log(len(m.getrandom(16)))
        log(len(m.getrandom(16, m.GRND_NONBLOCK)))
        log.call(m.getrandom, -1)  # EINVAL
        log.call(m.getrandom, 1, 1 << 20)  # EINVAL: unknown flag


def test_random(tmp_path: Path) -> None:
    entries = run_both(scenario, tmp_path)
    assert entries[:2] == [[0, 1, 32, 4096], True]
    assert entries[2][0] is ValueError
    if hasattr(os, "getrandom"):
        assert entries[3:5] == [16, 16]
        assert entries[5][:2] == entries[6][:2] == (OSError, errno.EINVAL)


@pytest.mark.parametrize("size", [0, 7, 100])
def test_urandom_type(size: int) -> None:
    import aos.blocking

    data = aos.blocking.urandom(size)
    assert type(data) is bytes
    assert len(data) == size
