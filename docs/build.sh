#!/usr/bin/env bash
# Build the docs as CI does: warnings are errors, every reference must resolve (nitpicky).
# Installs what the build needs: aos with its docs extra into the active
# Python, and Debian's python3.11-doc (the Python docs' objects.inv, for intersphinx offline).
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-python}

inventory=${AOS_PYTHON_INVENTORY:-/usr/share/doc/python3.11/html/objects.inv}
if [ ! -f "$inventory" ]; then
    if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3.11-doc >/dev/null
    else
        echo "docs/build.sh: $inventory is missing; install Debian's python3.11-doc as root" >&2
        exit 1
    fi
fi

"$python" -m pip install -q -e ".[docs]"  # editable: never shadow a developer's checkout
rm -rf docs/_build/html
"$python" -m sphinx -W --keep-going -n -b html docs docs/_build/html
