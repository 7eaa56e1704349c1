"""``posix_spawn`` without the GIL: libc's ``posix_spawn[p]`` through ``ctypes``, for a worker.

:func:`os.posix_spawn` holds the GIL for the whole call, and most of the call is waiting: libc
clones with ``CLONE_VFORK``, so the parent sleeps until the child has ``exec``'d (0.2 ms for
``/bin/true``, up to 4 ms for a Python). Run on the loop thread, that stalls every other task;
run on a worker, it stalls the loop all the same. Called through ``ctypes``, which releases the
GIL, the spawn runs on a worker while the loop goes on: 16 children in flight then cost what
they cost a sync loop (see ``benchmarks/results/spawn.md``).

:func:`prepare` takes the arguments on the loop thread and converts the common forms only: a
path, a list or tuple of arguments, a ``dict`` or ``os.environ``, file actions as a list or
tuple of well-formed tuples, the ``setpgroup``, ``resetids``, ``setsid``, ``setsigmask`` and
``setsigdef`` options. Anything else (``scheduler``, iterators, other mappings, and every
argument ``os`` would refuse) gives ``None``, and the caller runs :func:`os.posix_spawn` itself,
which then raises its own error. A prepared spawn can only fail in the child's ``exec``, with
the very ``OSError`` that ``os`` raises.

The child is the same as one :func:`os.posix_spawn` makes on the calling thread: it gets the
calling thread's signal mask (unless ``setsigmask`` says otherwise), not the worker's. Other
per-thread state (CPU affinity, nice value) is the worker's, which it inherited from the thread
that started it.
"""

from __future__ import annotations

import codecs
import ctypes
import functools
import operator
import os
import sys
import threading
from collections.abc import Callable, Iterable
from typing import Any, Final

_FILE_ACTIONS_SIZE: Final = 256  # glibc's posix_spawn_file_actions_t is 80 bytes
_ATTR_SIZE: Final = 512  # glibc's posix_spawnattr_t is 336 bytes
_SIGSET_SIZE: Final = 128
_SIGNAL_RANGE: Final = range(1, 65)
_FS_ENCODING: Final = sys.getfilesystemencoding()
_FS_ERRORS: Final = sys.getfilesystemencodeerrors()
_ENCODE_STR: Final = operator.methodcaller("encode", _FS_ENCODING, _FS_ERRORS)
# Where the filesystem encoding is UTF-8, a strict encoding that succeeds equals the one with the
# error handler, at a third of the cost.
_ENCODE_STRICT: Final[Callable[[str], bytes]] = (
    str.encode if codecs.lookup(_FS_ENCODING).name == "utf-8" else _ENCODE_STR
)

# <spawn.h> on Linux (glibc and musl agree).
_RESETIDS: Final = 0x01
_SETPGROUP: Final = 0x02
_SETSIGDEF: Final = 0x04
_SETSIGMASK: Final = 0x08
_SETSID: Final = 0x80
_SIG_BLOCK: Final = 0
_SIG_SETMASK: Final = 2
_C_INT: Final = range(-(2**31), 2**31)
_FLAGS_ARE_C_INTS: Final = sys.version_info < (3, 12)  # resetids, setsid: then bools

_OPEN: Final = getattr(os, "POSIX_SPAWN_OPEN", None)
_CLOSE: Final = getattr(os, "POSIX_SPAWN_CLOSE", None)
_DUP2: Final = getattr(os, "POSIX_SPAWN_DUP2", None)
_CLOSEFROM: Final = getattr(os, "POSIX_SPAWN_CLOSEFROM", None)  # Python 3.13


def _functions(library: ctypes.CDLL) -> dict[str, Any]:
    """The spawn functions of ``library``, or an empty dict where it lacks one."""
    names = (
        "posix_spawn", "posix_spawnp", "posix_spawn_file_actions_init",
        "posix_spawn_file_actions_destroy", "posix_spawn_file_actions_addopen",
        "posix_spawn_file_actions_addclose", "posix_spawn_file_actions_adddup2",
        "posix_spawnattr_init", "posix_spawnattr_destroy", "posix_spawnattr_setflags",
        "posix_spawnattr_setpgroup", "posix_spawnattr_setsigmask",
        "posix_spawnattr_setsigdefault", "pthread_sigmask", "sigemptyset", "sigaddset",
    )  # fmt: skip
    try:
        found: dict[str, Any] = {name: getattr(library, name) for name in names}
    except AttributeError:
        return {}
    closefrom = getattr(library, "posix_spawn_file_actions_addclosefrom_np", None)
    if closefrom is not None:
        found["posix_spawn_file_actions_addclosefrom_np"] = closefrom
    for function in found.values():
        function.restype = ctypes.c_int
    return found


# The set-up calls keep the GIL (PyDLL): they are short, and a release on the loop thread would
# let a worker take the GIL from the loop mid-call. The spawn itself releases it (CDLL).
_held: Final = _functions(ctypes.PyDLL(None))
_AVAILABLE: Final = bool(_held) and sys.platform.startswith("linux")
_released: Final = (
    {name: getattr(ctypes.CDLL(None), name) for name in ("posix_spawn", "posix_spawnp")}
    if _AVAILABLE
    else {}
)


def prepare_call(
    search_path: bool, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Prepared | None:
    """:func:`prepare` for ``os.posix_spawn[p](*args, **kwargs)``, audited as ``os`` audits it;
    ``None`` where ``os`` should make the call (it then raises its own errors)."""
    if not _AVAILABLE:
        return None
    try:
        prepared = prepare(search_path, *args, **kwargs)
    except TypeError:  # arguments that do not bind
        return None
    if prepared is not None:
        try:
            sys.audit("os.posix_spawn", *args)
        except BaseException:
            prepared.release()
            raise
    return prepared


class Prepared:
    """One spawn, converted to C and ready to run on a worker (run it once)."""

    __slots__ = ("_argv", "_attr", "_envp", "_file_actions", "_filename", "_keep", "_mask",
                 "_owned", "_path_bytes", "_spawn")  # fmt: skip

    def __init__(self, spawn: Callable[..., int], path: object, path_bytes: bytes) -> None:
        self._spawn = spawn
        self._filename = os.fspath(path)  # type: ignore[call-overload]  # (os names it so)
        self._path_bytes = path_bytes
        self._argv: Any = None
        self._envp: Any = None
        self._file_actions: Any = None  # posix_spawn_file_actions_t, if there are any
        self._attr: Any = None  # posix_spawnattr_t, if an option needs one
        self._mask: Any = None  # the caller's signal mask, for the worker to take on
        self._keep: list[bytes] = []  # file-action paths: libc keeps pointers to them
        self._owned = threading.Lock()  # taken by run, or by discard: the one that frees

    def run(self) -> int:
        """Spawn the child (on a worker: the GIL is released meanwhile); return its pid. Once
        :meth:`discard` has had it, it spawns nothing and raises :exc:`RuntimeError`."""
        if not self._owned.acquire(blocking=False):
            raise RuntimeError("a discarded spawn cannot run")
        pid = ctypes.c_int()
        own_mask = None
        try:
            if self._mask is not None:  # a child starts with its spawning thread's mask
                own_mask = ctypes.create_string_buffer(_SIGSET_SIZE)
                _held["pthread_sigmask"](_SIG_SETMASK, self._mask, own_mask)
            error = self._spawn(ctypes.byref(pid), self._path_bytes, self._file_actions,
                                self._attr, self._argv, self._envp)  # fmt: skip
        finally:
            if own_mask is not None:  # the next caller's mask may differ: keep none of this one
                _held["pthread_sigmask"](_SIG_SETMASK, own_mask, None)
            self.release()
        if error:
            raise OSError(error, os.strerror(error), self._filename)
        return pid.value

    def discard(self) -> None:
        """Free what a spawn shared with a worker holds, unless :meth:`run` has it (started,
        perhaps still in libc's ``posix_spawn``, whose child reads the file actions): ``run``
        frees it itself when it returns. (The caller's cleanup used to free them itself, safe
        only as long as nothing lets a caller go while a worker runs its spawn.)"""
        if self._owned.acquire(blocking=False):
            self.release()

    def release(self) -> None:
        """Free libc's copies of the file actions and attributes (by their one owner)."""
        if self._file_actions is not None:
            _held["posix_spawn_file_actions_destroy"](self._file_actions)
            self._file_actions = None
        if self._attr is not None:
            _held["posix_spawnattr_destroy"](self._attr)
            self._attr = None

    def add_file_action(self, action: object) -> bool:
        """Add one ``(POSIX_SPAWN_*, ...)`` tuple; whether it was well-formed and libc took it."""
        if type(action) is not tuple or len(action) < 2 or not _ints(action[:2]):
            return False
        if self._file_actions is None:
            self._file_actions = ctypes.create_string_buffer(_FILE_ACTIONS_SIZE)
            _held["posix_spawn_file_actions_init"](self._file_actions)
        tag, fd, *rest = action
        fa = self._file_actions
        if tag == _OPEN and len(rest) == 3 and _ints(rest[1:]):
            path = _encoded(rest[0])
            if path is None:
                return False
            self._keep.append(path)
            return not _held["posix_spawn_file_actions_addopen"](fa, fd, path, rest[1], rest[2])
        if tag == _CLOSE and not rest:
            return not _held["posix_spawn_file_actions_addclose"](fa, fd)
        if tag == _DUP2 and len(rest) == 1 and _ints(rest):
            return not _held["posix_spawn_file_actions_adddup2"](fa, fd, rest[0])
        closefrom = _held.get("posix_spawn_file_actions_addclosefrom_np")
        if tag == _CLOSEFROM and not rest and closefrom is not None:
            return not closefrom(fa, fd)
        return False

    def set_attributes(
        self, setpgroup: object, resetids: object, setsid: object, setsigmask: object,
        setsigdef: object,
    ) -> bool:  # fmt: skip
        """Set the spawn attributes as ``os`` does; whether every value was one it accepts."""
        flags = 0
        if setsigmask is _OMITTED:
            self._mask = ctypes.create_string_buffer(_SIGSET_SIZE)
            _held["pthread_sigmask"](_SIG_BLOCK, None, self._mask)  # reads the caller's mask
        for signals, setter, flag in (
            (setsigmask, "posix_spawnattr_setsigmask", _SETSIGMASK),
            (setsigdef, "posix_spawnattr_setsigdefault", _SETSIGDEF),
        ):
            if signals is _OMITTED:
                continue
            sigset = _sigset(signals)
            if sigset is None:
                return False
            _held[setter](self._attributes(), sigset)
            flags |= flag
        if setpgroup is not _OMITTED:
            if not _ints((setpgroup,)):  # (None too: os refuses it)
                return False
            _held["posix_spawnattr_setpgroup"](self._attributes(), setpgroup)
            flags |= _SETPGROUP
        for value, flag in ((resetids, _RESETIDS), (setsid, _SETSID)):
            if type(value) not in (bool, int) or (_FLAGS_ARE_C_INTS and value not in _C_INT):
                return False  # (os raises its OverflowError)
            if value:
                flags |= flag
        return not flags or not _held["posix_spawnattr_setflags"](
            self._attributes(), ctypes.c_short(flags)
        )

    def _attributes(self) -> Any:
        """The ``posix_spawnattr_t``, made on first use."""
        if self._attr is None:
            self._attr = ctypes.create_string_buffer(_ATTR_SIZE)
            _held["posix_spawnattr_init"](self._attr)
        return self._attr


class _Omitted:
    """The default of the options ``os`` tells omitted from any value given: ``setsigmask`` and
    ``setsigdef`` from ``()``, ``setpgroup`` and ``scheduler`` from ``None`` (which it refuses)."""


_OMITTED: Final = _Omitted()


def prepare(
    search_path: bool,
    path: object,
    argv: object,
    env: object,
    /,
    *,
    file_actions: object = (),
    setpgroup: object = _OMITTED,
    resetids: object = False,
    setsid: object = False,
    setsigmask: object = _OMITTED,
    setsigdef: object = _OMITTED,
    scheduler: object = _OMITTED,
) -> Prepared | None:
    """The spawn ``os.posix_spawn[p]`` would make of these arguments, ready for a worker; or
    ``None`` where the arguments are not in the forms converted here (then call ``os``).

    Arguments that do not bind raise ``TypeError``; the caller audits (``os.posix_spawn``)."""
    path_bytes = _encoded(path)
    argv_bytes = _encoded_all(argv) if isinstance(argv, list | tuple) else None
    envp = _environment(env)
    if path_bytes is None or not argv_bytes or not argv_bytes[0] or envp is None:
        return None
    if scheduler is not _OMITTED or not isinstance(file_actions, list | tuple | None):
        return None
    spawn = _released["posix_spawnp" if search_path else "posix_spawn"]
    prepared = Prepared(spawn, path, path_bytes)
    try:
        accepted = prepared.set_attributes(setpgroup, resetids, setsid, setsigmask, setsigdef)
        accepted = accepted and all(map(prepared.add_file_action, file_actions or ()))
    except BaseException:
        prepared.release()
        raise
    if not accepted:
        prepared.release()
        return None
    prepared._argv = _char_p_array(argv_bytes)
    prepared._envp = envp
    return prepared


def _encoded(value: object) -> bytes | None:
    """``value`` as the bytes ``os`` would pass to C: a path-like without NUL bytes; else None."""
    if type(value) is str:
        try:
            encoded = _ENCODE_STR(value)
        except UnicodeError:
            return None
    elif type(value) is bytes:
        encoded = value
    elif isinstance(value, str | bytes | os.PathLike):
        try:
            encoded = os.fsencode(value)
        except (TypeError, UnicodeError):
            return None
    else:
        return None
    return None if b"\0" in encoded else encoded


def _encoded_all(values: Iterable[object]) -> list[bytes] | None:
    """Each value :func:`_encoded`; ``None`` if one cannot be."""
    items: list[Any] = list(values)
    kinds = set(map(type, items))
    out: Any
    if kinds <= {bytes}:  # the usual cases at C speed: all bytes, or all str
        out = items
    elif kinds <= {str}:
        try:
            out = list(map(_ENCODE_STRICT, items))
        except UnicodeError:  # lone surrogates: the error handler decides
            try:
                out = list(map(_ENCODE_STR, items))
            except UnicodeError:
                return None
    else:
        out = [_encoded(item) for item in items]
        if None in out:
            return None
    return None if b"\0" in b"".join(out) else out


def _environment(env: object) -> Any:
    """The ``char *envp[]`` of a ``dict`` or ``os.environ``, as ``os`` builds it; else None.

    The last one built is kept and reused while the environment has the same items in the same
    order (two comparisons, a tenth of the cost of building it again): equal dicts in another
    order, or with a key given both as str and as bytes (the order decides which one the child
    sees), get their own. Under ``python -b`` nothing is reused, as those comparisons may
    compare a str with bytes. Shared by spawns at once: libc only reads it.
    """
    global _last_environment
    mapping: dict[Any, Any]
    if type(env) is dict:
        mapping = env
    elif env is os.environ:
        data = getattr(env, "_data", None)  # its encoded copy, which os.environ keeps in step
        mapping = data if type(data) is dict else dict(os.environ)
    else:
        return None
    last, last_keys, envp = _last_environment
    if (
        not sys.flags.bytes_warning
        and mapping == last
        and list(mapping) == last_keys
        and _STR_OR_BYTES.issuperset(map(type, mapping.values()))  # (bytearray(b"1") == b"1")
        and _STR_OR_BYTES.issuperset(map(type, mapping))
    ):
        return envp
    keys, values = _encoded_all(mapping), _encoded_all(mapping.values())
    if keys is None or values is None or not all(keys) or b"=" in b"".join(keys):
        return None
    envp = _char_p_array(list(map(b"=".join, zip(keys, values, strict=True))))
    _last_environment = (dict(mapping), list(mapping), envp)
    return envp


_STR_OR_BYTES: Final = frozenset((str, bytes))  # what an environment's names and values may be
# The last environment built: a copy, its keys in order, its envp (at first, none).
_last_environment: tuple[dict[Any, Any] | None, list[Any], Any] = (None, [], None)


def _char_p_array(items: list[bytes]) -> Any:
    """A NULL-terminated ``char *[]`` that keeps ``items`` alive."""
    array: Any = _char_p_array_type(len(items) + 1)()
    array[: len(items)] = items  # a third of the cost of passing them to the constructor
    return array


@functools.lru_cache(maxsize=64)
def _char_p_array_type(length: int) -> Any:
    """``char *[length]``, kept: ctypes keeps an array type only while something uses it, and
    each one freed is a reference cycle (7 objects) for the cyclic collector."""
    return ctypes.c_char_p * length


def _ints(values: tuple[object, ...] | list[object]) -> bool:
    """Whether every value is an int that fits a C int."""
    return all(type(value) is int and value in _C_INT for value in values)


def _sigset(signals: object) -> Any:
    """A ``sigset_t`` of ``signals`` (a concrete collection of signal numbers), or ``None``."""
    if not isinstance(signals, list | tuple | set | frozenset):
        return None
    numbers = [int(s) for s in signals if isinstance(s, int)]
    if len(numbers) != len(signals) or any(n not in _SIGNAL_RANGE for n in numbers):
        return None
    sigset = ctypes.create_string_buffer(_SIGSET_SIZE)
    _held["sigemptyset"](sigset)
    for number in numbers:
        if _held["sigaddset"](sigset, number):  # one libc reserves (32, 33): os warns of it
            return None
    return sigset
