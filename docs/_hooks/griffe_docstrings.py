"""Griffe extension for the API pages: read two common Google-docstring spellings the way they are meant.

* ``Example:`` (singular) is not a section name to griffe, which renders it as an admonition whose ``>>>``
  lines become nested block quotes. It is read as ``Examples:``, so doctests show as code.
* ``a, b: description`` in ``Args:`` / ``Attributes:`` documents several names at once; griffe would look for
  one parameter called ``"a, b"`` and warn. The line is split into one entry per name, each with the same
  description.

* ``Example (what it shows):`` is read as an ``Examples:`` section that starts with that sentence.
* Sphinx roles (``:func:`name```, ``:class:`~pkg.Name```, ...) are not Markdown: they become code that links
  to the object when the API pages document it (an *optional* autorefs link: no warning when it does not).

The docstrings in the package are left as written (they are also read by ``help()`` and doctest).
"""

from __future__ import annotations

import re
from typing import Any

import griffe

_EXAMPLE = re.compile(r"^(?P<indent>[ \t]*)Example:[ \t]*$", re.M)
_SECTION = re.compile(r"^(?P<indent>[ \t]*)(Args|Arguments|Parameters|Attributes|Other Parameters):[ \t]*$")
_EXAMPLE_TITLED = re.compile(r"^(?P<indent>[ \t]*)Examples? \((?P<what>.*)\):[ \t]*$", re.M)
_ROLE = re.compile(r":(?:func|class|mod|meth|attr|data|exc|obj):`(?P<tilde>~?)(?P<target>[^`]+)`")
_GROUP = re.compile(r"^(?P<indent>[ \t]+)(?P<names>\*{0,2}\w+(?:, \*{0,2}\w+)+):(?P<rest>.*)$")


def _split_groups(text: str) -> str:
    out: list[str] = []
    section_indent: int | None = None
    for line in text.splitlines():
        head = _SECTION.match(line)
        if head:
            section_indent = len(head.group("indent"))
            out.append(line)
            continue
        stripped = line.strip()
        if section_indent is not None and stripped and len(line) - len(line.lstrip()) <= section_indent:
            section_indent = None  # dedent: the section ended
        group = _GROUP.match(line) if section_indent is not None else None
        if group:
            for name in group.group("names").split(", "):
                out.append(f"{group.group('indent')}{name}:{group.group('rest')}")
            continue
        out.append(line)
    return "\n".join(out)


def _roles(text: str, module: str) -> str:
    def sub(m: re.Match[str]) -> str:
        target = m.group("target").strip()
        shown = target.rsplit(".", 1)[-1] if m.group("tilde") else target.lstrip(".")
        if target.startswith("ufmtheory"):
            ident = target
        elif target.startswith("."):
            ident = module.rsplit(".", 1)[0] + target  # relative to the module's package
        else:
            ident = f"{module}.{target}"
        return f'<autoref identifier="{ident}" optional><code>{shown}</code></autoref>'

    return _ROLE.sub(sub, text)


class DocstringSpellings(griffe.Extension):
    """Rewrite ``Example:`` and grouped parameter entries before griffe parses a docstring."""

    def on_object(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is None:
            return
        value = _EXAMPLE.sub(r"\g<indent>Examples:", obj.docstring.value)
        value = _EXAMPLE_TITLED.sub(r"\g<indent>Examples:\n\g<indent>    \g<what>:", value)
        value = _roles(value, obj.module.path if obj.is_module else obj.parent.module.path)  # type: ignore[union-attr]
        obj.docstring.value = _split_groups(value)
