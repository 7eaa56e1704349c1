"""Async ``scandir``, ``walk`` and ``fwalk``: batched, streaming and cancel-safe.

The async shapes of the three :mod:`os` calls whose sync shape is an iterator; see
:mod:`aos._async._scandir` (batches of entries per worker hop, predicates resolved in the
worker) and :mod:`aos._async._walk` (batched, order-preserving, bounded read-ahead).
"""

from aos._async._offload import home_in_aos
from aos._async._scandir import scandir
from aos._async._walk import fwalk, walk

__all__ = ["fwalk", "scandir", "walk"]

home_in_aos(fwalk, scandir, walk)
