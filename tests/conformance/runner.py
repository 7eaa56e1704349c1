"""Run one of CPython's own test modules, optionally with ``os`` replaced, and print outcomes.

Usage: ``python runner.py MODULE [--os MODULE] [--only ID ...] [--json FILE]``, for example
``python runner.py test.test_os --os aos.blocking``. The test module is imported from the
interpreter's own ``test`` package, its module global ``os`` is set to the replacement (the
modules it imports, such as ``test.support``, keep the real ``os``), and it runs under
:mod:`unittest`. The outcome is a JSON object mapping every test id to one of ``passed``,
``failed``, ``error``, ``skipped``, ``xfail`` or ``xpass`` (a test whose subtest failed counts as
failed), written to ``--json FILE`` or else as the last line of stdout. With ``--only``, just the
tests whose id is one of those given run. Tracebacks of failures and errors go to stderr.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
import unittest
from collections.abc import Iterator
from types import TracebackType

_Exc = tuple[type[BaseException], BaseException, TracebackType] | tuple[None, None, None]

WORST_FIRST = ("error", "failed", "xpass", "skipped", "xfail", "passed")
"""When one test id gets several outcomes (subtests), the first of these in the list wins."""


class OutcomeResult(unittest.TestResult):
    """A test result that records one outcome per test id."""

    def __init__(self) -> None:
        super().__init__()
        self.outcomes: dict[str, str] = {}

    def _record(self, test: unittest.TestCase, outcome: str) -> None:
        test_id = test.id()
        previous = self.outcomes.get(test_id)
        if previous is None or WORST_FIRST.index(outcome) < WORST_FIRST.index(previous):
            self.outcomes[test_id] = outcome

    def addSuccess(self, test: unittest.TestCase) -> None:
        super().addSuccess(test)
        self._record(test, "passed")

    def addError(self, test: unittest.TestCase, err: _Exc) -> None:
        super().addError(test, err)
        self._record(test, "error")

    def addFailure(self, test: unittest.TestCase, err: _Exc) -> None:
        super().addFailure(test, err)
        self._record(test, "failed")

    def addSkip(self, test: unittest.TestCase, reason: str) -> None:
        super().addSkip(test, reason)
        self._record(test, "skipped")

    def addExpectedFailure(self, test: unittest.TestCase, err: _Exc) -> None:
        super().addExpectedFailure(test, err)
        self._record(test, "xfail")

    def addUnexpectedSuccess(self, test: unittest.TestCase) -> None:
        super().addUnexpectedSuccess(test)
        self._record(test, "xpass")

    def addSubTest(
        self, test: unittest.TestCase, subtest: unittest.TestCase, err: _Exc | None
    ) -> None:
        super().addSubTest(test, subtest, err)
        if err is not None:
            failed = err[0] is not None and issubclass(err[0], test.failureException)
            self._record(test, "failed" if failed else "error")


def _flatten(suite: unittest.TestSuite | unittest.TestCase) -> Iterator[unittest.TestCase]:
    if isinstance(suite, unittest.TestSuite):
        for item in suite:
            yield from _flatten(item)
    else:
        yield suite


def run(module_name: str, os_replacement: str | None, only: list[str]) -> dict[str, str]:
    """Run ``module_name``'s tests, with its ``os`` global replaced if asked; outcomes by id."""
    module = importlib.import_module(module_name)
    if os_replacement is not None:
        module.os = importlib.import_module(os_replacement)  # type: ignore[attr-defined]
    loaded = unittest.defaultTestLoader.loadTestsFromModule(module)
    tests = [t for t in _flatten(loaded) if not only or t.id() in only]
    result = OutcomeResult()
    unittest.TestSuite(tests).run(result)
    for test, trace in result.errors + result.failures:  # for the reader, on stderr
        print(f"=== {test}\n{trace}", file=sys.stderr)
    # Module-level fixtures that failed are reported under a pseudo test; keep them visible.
    for test, _ in result.errors:
        if not isinstance(test, unittest.TestCase) or test.id() not in result.outcomes:
            result.outcomes[str(test)] = "error"
    return result.outcomes


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("module", help="test module to run, e.g. test.test_os")
    parser.add_argument("--os", dest="os_replacement", help="module to set as the test's os")
    parser.add_argument("--only", nargs="*", default=[], help="run just these test ids")
    parser.add_argument("--json", help="write the outcomes to this file instead of stdout")
    args = parser.parse_args(argv)
    outcomes = json.dumps(run(args.module, args.os_replacement, args.only), sort_keys=True)
    if args.json:
        with open(args.json, "w") as f:
            f.write(outcomes)
    else:
        sys.stdout.flush()
        sys.stdout.write("\n" + outcomes + "\n")


if __name__ == "__main__":
    main()
