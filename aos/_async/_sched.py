"""Async scheduler interface: nothing to offload; every ``sched_*`` name is passed through.

The ``sched_*`` calls are single syscalls that never wait on a device, and most act on the
*calling thread* (``pid`` 0): ``sched_setaffinity(0, ...)`` run on a worker would pin the
worker, not the caller, and ``sched_yield`` on a worker would yield the worker. So in
:mod:`aos` they are the very objects of :mod:`aos.blocking`.
"""

from __future__ import annotations

__all__: list[str] = []
