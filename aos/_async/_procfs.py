"""Files of ``/proc`` (an fd's ``fdinfo``, ``/proc/locks``): procfs answers from memory, so
they are read on the loop's thread."""

from __future__ import annotations

import os

__all__ = ["fdinfo_lines", "read_proc_file"]


def fdinfo_lines(fd: int) -> list[bytes] | None:
    """The lines of ``fd``'s fdinfo, or ``None`` where it has none (not an open fd)."""
    text = read_proc_file(f"/proc/self/fdinfo/{fd}")
    return None if text is None else text.splitlines()


def read_proc_file(path: str) -> bytes | None:
    """The whole of the procfs file ``path``, or ``None`` if it cannot be read."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        chunks = []
        while chunk := os.read(fd, 65536):
            chunks.append(chunk)
    except OSError:
        return None
    finally:
        os.close(fd)
    return b"".join(chunks)
