"""Async faces of the functions a later release of ``os`` adds, which aos does not know yet.

Such a function may block (3.14's ``readinto`` does), so it is offloaded as ``MUTATE``: it runs
to completion on a worker, as a call with effects must, and never on the loop. Its other new
names (constants, types) are passed through with the rest. (Empty on the releases aos is tested
on: each name there has its own place.)
"""

from __future__ import annotations

import types

from aos import blocking
from aos._async._offload import MUTATE, offload

__all__: list[str] = []

for _name in sorted(blocking._LATER_NAMES):
    _value = getattr(blocking, _name)
    if isinstance(_value, (types.BuiltinFunctionType, types.FunctionType)):
        globals()[_name] = offload(_value, MUTATE)
        __all__ += [_name]
