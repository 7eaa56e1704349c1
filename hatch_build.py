"""Build hook: compiles ``aos/_async/_inline_c.c``, the inline ``stat`` in C, into the wheel.

Optional: without a C compiler (or with ``AOS_NO_EXTENSION=1``) the wheel is pure Python, and
aos answers the same calls through ctypes, 2.8 us a call slower (see ``aos/_async/_inline.py``).
An editable install builds the module next to its source, where the editable import finds it.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sysconfig
import tempfile
from pathlib import Path
from typing import Any

from hatchling.builders.hooks.plugin.interface import BuildHookInterface

SOURCE = Path("aos/_async/_inline_c.c")
MODULE = "aos/_async/_inline_c"


class InlineStatExtension(BuildHookInterface):
    """Compile the C module when the platform and a compiler allow; else build pure Python."""

    _scratch: str | None = None  # where a regular wheel's module is built, removed after

    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        if self.target_name != "wheel":
            return
        name = MODULE + str(sysconfig.get_config_var("EXT_SUFFIX"))
        root = Path(self.root)
        editable = version == "editable"
        if editable:  # next to its source, for the import to find; the last build's goes first,
            target = root / name  # so that a refused or failed build leaves none to import
            target.unlink(missing_ok=True)
        if not _wanted():
            return
        if not editable:
            self._scratch = tempfile.mkdtemp(prefix="aos-build-")
            target = Path(self._scratch) / Path(name).name
        failure = _compile(root / SOURCE, target)
        if failure:
            self.app.display_warning(f"aos: no C inline stat ({failure}); ctypes answers instead")
            return
        build_data["pure_python"] = False
        build_data["infer_tag"] = True
        if not editable:
            build_data["force_include"][str(target)] = name

    def finalize(self, version: str, build_data: dict[str, Any], artifact_path: str) -> None:
        if self._scratch is not None:
            shutil.rmtree(self._scratch, ignore_errors=True)
            self._scratch = None


def _wanted() -> bool:
    refused = os.environ.get("AOS_NO_EXTENSION", "").strip() in ("1", "true", "yes", "on")
    return not refused and sysconfig.get_platform().startswith("linux")


def _compile(source: Path, target: Path) -> str | None:
    """Build ``source`` into the extension module ``target``; the reason it failed, or None."""
    link = shlex.split(str(sysconfig.get_config_var("LDSHARED") or "cc -shared"))
    command = [
        *link, "-O2", "-fPIC", "-ffp-contract=off", "-Wall",
        f"-I{sysconfig.get_paths()['include']}", str(source), "-o", str(target),
    ]  # fmt: skip
    try:
        done = subprocess.run(command, capture_output=True, text=True, check=False)
    except OSError as error:
        return f"{link[0]}: {error.strerror}"
    if done.returncode != 0:
        errors = [line for line in done.stderr.splitlines() if "error" in line]
        return errors[0].strip() if errors else f"{link[0]} exited with {done.returncode}"
    return None
