"""Async system information: nothing to offload; every name is passed through.

``sysconf``, ``confstr``, ``cpu_count``, ``process_cpu_count`` and ``getloadavg`` read
process memory, the kernel, or procfs/sysfs, which live in memory and never wait on a
device. The path constants (``sep``, ``devnull`` ...) are plain strings.
"""

from __future__ import annotations

__all__: list[str] = []
