"""Linux extended attributes: ``getxattr``, ``setxattr``, ``listxattr``, ``removexattr``.

Section "Linux extended attributes" of the :mod:`os` documentation."""

try:  # only where the platform has extended attributes, as in os
    from os import (
        XATTR_CREATE as XATTR_CREATE,
        XATTR_REPLACE as XATTR_REPLACE,
        XATTR_SIZE_MAX as XATTR_SIZE_MAX,
        getxattr as getxattr,
        listxattr as listxattr,
        removexattr as removexattr,
        setxattr as setxattr,
    )
except ImportError:
    pass
