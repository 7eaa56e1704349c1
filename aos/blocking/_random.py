"""Random numbers: ``getrandom`` and ``urandom``.

Section "Random numbers" of the :mod:`os` documentation."""

from os import urandom as urandom

try:  # only where the platform has getrandom(2), as in os
    from os import (
        GRND_NONBLOCK as GRND_NONBLOCK,
        GRND_RANDOM as GRND_RANDOM,
        getrandom as getrandom,
    )
except ImportError:
    pass
