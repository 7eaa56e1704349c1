"""The synchronous core: every public name of :mod:`os` on the running platform.

``import aos.blocking as os`` just works: functions implemented in C are the very objects of
``os`` (so membership in ``os.supports_fd`` and friends holds), ``environ`` is ``os.environ``,
``path`` is ``os.path``. The functions os.py writes in Python run the same code here, but look
their helpers up in this module, as they do in ``os`` (see :mod:`aos.blocking._rebind`).
``walk`` and ``fwalk`` are aos's own iterative versions with the semantics of ``os``. Each
section of the os documentation lives in a module of its own.
"""

import os as _os

from aos.blocking._fd import *
from aos.blocking._files import *
from aos.blocking._module import *
from aos.blocking._params import *
from aos.blocking._process import *
from aos.blocking._process import _exit as _exit  # public though underscored, as in os
from aos.blocking._random import *
from aos.blocking._rebind import rebind_os_functions as _rebind_os_functions
from aos.blocking._sched import *
from aos.blocking._sysinfo import *
from aos.blocking._xattr import *

_rebind_os_functions(globals())

# A name that a later release of os adds (3.14's readinto and reload_environ, say) and no
# section above places yet: the very object of os (after the rebinding above: a function of
# os.py may call a private helper of os), so that the whole interface is here. (Empty on the
# releases aos is tested on: tests/blocking/test_names.py.)
_LATER_NAMES = frozenset(
    {_name for _name in dir(_os) if not _name.startswith("_")} | set(_os.__all__)
) - set(globals())
for _name in _LATER_NAMES:
    globals()[_name] = getattr(_os, _name)

# As in os, `from aos.blocking import *` takes os.__all__ (no supports_*, PathLike, helpers).
__all__ = [_name for _name in _os.__all__ if _name in globals()]
