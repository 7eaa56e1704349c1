"""Async ``scandir``, ``walk`` and ``fwalk``: batched, streaming and cancel-safe. (Being written.)"""
