"""Atomic deploy by symlink swap: point ``SITE/current`` at a new release in one step.

A new link is made beside the old one with ``aos.symlink`` and renamed over it with
``aos.replace``; ``rename(2)`` replaces the name atomically, so a reader following ``current``
sees the old release or the new one, never a missing or half-made link.

    python examples/deploy.py /srv/site releases/2024-06-01 --loop trio
"""

from __future__ import annotations

import argparse
import os
import secrets
import stat

import anyio
from _loop import add_loop_option, run

import aos


async def deploy(site: str, release: str) -> str | None:
    """Make ``site/current`` point at ``release``; return what it pointed at before (or ``None``).

    ``release`` is stored as given, so a path relative to ``site`` keeps the site relocatable.
    """
    current = os.path.join(site, "current")
    try:
        previous: str | None = await aos.readlink(current)
    except FileNotFoundError:
        previous = None
    staged = os.path.join(site, f".current.{secrets.token_hex(8)}")
    await aos.symlink(release, staged)
    try:
        await aos.replace(staged, current)
    except BaseException:
        with anyio.CancelScope(shield=True):
            try:
                await aos.unlink(staged)
            except FileNotFoundError:  # the rename did happen before the cancellation
                pass
        raise
    return previous


async def main(site: str, release: str) -> str | None:
    """Deploy ``release`` to ``site`` and say what changed."""
    target = os.path.join(site, release)
    try:
        is_dir = stat.S_ISDIR((await aos.stat(target)).st_mode)
    except FileNotFoundError:
        is_dir = False
    if not is_dir:
        raise SystemExit(f"deploy: {target!r} is not a directory")
    previous = await deploy(site, release)
    print(f"{os.path.join(site, 'current')} -> {release} (was {previous or 'nothing'})")
    return previous


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("site", help="the directory holding the 'current' link")
    parser.add_argument("release", help="the release directory, relative to SITE")
    add_loop_option(parser)
    args = parser.parse_args()
    run(main, args.site, args.release, loop=args.loop)
