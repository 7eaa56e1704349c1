"""What every command shares: the loop option, running a command, errors and the progress display."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import errno
import io
import os
import signal
import sys
import threading
from collections.abc import Awaitable, Callable, Iterator
from types import FrameType, TracebackType
from typing import Any, Final, NoReturn, Self, TextIO

import anyio

LOOPS: Final = ("asyncio", "uvloop", "trio")
PROG: Final = "aos"


def add_common_options(parser: argparse.ArgumentParser) -> None:
    """The options every command takes: which event loop, and whether to show progress."""
    parser.add_argument(
        "--loop",
        choices=LOOPS,
        default="asyncio",
        help="the event loop to run on (default: asyncio)",
    )
    shown = parser.add_mutually_exclusive_group()
    shown.add_argument(
        "--progress",
        dest="progress",
        action="store_true",
        default=None,
        help="show a live progress display on stderr (default: when stderr is a terminal)",
    )
    shown.add_argument(
        "--no-progress", dest="progress", action="store_false", help="never show progress"
    )


def at_least(minimum: int) -> Callable[[str], int]:
    """An argparse type: a whole number, ``minimum`` or more (GNU tools reject a negative depth)."""

    def number(text: str) -> int:
        value = int(text)
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be {minimum} or more, not {text!r}")
        return value

    return number


def raw_names_on_stdout() -> None:
    """Let stdout carry any file name: one that is not valid text goes out as its raw bytes, as in GNU tools.

    ``os.fsdecode`` turns such bytes into lone surrogates, which a strict UTF-8 stdout refuses to encode.
    """
    if isinstance(sys.stdout, io.TextIOWrapper):
        sys.stdout.reconfigure(errors="surrogateescape")


def run_on_loop(fn: Callable[[], Awaitable[int]], loop: str) -> int:
    """Run ``fn`` on the chosen event loop and return its exit status."""
    if loop == "trio":  # (trio raises KeyboardInterrupt in the command's own code at once)
        return anyio.run(fn, backend="trio")
    options: dict[str, Any] = {"use_uvloop": loop == "uvloop"}
    with _interrupted_at_once():
        return anyio.run(fn, backend="asyncio", backend_options=options)


@contextlib.contextmanager
def _interrupted_at_once() -> Iterator[None]:
    """Ctrl-C raises KeyboardInterrupt wherever the loop's thread is, as in a plain Python
    program, where asyncio's runner would cancel the main task: a command blocked writing to a
    pipe that nobody reads (``aos find / | less``, paused) never saw that cancel, and went on
    after the first Ctrl-C; GNU tools die at once."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, _interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _interrupt(signum: int, frame: FrameType | None) -> None:
    """Raise KeyboardInterrupt here, unless here is inside aos's engine: a call half handed to a
    worker (counted, not yet queued) must not be cut short, nor an interrupt swallowed there
    (one that came while a worker thread started was lost, and the command ran to its end).
    Then it is raised by the loop's next callback, between the engine's steps."""
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        loop = None
    if loop is not None and _inside_the_engine(frame):
        loop.call_soon(_raise_interrupt)  # (this is the loop's thread)
        return
    raise KeyboardInterrupt


def _inside_the_engine(frame: FrameType | None) -> bool:
    """Whether ``frame`` or a frame that called it runs code of :mod:`aos._async`."""
    while frame is not None:
        if frame.f_globals.get("__name__", "").startswith("aos._async"):
            return True
        frame = frame.f_back
    return False


def _raise_interrupt() -> None:
    raise KeyboardInterrupt


def describe_error(command: str, action: str, err: OSError) -> str:
    """One line for an ``OSError``, in the manner of coreutils: ``aos du: cannot access 'x': ...``."""
    message = err.strerror or str(err)
    if err.filename is None:
        return f"{PROG} {command}: {action}: {message}"
    return f"{PROG} {command}: {action} {os.fsdecode(err.filename)!r}: {message}"


class ErrorLog:
    """Prints one line per error on stderr and remembers that there was one (exit status 1)."""

    def __init__(self, command: str, action: str) -> None:
        self.command = command
        self.action = action
        self.count = 0

    def __call__(self, err: OSError) -> None:
        self.count += 1
        print(describe_error(self.command, self.action, err), file=sys.stderr)

    @contextlib.contextmanager
    def going_on(self) -> Iterator[None]:
        """Report an ``OSError`` of the block and go on; a closed output pipe ends the command."""
        try:
            yield
        except BrokenPipeError:
            raise
        except OSError as err:
            self(err)

    @property
    def status(self) -> int:
        return 1 if self.count else 0


def finish_output(stream: TextIO) -> None:
    """Flush ``stream``; if the reader has gone (a closed pipe), silence further writes to it."""
    try:
        stream.flush()
    except BrokenPipeError:
        _silence(stream)
        raise


def _silence(stream: TextIO) -> None:
    """Point ``stream``'s fd at /dev/null, so the interpreter's final flush cannot fail or block."""
    try:
        fd = stream.fileno()
    except (OSError, ValueError):
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, fd)
    finally:
        os.close(devnull)


def guarded(run: Callable[[], int]) -> int:
    """Run a command so that Ctrl-C and a closed output pipe end it quietly.

    Ctrl-C returns 130 and a closed pipe 141, as a shell reports them, with no traceback (see
    :func:`exit_with`).
    """
    try:
        return run()
    except KeyboardInterrupt:
        _silence(sys.stdout)  # a write blocked on a full pipe must not be retried at exit
        return 128 + 2
    except BaseExceptionGroup as group:  # the same, raised from inside a task group
        if group.split(KeyboardInterrupt)[1] is not None:
            raise
        _silence(sys.stdout)
        return 128 + 2
    except BrokenPipeError:
        _silence(sys.stdout)
        return 128 + 13
    except OSError as err:
        if err.errno == errno.EPIPE:
            _silence(sys.stdout)
            return 128 + 13
        raise


def exit_with(status: int) -> NoReturn:
    """End the process with ``status``: 130 and 141 (Ctrl-C, a closed pipe) as a death by SIGINT
    or SIGPIPE, as GNU tools end then and as Python ends on an uncaught KeyboardInterrupt, so
    the program that ran the command knows (a shell script's loop stops at a Ctrl-C)."""
    signum = status - 128
    if signum in (signal.SIGINT, signal.SIGPIPE):
        signal.signal(signum, signal.SIG_DFL)
        signal.raise_signal(signum)
    sys.exit(status)


class Progress:
    """A live count of the entries seen so far, drawn on stderr by rich when it is installed.

    The event loop only updates two fields; rich's own refresh thread does the drawing, so
    showing progress never writes to the terminal from the loop while a walk runs.
    """

    def __init__(self, verb: str, enabled: bool | None) -> None:
        self.verb = verb
        self.entries = 0
        self.bytes = 0
        self.current = ""
        self._live: Any = None
        self.width = 80
        if enabled is None:
            enabled = sys.stderr.isatty()
        if enabled:
            self._live = _make_live(self._render)
            if self._live is not None:
                self.width = self._live.console.width

    def advance(self, path: str, size: int = 0) -> None:
        """Count one entry (and ``size`` bytes) and remember where the walk is."""
        self.entries += 1
        self.bytes += size
        self.current = path

    def _render(self) -> Any:
        from rich.text import Text

        line = Text(f"{self.verb} {self.entries:,} entries", style="bold")
        if self.bytes:
            line.append(f", {human_size(self.bytes)}B")
        line.append("  ")
        line.append(self.current, style="dim")
        line.truncate(max(20, self.width - 1), overflow="ellipsis")
        return line

    def __enter__(self) -> Self:
        if self._live is not None:
            self._live.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._live is not None:
            self._live.stop()


def _make_live(render: Callable[[], Any]) -> Any:
    """A transient rich ``Live`` on stderr, or ``None`` when rich is not installed."""
    try:
        from rich.console import Console
        from rich.live import Live
    except ImportError:  # rich is optional (the `cli` extra): no display without it
        return None
    console = Console(stderr=True, force_terminal=True)
    live = Live(
        get_renderable=render,
        console=console,
        refresh_per_second=8,
        transient=True,
        redirect_stdout=False,
        redirect_stderr=False,
    )
    return live  # rich draws from its own daemon thread


def human_size(n: int) -> str:
    """``n`` bytes the way ``du -h`` prints them: at most 3 digits and a unit, rounded up."""
    if n < 1024:
        return str(n)
    for power, unit in enumerate("KMGTPEZY", start=1):
        div = 1024**power
        if n < 10 * div:
            tenths = -(-n * 10 // div)
            return f"{tenths // 10}.{tenths % 10}{unit}" if tenths < 100 else f"10{unit}"
        whole = -(-n // div)
        if whole < 1024 or unit == "Y":
            return f"{whole}{unit}"
    raise AssertionError("unreachable")
