"""``python -m aos``: the command line (``du``, ``find``, ``tree``); see ``python -m aos --help``."""

from __future__ import annotations

from aos._cli import main
from aos._cli._common import exit_with

__all__ = ["main"]

if __name__ == "__main__":
    exit_with(main())
