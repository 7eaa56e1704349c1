"""Run the same scenario with ``os`` and with ``aos.blocking`` and compare what happened.

A scenario is ``scenario(m, root, log)``: it does its work through the module ``m`` (``os`` or
``aos.blocking``) under its own fresh directory ``root`` and writes down results with
``log(...)``, or with ``log.call(func, *args)`` for a call whose value or exception (class,
errno, filename, filename2, message) is recorded. Both runs must log the same, with each run's
root written as ``<root>``.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aos.blocking


class Log:
    """What a scenario saw, with its root directory replaced by ``<root>``."""

    def __init__(self, root: str) -> None:
        self.root = root
        self.entries: list[Any] = []

    def __call__(self, value: Any) -> Any:
        self.entries.append(self._plain(value))
        return value

    def call(self, func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Call ``func`` and log its result, or its exception (which is then swallowed)."""
        try:
            result = func(*args, **kwargs)
        except Exception as error:
            self(describe_error(error))
            return None
        self(("ok", result))
        return result

    def _plain(self, value: Any) -> Any:
        if isinstance(value, str):
            return value.replace(self.root, "<root>")
        if isinstance(value, bytes):
            return value.replace(os.fsencode(self.root), b"<root>")
        if type(value) in (tuple, list):
            return type(value)(self._plain(v) for v in value)
        return value


def describe_error(error: BaseException) -> tuple[Any, ...]:
    """An exception as comparable fields: class, errno, filename, filename2, message."""
    if isinstance(error, OSError):
        return type(error), error.errno, error.filename, error.filename2, error.strerror
    return type(error), str(error)


Scenario = Callable[[Any, str, Log], None]


def run_both(scenario: Scenario, tmp_path: Path) -> list[Any]:
    """Run ``scenario`` with os and with aos.blocking; assert the logs agree; return the log."""
    logs = []
    for label, module in (("os", os), ("aos", aos.blocking)):
        root = tmp_path / label
        root.mkdir()
        log = Log(str(root))
        scenario(module, str(root), log)
        logs.append(log.entries)
    assert logs[1] == logs[0]
    return logs[1]
