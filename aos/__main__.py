"""``python -m aos``: the command line (``du``, ``find``, ``tree``); see ``python -m aos --help``."""

from __future__ import annotations

from aos._cli import main, run

__all__ = ["main", "run"]

if __name__ == "__main__":
    run()
