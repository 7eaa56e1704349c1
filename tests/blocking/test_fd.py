"""File descriptor operations and file objects through aos.blocking, compared with os."""

from __future__ import annotations

import errno
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.blocking._parity import Log, run_both


def read_write(m: Any, root: str, log: Log) -> None:
    path = m.path.join(root, "f")
    fd = m.open(path, m.O_RDWR | m.O_CREAT | m.O_EXCL, 0o640)
    try:
        log.call(m.open, path, m.O_RDWR | m.O_CREAT | m.O_EXCL)  # FileExistsError
        log.call(m.write, fd, b"hello world")
        log.call(m.lseek, fd, 0, m.SEEK_SET)
        log.call(m.read, fd, 5)
        log.call(m.pread, fd, 5, 6)
        log.call(m.pwrite, fd, b"W", 6)
        log.call(m.writev, fd, [b"ab", b"cd"])
        log.call(m.preadv, fd, [bytearray(3), bytearray(4)], 0)
        log.call(m.ftruncate, fd, 4)
        log(m.fstat(fd).st_size)
        log(m.stat(path).st_mode & 0o777)
        log.call(m.fsync, fd)
        log.call(m.fdatasync, fd)
        log.call(m.posix_fallocate, fd, 0, 100)
        log(m.fstat(fd).st_size)
        log.call(m.lockf, fd, m.F_TLOCK, 0)
        log.call(m.get_inheritable, fd)
        log.call(m.get_blocking, fd)
        log.call(m.isatty, fd)
        log.call(m.device_encoding, fd)
    finally:
        m.close(fd)
    for func, args in (
        (m.read, (fd, 1)),
        (m.write, (fd, b"x")),
        (m.fstat, (fd,)),
        (m.close, (fd,)),
        (m.lseek, (fd, 0, 0)),
    ):
        log.call(func, *args)  # EBADF, the fd being closed
    log.call(m.open, m.path.join(root, "missing", "f"), m.O_RDONLY)
    log.call(m.read, 0, -1)  # ValueError


def test_read_write(tmp_path: Path) -> None:
    entries = run_both(read_write, tmp_path)
    assert entries[0][:3] == (FileExistsError, errno.EEXIST, "<root>/f")
    assert ("ok", b"hello") in entries
    assert ("ok", b"world") in entries
    assert entries[6:11] == [("ok", 4), ("ok", 7), ("ok", None), 4, 0o640]  # writev .. mode
    assert all(e[1] == errno.EBADF for e in entries[-7:-2])


def pipes_and_dups(m: Any, root: str, log: Log) -> None:
    r, w = m.pipe()
    try:
        log(m.get_inheritable(r))
        m.set_inheritable(r, True)
        log(m.get_inheritable(r))
        m.set_blocking(r, False)
        log.call(m.read, r, 10)  # BlockingIOError
        m.write(w, b"abc")
        dup = m.dup(r)
        log(m.read(dup, 10))
        target = m.dup2(w, dup, inheritable=False)
        log(target == dup)
        m.write(dup, b"through the dup")
        log(m.read(r, 100))
        log.call(m.dup2, 999_999, dup)  # EBADF
        m.close(dup)
    finally:
        m.close(r)
        m.close(w)
    r, w = m.pipe2(m.O_CLOEXEC | m.O_NONBLOCK)
    try:
        log((m.get_blocking(r), m.get_inheritable(w)))
    finally:
        m.closerange(min(r, w), max(r, w) + 1)
    log.call(m.fstat, r)


def test_pipes_and_dups(tmp_path: Path) -> None:
    entries = run_both(pipes_and_dups, tmp_path)
    assert entries[:2] == [False, True]
    assert entries[2][0] is BlockingIOError
    assert b"abc" in entries
    assert b"through the dup" in entries
    assert entries[-2] == (False, False)
    assert entries[-1][1] == errno.EBADF


def copies(m: Any, root: str, log: Log) -> None:
    src, dst = m.path.join(root, "src"), m.path.join(root, "dst")
    with m.fdopen(m.open(src, m.O_WRONLY | m.O_CREAT), "wb") as f:
        f.write(b"0123456789" * 100)
    fin = m.open(src, m.O_RDONLY)
    fout = m.open(dst, m.O_WRONLY | m.O_CREAT)
    try:
        log.call(m.sendfile, fout, fin, 0, 100)
        log.call(m.copy_file_range, fin, fout, 50, 0, 100)
        log(m.fstat(fout).st_size)
        r, w = m.pipe()
        try:
            log.call(m.splice, fin, w, 10, 0)
            log(m.read(r, 100))
        finally:
            m.close(r)
            m.close(w)
        log.call(m.sendfile, fout, 999_999, 0, 1)  # EBADF
    finally:
        m.close(fin)
        m.close(fout)
    with open(dst, "rb") as f:
        log(f.read())


def test_copies(tmp_path: Path) -> None:
    entries = run_both(copies, tmp_path)
    assert entries[:2] == [("ok", 100), ("ok", 50)]
    assert b"0123456789" in entries


@pytest.mark.skipif(sys.platform != "linux", reason="Linux only: memfd_create, eventfd")
def test_memfd_and_eventfd(tmp_path: Path) -> None:
    def scenario(m: Any, root: str, log: Log) -> None:
        fd = m.memfd_create("aos-test", m.MFD_CLOEXEC)
        try:
            m.write(fd, b"in memory")
            log(m.pread(fd, 100, 0))
            log(m.readlink(f"/proc/self/fd/{fd}").startswith("/memfd:aos-test"))
        finally:
            m.close(fd)
        efd = m.eventfd(3, m.EFD_NONBLOCK)
        try:
            log(m.eventfd_read(efd))
            log.call(m.eventfd_read, efd)  # BlockingIOError: the counter is 0
            m.eventfd_write(efd, 7)
            log(m.eventfd_read(efd))
        finally:
            m.close(efd)

    entries = run_both(scenario, tmp_path)
    assert entries[:3] == [b"in memory", True, 3]
    assert entries[3][0] is BlockingIOError
    assert entries[4] == 7


def test_openpty_and_terminal(tmp_path: Path) -> None:
    def scenario(m: Any, root: str, log: Log) -> None:
        parent, child = m.openpty()
        try:
            log((m.isatty(parent), m.isatty(child)))
            log(m.ttyname(child).startswith("/dev/pts/"))
            log(tuple(m.get_terminal_size(child)))
        finally:
            m.close(parent)
            m.close(child)
        r, w = m.pipe()
        try:
            log.call(m.get_terminal_size, r)  # ENOTTY
            log.call(m.ttyname, r)
        finally:
            m.close(r)
            m.close(w)

    entries = run_both(scenario, tmp_path)
    assert entries[0] == (True, True)
    assert entries[1] is True
    assert entries[3][1] == errno.ENOTTY
