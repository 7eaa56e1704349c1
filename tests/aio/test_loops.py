"""aos on several event loops in several threads at once, and outside any event loop."""

from __future__ import annotations

import os
import sys
import threading
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest

import aos
from aos._async import _completions
from tests.aio._helpers import run_child


async def churn(base: Path, tag: str) -> list[str]:
    """A little of everything: create, stat, list, rename, remove."""
    d = str(base / tag)
    await aos.mkdir(d)
    for i in range(20):
        fd = await aos.open(f"{d}/{i}", os.O_WRONLY | os.O_CREAT)
        await aos.close(fd)
        assert (await aos.stat(f"{d}/{i}")).st_size == 0
    await aos.rename(f"{d}/0", f"{d}/zero")
    names = sorted(await aos.listdir(d))
    for name in names:
        await aos.unlink(f"{d}/{name}")
    await aos.rmdir(d)
    return names


def test_loops_in_threads_at_once(tmp_path: Path) -> None:
    backends: list[tuple[str, dict[str, object]]] = [("asyncio", {}), ("trio", {})]
    try:
        import uvloop

        backends.append(("asyncio", {"loop_factory": uvloop.new_event_loop}))
    except ImportError:
        pass
    results: dict[str, list[str]] = {}
    errors: list[BaseException] = []

    def run(tag: str, backend: str, options: dict[str, object]) -> None:
        try:
            results[tag] = anyio.run(churn, tmp_path, tag, backend=backend, backend_options=options)
        except BaseException as e:
            errors.append(e)

    threads = [
        threading.Thread(target=run, args=(f"{backend}{i}{j}", backend, options))
        for j in range(2)
        for i, (backend, options) in enumerate(backends)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    expected = sorted([str(i) for i in range(1, 20)] + ["zero"])
    assert len(results) == len(threads)
    assert all(r == expected for r in results.values())


LOOPS_ONE_AFTER_ANOTHER = """
import sys, threading, warnings
sys.setswitchinterval(1e-6)  # thread switches everywhere
import anyio, aos
backend, options = sys.argv[1], {}
if sys.argv[2:]:
    import uvloop
    options["loop_factory"] = uvloop.new_event_loop
before = list(warnings.filters)
errors = []

async def main():
    await aos.listdir("/")

def runs():
    for _ in range(100):
        try:
            anyio.run(main, backend=backend, backend_options=options)
        except BaseException as error:
            errors.append(repr(error))

threads = [threading.Thread(target=runs) for _ in range(8)]
for t in threads:
    t.start()
for t in threads:
    t.join()
print(errors, [f for f in warnings.filters if f not in before])
"""


@pytest.mark.parametrize("loop", ["asyncio", "uvloop", "trio"])
def test_loops_opened_and_closed_in_threads_at_once(loop: str) -> None:
    """Eight threads each run 100 loops, one after another, one call each: the channels' table
    is shared (a channel removed by one thread while another closed those of closed loops raised
    KeyError in the other's call), and so are the warning filters, which uvloop's loop-end hook
    changes for a moment (interleaved, they kept ResourceWarning an error for good)."""
    if loop == "uvloop":
        pytest.importorskip("uvloop")
    args = ["asyncio", "uvloop"] if loop == "uvloop" else [loop]
    assert run_child(LOOPS_ONE_AFTER_ANOTHER, *args).split() == ["[]", "[]"]


class ChangedWhileCopied(dict[int, object]):
    """A channel table in which, the first time it is copied, a finalizer (a collection in the
    copying thread) closes a channel, which removes it."""

    def __init__(self, entries: dict[int, object], removed: int) -> None:
        super().__init__(entries)
        self.removed: int | None = removed

    def items(self) -> Any:
        entries = super().items()

        def copying() -> Iterator[tuple[int, object]]:
            for index, entry in enumerate(entries):
                if index == 1 and self.removed is not None:
                    del self[self.removed]
                    self.removed = None
                yield entry

        return copying()


def test_a_channel_closed_while_the_table_is_looked_through_is_no_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A finalizer that closed a channel while a loop looked for channels of closed loops made
    that loop's first call fail (``dictionary changed size during iteration``: 1 run in 9 of
    the test above, on asyncio)."""
    table = ChangedWhileCopied({1: object(), 2: object(), 3: object()}, removed=3)
    monkeypatch.setattr(_completions, "_channels", table)
    _completions._close_channels_of_closed_loops()
    assert sorted(table) == [1, 2]


def test_outside_an_event_loop_gives_anyios_error() -> None:
    coro = aos.stat(".")
    with pytest.raises(
        anyio.NoEventLoopError, match=r"Not currently running on any asynchronous event loop"
    ):
        coro.send(None)
    coro.close()


@pytest.mark.anyio
async def test_every_backend_runs_aos() -> None:
    assert (await aos.stat("/")).st_ino > 0


async def test_a_loop_opens_its_channel_while_another_thread_imports_trio(
    monkeypatch: pytest.MonkeyPatch, anyio_backend: tuple[str, object]
) -> None:
    """While another thread imports trio, ``sys.modules`` holds a trio without its ``lowlevel``
    yet: an asyncio loop's first call opens its channel all the same (it did fail, with
    ``AttributeError``, when a thread ran asyncio loops while another imported trio)."""
    if anyio_backend[0] != "asyncio":
        pytest.skip("asyncio's lookup: a trio run has imported trio whole")
    monkeypatch.setitem(sys.modules, "trio", types.ModuleType("trio"))
    assert isinstance(_completions._open_current(), _completions.AsyncioChannel)
