"""The os module's own attributes: ``name``, ``error``, ``path`` and the helpers os.py exposes."""

import abc as abc
import stat as st
import sys as sys
from collections.abc import Mapping as Mapping, MutableMapping as MutableMapping
from os import (
    error as error,
    linesep as linesep,
    name as name,
    path as path,
)
from types import GenericAlias as GenericAlias
