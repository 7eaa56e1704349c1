"""Sphinx configuration for aos. Build with ``docs/build.sh`` (warnings are errors)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "_ext"))
sys.path.insert(0, str(HERE.parent))

import aos  # noqa: E402

project = "aos"
author = "aos developers"
copyright = "aos developers"
release = version = aos.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.intersphinx",
    "myst_parser",
    "aos_api",
]
source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
exclude_patterns = ["_build"]
myst_enable_extensions = ["colon_fence"]
myst_heading_anchors = 3

html_theme = "furo"
html_title = "aos"

nitpicky = True
autodoc_typehints = "none"  # signatures come from the code; types live in the stubs
default_role = "py:obj"

# The build has no network: intersphinx reads the Python docs' inventory from Debian's
# python3.11-doc package (docs/build.sh installs it), and links point at docs.python.org.
PYTHON_INVENTORY = os.environ.get(
    "AOS_PYTHON_INVENTORY", "/usr/share/doc/python3.11/html/objects.inv"
)
if not os.path.exists(PYTHON_INVENTORY):
    raise RuntimeError(
        f"no Python inventory at {PYTHON_INVENTORY}: install python3.11-doc "
        "(docs/build.sh does) or set AOS_PYTHON_INVENTORY"
    )
intersphinx_mapping = {"python": ("https://docs.python.org/3.11", PYTHON_INVENTORY)}
