"""Async Linux extended attributes: ``getxattr``, ``setxattr``, ``listxattr``, ``removexattr``.

The async face of :mod:`aos.blocking._xattr`. All four touch the file system: ``getxattr`` and
``listxattr`` are ``QUERY``, ``setxattr`` and ``removexattr`` are ``MUTATE``. The ``XATTR_*``
constants are passed through. Absent where the platform lacks extended attributes, as in os.
"""

from __future__ import annotations

from aos import blocking
from aos._async._offload import MUTATE, QUERY, offload

__all__: list[str] = []

if hasattr(blocking, "getxattr"):
    getxattr = offload(blocking.getxattr, QUERY)
    listxattr = offload(blocking.listxattr, QUERY)
    setxattr = offload(blocking.setxattr, MUTATE)
    removexattr = offload(blocking.removexattr, MUTATE)
    __all__ += ["getxattr", "listxattr", "removexattr", "setxattr"]
