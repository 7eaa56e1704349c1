"""Linux extended attributes through aos.blocking, compared with os."""

from __future__ import annotations

import errno
import os
from pathlib import Path
from typing import Any

import pytest

from tests.blocking._parity import Log, run_both

pytestmark = pytest.mark.skipif(not hasattr(os, "setxattr"), reason="no extended attributes")


def scenario(m: Any, root: str, log: Log) -> None:
    path = m.path.join(root, "f")
    with open(path, "w"):
        pass
    log.call(m.setxattr, path, "user.aos", b"one")
    log.call(m.setxattr, path, "user.aos", b"two", m.XATTR_CREATE)  # EEXIST
    log.call(m.setxattr, path, "user.other", b"x", m.XATTR_REPLACE)  # ENODATA
    log.call(m.getxattr, path, "user.aos")
    log.call(m.getxattr, path, "user.none")  # ENODATA
    log(sorted(m.listxattr(path)))
    fd = m.open(path, m.O_RDONLY)
    try:
        log.call(m.setxattr, fd, "user.fd", b"via fd")
        log.call(m.getxattr, fd, "user.fd")
    finally:
        m.close(fd)
    m.symlink("f", m.path.join(root, "link"))
    log.call(m.getxattr, m.path.join(root, "link"), "user.aos")  # followed
    log.call(m.removexattr, path, "user.aos")
    log.call(m.removexattr, path, "user.aos")  # ENODATA
    log(sorted(m.listxattr(path)))
    log.call(m.getxattr, m.path.join(root, "missing"), "user.aos")


def test_xattr(tmp_path: Path) -> None:
    entries = run_both(scenario, tmp_path)
    if entries[0][0] is OSError and entries[0][1] == errno.ENOTSUP:
        pytest.skip("the file system under tmp_path has no user xattrs")
    assert entries[0] == ("ok", None)
    assert entries[1][:3] == (FileExistsError, errno.EEXIST, "<root>/f")
    assert entries[2][:2] == (OSError, errno.ENODATA)
    assert entries[3] == ("ok", b"one")
    assert entries[4][:2] == (OSError, errno.ENODATA)
    assert entries[5] == ["user.aos"]
    assert entries[7] == ("ok", b"via fd")
    assert entries[8] == ("ok", b"one")
    assert entries[10][:2] == (OSError, errno.ENODATA)
    assert entries[11] == ["user.fd"]
    assert entries[12][:3] == (FileNotFoundError, errno.ENOENT, "<root>/missing")
