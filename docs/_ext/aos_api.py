"""Sphinx extension: the API reference of one os section on both faces, read from the code.

``.. aos-section:: aos.blocking._fd`` documents every public name of that section module:

- each function twice, as ``aos.blocking.NAME`` (the very :mod:`os` object, linked to its
  entry in the Python docs) and as ``aos.NAME`` with its cancellation policy, read back with
  ``policy_of`` (or "the same object" for a call that cannot block);
- the constants and other data in one list, each linked to the Python docs where they have an entry.

"""

from __future__ import annotations

import inspect
import types
from typing import Any

from docutils import nodes
from sphinx.application import Sphinx
from sphinx.ext.intersphinx import InventoryAdapter
from sphinx.util.docutils import SphinxDirective

import aos
import aos.blocking
from aos._async._offload import Policy, policy_of

POLICY_TEXT = {
    Policy.QUERY: "**QUERY**: a cancel returns at once; the call finishes in a worker and its result is dropped.",
    Policy.MUTATE: "**MUTATE**: a cancel takes back a call not started yet, or waits until the call has returned, so you know whether it happened.",
    Policy.WAIT: "**WAIT**: runs in the unbounded wait lane, so it never holds a filesystem worker; a cancel returns at once.",
}
ROLE_OF = {
    "py:function": "func",
    "py:method": "meth",
    "py:class": "class",
    "py:exception": "exc",
    "py:data": "data",
    "py:attribute": "attr",
    "py:module": "mod",
}


def public_names(module: types.ModuleType) -> list[str]:
    """The names a section module re-exports from os (modules and private names left out)."""
    return sorted(
        name
        for name, value in vars(module).items()
        if not name.startswith("_")
        and not isinstance(value, types.ModuleType)
        and getattr(aos.blocking, name, None) is value
    )


def signature_of(func: Any) -> str:
    try:
        return str(inspect.signature(func))
    except (TypeError, ValueError):
        return "(...)"


def summary_of(func: Any) -> str:
    """The first paragraph of ``func``'s docstring, on one line."""
    return inspect.cleandoc(func.__doc__ or "").split("\n\n")[0].replace("\n", " ")


class _Reference(SphinxDirective):
    def os_ref(self, name: str) -> str:
        """``:func:`os.NAME``` (with the role the Python docs use), or a literal where they have no entry."""
        inventory = InventoryAdapter(self.env).main_inventory
        for objtype, role in ROLE_OF.items():
            if f"os.{name}" in inventory.get(objtype, {}):
                return f":py:{role}:`os.{name}`"
        return f"``os.{name}``"

    def render(self, text: str) -> list[nodes.Node]:
        return self.parse_text_to_nodes(text)


class SectionDirective(_Reference):
    """``.. aos-section:: aos.blocking._fd``"""

    required_arguments = 1

    def run(self) -> list[nodes.Node]:
        module = __import__(self.arguments[0], fromlist=["_"])
        functions: list[str] = []
        data: list[str] = []
        for name in public_names(module):
            value = getattr(module, name)
            is_function = callable(value) and not isinstance(value, type)
            (functions if is_function else data).append(name)

        lines: list[str] = []
        if functions:
            lines += self.summary_table(functions)
            for name in functions:
                lines += self.describe(name)
        if data:
            lines += ["", ".. rubric:: Constants, classes and other data", ""]
            lines.append(
                "The same objects on both faces: " + ", ".join(self.os_ref(n) for n in data) + "."
            )
        return self.render("\n".join(lines))

    def async_face(self, name: str) -> str:
        face = getattr(aos, name, None)
        policy = policy_of(face)
        if policy is not None:
            return f":py:func:`aos.{name}` ({policy.name})"
        if face is getattr(aos.blocking, name):
            return "the same object (does not block)"
        if face is not None:
            return f":py:func:`aos.{name}` (hand-written)"
        return "not on the async face"

    def summary_table(self, functions: list[str]) -> list[str]:
        lines = [
            ".. list-table::",
            "   :header-rows: 1",
            "   :widths: 30 30 40",
            "",
            "   * - os",
            "     - aos.blocking",
            "     - aos (cancellation policy)",
        ]
        for name in functions:
            lines += [
                f"   * - {self.os_ref(name)}",
                f"     - :py:func:`aos.blocking.{name}`",
                f"     - {self.async_face(name)}",
            ]
        return [*lines, ""]

    def describe(self, name: str) -> list[str]:
        blocking = getattr(aos.blocking, name)
        lines = [
            f".. py:function:: aos.blocking.{name}{signature_of(blocking)}",
            "",
            f"   The very {self.os_ref(name)}.",
            "",
        ]
        face = getattr(aos, name, None)
        policy = policy_of(face)
        if policy is not None:
            lines += [
                f".. py:function:: aos.{name}{signature_of(face)}",
                "   :async:",
                "",
                f"   Like {self.os_ref(name)}, but async.",
                "",
                f"   Cancellation policy: {POLICY_TEXT[policy]}",
                "",
            ]
        elif face is not None and face is not blocking:
            lines += [
                f".. py:function:: aos.{name}{signature_of(face)}",
                *(["   :async:"] if inspect.iscoroutinefunction(face) else []),
                "",
                f"   The async face of {self.os_ref(name)}, written by hand. {summary_of(face)}",
                "",
            ]
        return lines


def setup(app: Sphinx) -> dict[str, Any]:
    app.add_directive("aos-section", SectionDirective)
    return {"parallel_read_safe": True, "version": "1"}
