"""Files and directories: ``stat``, ``mkdir``, ``rename``, ``symlink``, ``scandir``, ``walk`` ...

Section "Files and Directories" of the :mod:`os` documentation."""

import sys
from os import (
    F_OK as F_OK,
    R_OK as R_OK,
    ST_APPEND as ST_APPEND,
    ST_MANDLOCK as ST_MANDLOCK,
    ST_NOATIME as ST_NOATIME,
    ST_NODEV as ST_NODEV,
    ST_NODIRATIME as ST_NODIRATIME,
    ST_NOEXEC as ST_NOEXEC,
    ST_NOSUID as ST_NOSUID,
    ST_RDONLY as ST_RDONLY,
    ST_RELATIME as ST_RELATIME,
    ST_SYNCHRONOUS as ST_SYNCHRONOUS,
    ST_WRITE as ST_WRITE,
    W_OK as W_OK,
    X_OK as X_OK,
    DirEntry as DirEntry,
    access as access,
    chdir as chdir,
    chmod as chmod,
    chown as chown,
    chroot as chroot,
    fchdir as fchdir,
    getcwd as getcwd,
    getcwdb as getcwdb,
    lchown as lchown,
    link as link,
    listdir as listdir,
    lstat as lstat,
    major as major,
    makedev as makedev,
    makedirs as makedirs,
    minor as minor,
    mkdir as mkdir,
    mkfifo as mkfifo,
    mknod as mknod,
    pathconf as pathconf,
    pathconf_names as pathconf_names,
    readlink as readlink,
    remove as remove,
    removedirs as removedirs,
    rename as rename,
    renames as renames,
    replace as replace,
    rmdir as rmdir,
    scandir as scandir,
    stat as stat,
    stat_result as stat_result,
    statvfs as statvfs,
    statvfs_result as statvfs_result,
    supports_dir_fd as supports_dir_fd,
    supports_effective_ids as supports_effective_ids,
    supports_fd as supports_fd,
    supports_follow_symlinks as supports_follow_symlinks,
    symlink as symlink,
    sync as sync,
    truncate as truncate,
    unlink as unlink,
    utime as utime,
)

try:  # only where the platform has eventfd(2), as in os
    from os import (
        EFD_CLOEXEC as EFD_CLOEXEC,
        EFD_NONBLOCK as EFD_NONBLOCK,
        EFD_SEMAPHORE as EFD_SEMAPHORE,
        eventfd as eventfd,
        eventfd_read as eventfd_read,
        eventfd_write as eventfd_write,
    )
except ImportError:
    pass

try:  # only where the platform has memfd_create(2), as in os
    from os import (
        MFD_ALLOW_SEALING as MFD_ALLOW_SEALING,
        MFD_CLOEXEC as MFD_CLOEXEC,
        memfd_create as memfd_create,
    )
except ImportError:
    pass

try:  # only where the platform has memfd_create(2) huge pages, as in os
    from os import (
        MFD_HUGE_1GB as MFD_HUGE_1GB,
        MFD_HUGE_1MB as MFD_HUGE_1MB,
        MFD_HUGE_2GB as MFD_HUGE_2GB,
        MFD_HUGE_2MB as MFD_HUGE_2MB,
        MFD_HUGE_8MB as MFD_HUGE_8MB,
        MFD_HUGE_16GB as MFD_HUGE_16GB,
        MFD_HUGE_16MB as MFD_HUGE_16MB,
        MFD_HUGE_32MB as MFD_HUGE_32MB,
        MFD_HUGE_64KB as MFD_HUGE_64KB,
        MFD_HUGE_256MB as MFD_HUGE_256MB,
        MFD_HUGE_512KB as MFD_HUGE_512KB,
        MFD_HUGE_512MB as MFD_HUGE_512MB,
        MFD_HUGE_MASK as MFD_HUGE_MASK,
        MFD_HUGE_SHIFT as MFD_HUGE_SHIFT,
        MFD_HUGETLB as MFD_HUGETLB,
    )
except ImportError:
    pass

if sys.version_info >= (3, 13):
    try:  # only where the platform has timerfd_create(2), as in os
        from os import (
            TFD_CLOEXEC as TFD_CLOEXEC,
            TFD_NONBLOCK as TFD_NONBLOCK,
            TFD_TIMER_ABSTIME as TFD_TIMER_ABSTIME,
            TFD_TIMER_CANCEL_ON_SET as TFD_TIMER_CANCEL_ON_SET,
            timerfd_create as timerfd_create,
            timerfd_gettime as timerfd_gettime,
            timerfd_gettime_ns as timerfd_gettime_ns,
            timerfd_settime as timerfd_settime,
            timerfd_settime_ns as timerfd_settime_ns,
        )
    except ImportError:
        pass

from aos.blocking._walk import fwalk as fwalk, walk as walk
