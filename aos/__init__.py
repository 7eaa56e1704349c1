"""aos: the whole operating-system interface of :mod:`os`, for async programs."""

from aos import blocking as blocking

__version__ = "0.1.0"
