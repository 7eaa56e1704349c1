"""os.py's own Python functions, bound to the namespace of :mod:`aos.blocking`.

``os`` implements some calls in Python (``makedirs``, ``get_exec_path``, ``execvp``,
``spawnv`` ...), and each looks its helpers up in its module's globals at call time: patching
``os.execv`` reaches ``os.execvp``, assigning ``os.environ`` reaches ``os.get_exec_path``. For
``import aos.blocking as os`` to behave the same, :mod:`aos.blocking` carries copies of these
functions (the same code, defaults and closures) whose globals are its own namespace.
"""

from __future__ import annotations

import os
import types
from typing import Final

# Private helpers of os.py that its public Python functions call by name.
_HELPERS: Final = ("_execvpe", "_spawnvef", "_wrap_close")


def rebind_os_functions(namespace: dict[str, object]) -> None:
    """Replace each function of os.py in ``namespace`` by a copy that uses ``namespace``'s globals."""
    for name in _HELPERS:
        if hasattr(os, name):
            namespace[name] = getattr(os, name)
    for name, value in list(namespace.items()):
        if isinstance(value, types.FunctionType) and value.__globals__ is vars(os):
            namespace[name] = _with_globals(value, namespace)


def _with_globals(func: types.FunctionType, namespace: dict[str, object]) -> types.FunctionType:
    copy = types.FunctionType(
        func.__code__, namespace, func.__name__, func.__defaults__, func.__closure__
    )
    copy.__kwdefaults__ = func.__kwdefaults__
    copy.__qualname__ = func.__qualname__
    copy.__doc__ = func.__doc__
    copy.__dict__.update(func.__dict__)
    copy.__module__ = "aos.blocking"
    return copy
