"""Miscellaneous system information: ``confstr``, ``sysconf``, ``cpu_count``, ``getloadavg``, path constants.

Section "Miscellaneous System Information" of the :mod:`os` documentation."""

import sys
from os import (
    RTLD_DEEPBIND as RTLD_DEEPBIND,
    RTLD_GLOBAL as RTLD_GLOBAL,
    RTLD_LAZY as RTLD_LAZY,
    RTLD_LOCAL as RTLD_LOCAL,
    RTLD_NODELETE as RTLD_NODELETE,
    RTLD_NOLOAD as RTLD_NOLOAD,
    RTLD_NOW as RTLD_NOW,
    TMP_MAX as TMP_MAX,
    altsep as altsep,
    confstr as confstr,
    confstr_names as confstr_names,
    cpu_count as cpu_count,
    curdir as curdir,
    defpath as defpath,
    devnull as devnull,
    extsep as extsep,
    getloadavg as getloadavg,
    pardir as pardir,
    pathsep as pathsep,
    sep as sep,
    sysconf as sysconf,
    sysconf_names as sysconf_names,
)

if sys.version_info >= (3, 13):
    from os import process_cpu_count as process_cpu_count
