"""A parallel command runner: start commands with ``aos.posix_spawn``, at most N at a time, and
collect each exit status with ``aos.waitid``.

A cancelled run (Ctrl-C) kills the children it started and reaps them, so none is left behind.

    python examples/parallel_run.py -j 4 "sleep 1" "ls /" "false" --loop trio
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import signal
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass

import anyio
from _loop import add_loop_option, run

import aos


@dataclass(frozen=True)
class Result:
    """How one command ended: ``exit_code`` is its status, or minus the signal that killed it."""

    command: Sequence[str]
    exit_code: int
    seconds: float


async def run_command(argv: Sequence[str]) -> Result:
    """Spawn ``argv`` (the program found on ``PATH``) and wait for it; kill and reap it if cancelled."""
    program = (
        argv[0] if os.sep in argv[0] else await anyio.to_thread.run_sync(shutil.which, argv[0])
    )
    if program is None:
        raise FileNotFoundError(2, "command not found", argv[0])
    started = time.monotonic()
    pid = await aos.posix_spawn(program, list(argv), os.environ)
    try:
        info = await aos.waitid(os.P_PID, pid, os.WEXITED)
    except BaseException:
        with anyio.CancelScope(shield=True):
            os.kill(pid, signal.SIGKILL)  # a zombie takes the signal harmlessly
            try:
                await aos.waitid(os.P_PID, pid, os.WEXITED)
            except ChildProcessError:  # already reaped
                pass
        raise
    assert info is not None  # without WNOHANG, waitid returns only once the child has ended
    code = info.si_status if info.si_code == os.CLD_EXITED else -info.si_status
    return Result(tuple(argv), code, time.monotonic() - started)


async def main(commands: Sequence[Sequence[str]], jobs: int = 4) -> list[Result]:
    """Run every command, ``jobs`` at a time; print one line per command as it ends."""
    limiter = anyio.CapacityLimiter(jobs)
    results: list[Result | None] = [None] * len(commands)

    async def one(index: int, argv: Sequence[str]) -> None:
        async with limiter:
            try:
                result = await run_command(argv)
            except OSError as err:  # could not start it
                result = Result(tuple(argv), 127, 0.0)
                print(f"[error] {shlex.join(argv)}: {err.strerror}", file=sys.stderr)
        results[index] = result
        status = "ok" if result.exit_code == 0 else f"exit {result.exit_code}"
        print(f"[{status:>7} {result.seconds:6.2f}s] {shlex.join(argv)}", flush=True)

    async with anyio.create_task_group() as tg:
        for index, argv in enumerate(commands):
            tg.start_soon(one, index, argv)
    return [r for r in results if r is not None]


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("commands", nargs="+", metavar="COMMAND", help="a command line, quoted")
    parser.add_argument(
        "-j", "--jobs", type=int, default=os.cpu_count() or 1, help="how many at a time"
    )
    add_loop_option(parser)
    args = parser.parse_args()
    try:
        done = run(main, [shlex.split(c) for c in args.commands], args.jobs, loop=args.loop)
    except* KeyboardInterrupt:  # bare, or from inside a task group
        sys.exit(130)
    sys.exit(0 if all(r.exit_code == 0 for r in done) else 1)
