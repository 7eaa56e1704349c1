"""``python -m aos``: the command line (``du``, ``find``, ``tree``); see ``python -m aos --help``."""

from __future__ import annotations

import sys

from aos._cli import main

__all__ = ["main"]

if __name__ == "__main__":
    sys.exit(main())
