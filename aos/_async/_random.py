"""Async random numbers: ``getrandom`` and ``urandom``, both ``QUERY``.

The async face of :mod:`aos.blocking._random`. Both may block until the kernel's entropy pool
is initialised (early boot, fresh VMs), and ``getrandom(n, GRND_RANDOM)`` may block for
entropy at any time. The ``GRND_*`` constants are passed through.
"""

from __future__ import annotations

from aos import blocking
from aos._async._offload import QUERY, offload

__all__ = ["urandom"]

urandom = offload(blocking.urandom, QUERY)

if hasattr(blocking, "getrandom"):
    getrandom = offload(blocking.getrandom, QUERY)
    __all__ += ["getrandom"]
