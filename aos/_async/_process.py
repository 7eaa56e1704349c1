"""Async process management: ``posix_spawn``, ``waitid`` and the wait family. (Being written.)"""
