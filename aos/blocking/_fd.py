"""File descriptor operations and file object creation: ``open``, ``read``, ``write``, ``pipe``, ``sendfile`` ...

Sections "File Object Creation" and "File Descriptor Operations" of the :mod:`os` documentation."""

import sys
from os import (
    F_LOCK as F_LOCK,
    F_TEST as F_TEST,
    F_TLOCK as F_TLOCK,
    F_ULOCK as F_ULOCK,
    O_ACCMODE as O_ACCMODE,
    O_APPEND as O_APPEND,
    O_ASYNC as O_ASYNC,
    O_CLOEXEC as O_CLOEXEC,
    O_CREAT as O_CREAT,
    O_DIRECT as O_DIRECT,
    O_DIRECTORY as O_DIRECTORY,
    O_DSYNC as O_DSYNC,
    O_EXCL as O_EXCL,
    O_FSYNC as O_FSYNC,
    O_LARGEFILE as O_LARGEFILE,
    O_NDELAY as O_NDELAY,
    O_NOATIME as O_NOATIME,
    O_NOCTTY as O_NOCTTY,
    O_NOFOLLOW as O_NOFOLLOW,
    O_NONBLOCK as O_NONBLOCK,
    O_PATH as O_PATH,
    O_RDONLY as O_RDONLY,
    O_RDWR as O_RDWR,
    O_RSYNC as O_RSYNC,
    O_SYNC as O_SYNC,
    O_TMPFILE as O_TMPFILE,
    O_TRUNC as O_TRUNC,
    O_WRONLY as O_WRONLY,
    POSIX_FADV_DONTNEED as POSIX_FADV_DONTNEED,
    POSIX_FADV_NOREUSE as POSIX_FADV_NOREUSE,
    POSIX_FADV_NORMAL as POSIX_FADV_NORMAL,
    POSIX_FADV_RANDOM as POSIX_FADV_RANDOM,
    POSIX_FADV_SEQUENTIAL as POSIX_FADV_SEQUENTIAL,
    POSIX_FADV_WILLNEED as POSIX_FADV_WILLNEED,
    SEEK_CUR as SEEK_CUR,
    SEEK_DATA as SEEK_DATA,
    SEEK_END as SEEK_END,
    SEEK_HOLE as SEEK_HOLE,
    SEEK_SET as SEEK_SET,
    close as close,
    closerange as closerange,
    device_encoding as device_encoding,
    dup as dup,
    dup2 as dup2,
    fchmod as fchmod,
    fchown as fchown,
    fdatasync as fdatasync,
    fdopen as fdopen,
    fpathconf as fpathconf,
    fstat as fstat,
    fstatvfs as fstatvfs,
    fsync as fsync,
    ftruncate as ftruncate,
    get_blocking as get_blocking,
    get_inheritable as get_inheritable,
    get_terminal_size as get_terminal_size,
    isatty as isatty,
    lockf as lockf,
    lseek as lseek,
    open as open,
    openpty as openpty,
    pipe as pipe,
    pipe2 as pipe2,
    posix_fadvise as posix_fadvise,
    posix_fallocate as posix_fallocate,
    pread as pread,
    preadv as preadv,
    pwrite as pwrite,
    pwritev as pwritev,
    read as read,
    readv as readv,
    sendfile as sendfile,
    set_blocking as set_blocking,
    set_inheritable as set_inheritable,
    tcgetpgrp as tcgetpgrp,
    tcsetpgrp as tcsetpgrp,
    terminal_size as terminal_size,
    ttyname as ttyname,
    write as write,
    writev as writev,
)

try:  # only where the platform has copy_file_range(2), as in os
    from os import copy_file_range as copy_file_range
except ImportError:
    pass

try:  # only where the platform has login_tty(3), as in os
    from os import login_tty as login_tty
except ImportError:
    pass

try:  # only where the platform has preadv2(2) flags, as in os
    from os import (
        RWF_APPEND as RWF_APPEND,
        RWF_DSYNC as RWF_DSYNC,
        RWF_HIPRI as RWF_HIPRI,
        RWF_NOWAIT as RWF_NOWAIT,
        RWF_SYNC as RWF_SYNC,
    )
except ImportError:
    pass

try:  # only where the platform has splice(2), as in os
    from os import (
        SPLICE_F_MORE as SPLICE_F_MORE,
        SPLICE_F_MOVE as SPLICE_F_MOVE,
        SPLICE_F_NONBLOCK as SPLICE_F_NONBLOCK,
        splice as splice,
    )
except ImportError:
    pass

if sys.version_info >= (3, 13):
    try:  # only where the platform has Unix 98 pseudo-terminals, as in os
        from os import (
            grantpt as grantpt,
            posix_openpt as posix_openpt,
            ptsname as ptsname,
            unlockpt as unlockpt,
        )
    except ImportError:
        pass
