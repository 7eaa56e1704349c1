"""Async :mod:`os.path`: the queries that touch the disk are awaitable, the rest is ``os.path``.

The stat-based ones (``exists``, ``lexists``, ``isfile``, ``isdir``, ``islink``, ``getsize``,
``getmtime``, ``getatime``, ``getctime``) are answered on the loop's thread when the kernel can
do it without I/O, as :func:`aos.stat` is (see :mod:`aos._async._inline`).

Offloaded as ``QUERY`` (a cancel returns at once): ``exists``, ``lexists``, ``isfile``,
``isdir``, ``islink``, ``ismount``, ``getsize``, ``getmtime``, ``getatime``, ``getctime``,
``samefile``, ``sameopenfile`` (``stat``/``fstat``), ``realpath`` (``lstat``/``readlink`` per
component), ``abspath`` and ``relpath`` (``getcwd`` for a relative path, like
:func:`aos.getcwd`), ``expanduser`` (``~user`` is a user-database lookup).

Passed through as the very objects of :mod:`os.path`, because they only compute on strings:
``join``, ``split``, ``splitext``, ``splitdrive``, ``splitroot``, ``basename``, ``dirname``,
``normpath``, ``normcase``, ``commonpath``, ``commonprefix``, ``expandvars``, ``isabs``,
``samestat``, ``isjunction`` and ``isdevdrive`` (always false on POSIX), and the constants.
A function that a later release of :mod:`os.path` adds is offloaded as ``QUERY``; a constant
is passed through.
"""

import os
import sys
import types as _types
import typing as _typing
from os.path import (
    altsep as altsep,
    basename as basename,
    commonpath as commonpath,
    commonprefix as commonprefix,
    curdir as curdir,
    defpath as defpath,
    devnull as devnull,
    dirname as dirname,
    expandvars as expandvars,
    extsep as extsep,
    isabs as isabs,
    join as join,
    normcase as normcase,
    normpath as normpath,
    pardir as pardir,
    pathsep as pathsep,
    samestat as samestat,
    sep as sep,
    split as split,
    splitdrive as splitdrive,
    splitext as splitext,
    supports_unicode_filenames as supports_unicode_filenames,
)

from aos import blocking as _blocking
from aos._async import _inline
from aos._async._offload import QUERY as _QUERY, offload as _offload

__all__ = list(os.path.__all__)  # os.path's names, whatever this Python's are

exists = _offload(_blocking.path.exists, _QUERY, inline=_inline.exists)
lexists = _offload(_blocking.path.lexists, _QUERY, inline=_inline.lexists)
isfile = _offload(_blocking.path.isfile, _QUERY, inline=_inline.isfile)
isdir = _offload(_blocking.path.isdir, _QUERY, inline=_inline.isdir)
islink = _offload(_blocking.path.islink, _QUERY, inline=_inline.islink)
ismount = _offload(_blocking.path.ismount, _QUERY)
getsize = _offload(_blocking.path.getsize, _QUERY, inline=_inline.getsize)
getmtime = _offload(_blocking.path.getmtime, _QUERY, inline=_inline.getmtime)
getatime = _offload(_blocking.path.getatime, _QUERY, inline=_inline.getatime)
getctime = _offload(_blocking.path.getctime, _QUERY, inline=_inline.getctime)
samefile = _offload(_blocking.path.samefile, _QUERY)
sameopenfile = _offload(_blocking.path.sameopenfile, _QUERY)

if _typing.TYPE_CHECKING:  # overloaded in os.path; mypy keeps only one overload through ParamSpec
    from os import PathLike
    from typing import Any, AnyStr, overload

    from _typeshed import BytesPath, StrPath

    @overload
    async def abspath(path: PathLike[AnyStr]) -> AnyStr: ...
    @overload
    async def abspath(path: AnyStr) -> AnyStr: ...
    async def abspath(path: Any) -> Any: ...
    @overload
    async def expanduser(path: PathLike[AnyStr]) -> AnyStr: ...
    @overload
    async def expanduser(path: AnyStr) -> AnyStr: ...
    async def expanduser(path: Any) -> Any: ...
    @overload
    async def realpath(filename: PathLike[AnyStr], *, strict: bool = False) -> AnyStr: ...
    @overload
    async def realpath(filename: AnyStr, *, strict: bool = False) -> AnyStr: ...
    async def realpath(filename: Any, *, strict: bool = False) -> Any: ...
    @overload
    async def relpath(path: BytesPath, start: BytesPath | None = None) -> bytes: ...
    @overload
    async def relpath(path: StrPath, start: StrPath | None = None) -> str: ...
    async def relpath(path: Any, start: Any = None) -> Any: ...

else:
    abspath = _offload(_blocking.path.abspath, _QUERY)
    expanduser = _offload(_blocking.path.expanduser, _QUERY)
    realpath = _offload(_blocking.path.realpath, _QUERY)
    relpath = _offload(_blocking.path.relpath, _QUERY)

if sys.version_info >= (3, 12):
    from os.path import isjunction as isjunction, splitroot as splitroot

if sys.version_info >= (3, 13):
    from os.path import isdevdrive as isdevdrive

# Any other name of this Python's os.path (one a later release adds, such as ALLOW_MISSING in
# the 2025 security releases): a constant as its very object; a function, which may look at the
# disk, offloaded as QUERY, as aos offloads a later os function. (On the releases aos is tested
# on, only ALLOW_MISSING, where it is there: tests/aio/test_namespace.py.)
_LATER_NAMES = frozenset(__all__) - set(globals())
for _name in _LATER_NAMES:
    _value = getattr(os.path, _name)
    _is_function = isinstance(_value, (_types.BuiltinFunctionType, _types.FunctionType))
    globals()[_name] = _offload(_value, _QUERY) if _is_function else _value
