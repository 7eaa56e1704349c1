# The C module built from _inline_c.c (see aos/_async/_inline.py): (mount id, os.stat_result) of
# raw (relative to at) if every component is cached; else the errno of the lookup, or None.
import os

def stat_cached(
    at: int, raw: bytes, follow: bool, /
) -> tuple[int, os.stat_result] | int | None: ...
