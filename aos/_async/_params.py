"""Async process parameters: the calls that consult the user and group databases.

The async face of :mod:`aos.blocking._params`. Offloaded, because NSS may read files or ask
a network service (LDAP, SSSD) and wait for it:

- ``QUERY``: ``getgrouplist``, ``getlogin`` (reads utmp).
- ``MUTATE``: ``initgroups`` (a group lookup, then ``setgroups``).

Passed through, because they never wait: the identity getters and setters (``getpid``,
``getuid``, ``setuid``, ``setgroups`` ...: one syscall each), ``umask``, ``uname``,
``getpriority``/``setpriority``, ``strerror``, ``ctermid``, ``fspath``, ``fsencode``,
``fsdecode``, ``environ`` and the ``getenv``/``putenv`` family (process memory),
``get_exec_path``, and ``setns``/``unshare``, which act on the *calling thread* and so must
not move to a worker.
"""

from __future__ import annotations

from aos import blocking
from aos._async._offload import MUTATE, QUERY, offload

__all__ = ["getgrouplist", "getlogin", "initgroups"]

getgrouplist = offload(blocking.getgrouplist, QUERY)
getlogin = offload(blocking.getlogin, QUERY)
initgroups = offload(blocking.initgroups, MUTATE)
