"""Module-level tuning of the worker engine. (Being written.)"""
