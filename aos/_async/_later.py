"""Async faces of the functions a later release of ``os`` adds, which aos does not know yet.

Such a function may block, even for good (3.14's ``readinto`` of a pipe), so it is offloaded as
``MUTATE`` in the wait lane: it runs to completion, as a call with effects must, never on the
loop and holding no worker that filesystem calls need. Its other new names (constants, types)
are passed through with the rest. (Empty on the releases aos is tested on: each name there has
its own place. Star-imported first: a face of aos's own always wins.)
"""

from __future__ import annotations

import types

from aos import blocking
from aos._async._offload import MUTATE, offload

__all__: list[str] = []


def _always(*args: object, **kwargs: object) -> bool:
    return True


for _name in sorted(blocking._LATER_NAMES):
    _value = getattr(blocking, _name)
    if isinstance(_value, (types.BuiltinFunctionType, types.FunctionType)):
        globals()[_name] = offload(_value, MUTATE, waits=_always)
        __all__ += [_name]
