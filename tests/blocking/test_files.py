"""Files and directories through aos.blocking, compared with os: results and exact errors."""

from __future__ import annotations

import errno
import stat
from pathlib import Path
from typing import Any

from tests.blocking._parity import Log, run_both


def tree_ops(m: Any, root: str, log: Log) -> None:
    j = m.path.join
    log.call(m.mkdir, j(root, "d"), 0o750)
    log.call(m.mkdir, j(root, "d"))  # FileExistsError
    log.call(m.makedirs, j(root, "d", "e", "f"))
    log.call(m.makedirs, j(root, "d", "e", "f"), exist_ok=True)
    log.call(m.mkdir, j(root, "missing", "x"))  # FileNotFoundError
    with open(j(root, "d", "file"), "w") as f:
        f.write("content")
    log(sorted(m.listdir(j(root, "d"))))
    log(sorted(m.listdir(m.fsencode(j(root, "d")))))
    with m.scandir(j(root, "d")) as it:
        log(sorted((e.name, e.is_dir(), e.is_file(), e.is_symlink()) for e in it))
    log.call(m.listdir, j(root, "d", "file"))  # NotADirectoryError
    log(stat.S_IMODE(m.stat(j(root, "d")).st_mode))
    log.call(m.symlink, "file", j(root, "d", "link"))
    log.call(m.symlink, "file", j(root, "d", "link"))  # FileExistsError with filename2
    log.call(m.readlink, j(root, "d", "link"))
    log.call(m.readlink, j(root, "d", "file"))  # EINVAL
    log(stat.S_ISLNK(m.lstat(j(root, "d", "link")).st_mode))
    log(m.stat(j(root, "d", "link")).st_size)
    log.call(m.link, j(root, "d", "file"), j(root, "d", "hard"))
    log(m.stat(j(root, "d", "file")).st_nlink)
    log.call(m.rename, j(root, "d", "hard"), j(root, "d", "renamed"))
    log.call(m.rename, j(root, "d", "nope"), j(root, "d", "x"))  # both filenames
    log.call(m.replace, j(root, "d", "renamed"), j(root, "d", "file"))
    log.call(m.renames, j(root, "d", "file"), j(root, "g", "h", "file"))
    log(m.path.exists(j(root, "g", "h", "file")))
    log.call(m.rmdir, j(root, "d", "e"))  # ENOTEMPTY
    log.call(m.removedirs, j(root, "d", "e", "f"))
    log.call(m.unlink, j(root, "d", "link"))
    log.call(m.unlink, j(root, "d"))  # EISDIR
    log.call(m.remove, j(root, "d", "link"))  # ENOENT
    log(sorted(m.listdir(root)))


def test_tree_ops(tmp_path: Path) -> None:
    entries = run_both(tree_ops, tmp_path)
    assert entries[1][:3] == (FileExistsError, errno.EEXIST, "<root>/d")
    assert entries[4][:2] == (FileNotFoundError, errno.ENOENT)
    assert entries[5] == ["e", "file"]
    assert entries[6] == [b"e", b"file"]
    assert entries[8][:2] == (NotADirectoryError, errno.ENOTDIR)
    assert entries[9] == 0o750 & ~_umask()
    assert entries[11][2:4] == ("file", "<root>/d/link")  # symlink: src, dst
    assert entries[12] == ("ok", "file")
    assert entries[13][:2] == (OSError, errno.EINVAL)
    assert entries[17] == 2
    assert entries[19][2:4] == ("<root>/d/nope", "<root>/d/x")
    assert entries[22] is True
    assert entries[23][:2] == (OSError, errno.ENOTEMPTY)
    assert entries[26][0] in (IsADirectoryError, PermissionError)
    assert entries[-1] == ["d", "g"]


def _umask() -> int:
    import os

    mask = os.umask(0)
    os.umask(mask)
    return mask


def metadata(m: Any, root: str, log: Log) -> None:
    path = m.path.join(root, "f")
    with open(path, "wb") as f:
        f.write(b"x" * 10)
    log.call(m.chmod, path, 0o600)
    log(stat.S_IMODE(m.stat(path).st_mode))
    log.call(m.chown, path, m.getuid(), m.getgid())
    log.call(m.utime, path, (1_000_000, 2_000_000))
    st = m.stat(path)
    log((st.st_atime, st.st_mtime))
    log.call(m.utime, path, ns=(5, 6))
    log((m.stat(path).st_atime_ns, m.stat(path).st_mtime_ns))
    log.call(m.truncate, path, 3)
    log(m.path.getsize(path))
    log.call(m.access, path, m.R_OK | m.W_OK)
    log.call(m.access, m.path.join(root, "missing"), m.F_OK)
    log.call(m.chmod, m.path.join(root, "missing"), 0o600)
    log.call(m.utime, path, (1, 2), ns=(1, 2))  # ValueError: both times and ns
    fd = m.open(root, m.O_RDONLY | m.O_DIRECTORY)
    try:
        log(m.stat("f", dir_fd=fd).st_size)  # dir_fd works through aos.blocking too
        log.call(m.mkdir, "sub", dir_fd=fd)
        log.call(m.unlink, "sub", dir_fd=fd)  # EISDIR
        log.call(m.rmdir, "sub", dir_fd=fd)
    finally:
        m.close(fd)
    log.call(m.mkfifo, m.path.join(root, "fifo"))
    log(stat.S_ISFIFO(m.lstat(m.path.join(root, "fifo")).st_mode))
    log.call(m.mknod, m.path.join(root, "node"), stat.S_IFREG | 0o600)
    vfs = m.statvfs(root)
    log(vfs.f_bsize > 0 and vfs.f_namemax >= 255)
    log(m.pathconf(root, "PC_NAME_MAX"))


def test_metadata(tmp_path: Path) -> None:
    entries = run_both(metadata, tmp_path)
    assert entries[1] == 0o600
    assert entries[4] == (1_000_000.0, 2_000_000.0)
    assert entries[6] == (5, 6)
    assert entries[8] == 3
    assert entries[9] == ("ok", True)
    assert entries[10] == ("ok", False)
    assert entries[11][:3] == (FileNotFoundError, errno.ENOENT, "<root>/missing")
    assert entries[12][0] is ValueError
    assert entries[13] == 3
    assert entries[15][:3] == (IsADirectoryError, errno.EISDIR, "sub")
    assert entries[-4] is True
    assert entries[-2] is True


def test_cwd(tmp_path: Path) -> None:
    def scenario(m: Any, root: str, log: Log) -> None:
        before = m.getcwd()
        try:
            m.chdir(root)
            log(m.getcwd())
            log(m.getcwdb())
            fd = m.open(m.path.join(root, ".."), m.O_RDONLY)
            try:
                m.fchdir(fd)
            finally:
                m.close(fd)
            log(m.path.basename(m.getcwd()))
            log.call(m.chdir, m.path.join(root, "missing"))
        finally:
            m.chdir(before)

    entries = run_both(scenario, tmp_path)
    assert entries[:2] == ["<root>", b"<root>"]
    assert entries[2] == tmp_path.name
    assert entries[3][:3] == (FileNotFoundError, errno.ENOENT, "<root>/missing")
