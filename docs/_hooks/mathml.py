"""MkDocs hook: render the site's TeX as MathML at build time, so formulas display offline.

``pymdownx.arithmatex`` (generic mode) leaves every formula as escaped TeX in
``<span class="arithmatex">\\(...\\)</span>`` (inline) or ``<div class="arithmatex">\\[...\\]</div>``
(display). Loading MathJax or KaTeX from a CDN would break the offline site, so this hook converts each
formula to MathML with ``latex2mathml``; browsers render MathML natively. The TeX source is kept in a
``<annotation encoding="application/x-tex">`` so it stays copyable. A formula latex2mathml cannot parse is
a build warning (``mkdocs build --strict`` fails), never a silently raw formula.
"""

from __future__ import annotations

import html
import logging
import re

from latex2mathml.converter import convert

log = logging.getLogger("mkdocs.hooks.math")

_BLOCK = re.compile(r'<div class="arithmatex">\s*\\\[(?P<tex>.*?)\\\]\s*</div>', re.S)
_INLINE = re.compile(r'<span class="arithmatex">\\\((?P<tex>.*?)\\\)</span>', re.S)

# Commands latex2mathml does not know, rewritten to ones it does (kept small and explicit). ``\\boxed`` would
# become ``\\fbox`` whose argument latex2mathml treats as text, so the box is dropped and the maths kept.
_REWRITES = (
    (re.compile(r"\\boxed\{"), "{"),
    (re.compile(r"\\lesssim"), r"\\precsim"),
    (re.compile(r"\\arg(?![A-Za-z])"), r"\\operatorname{arg}"),
)

# Browsers implement MathML Core, which ignores ``mathvariant`` other than "normal": ``\\mathbb R`` and
# ``\\mathbf 1`` would show as a plain R and 1. Map them to the Unicode mathematical alphanumerics instead.
_HOLES = {  # letters that live in the Letterlike Symbols block, not in the alphanumerics block
    "double-struck": {
        "C": 0x2102,
        "H": 0x210D,
        "N": 0x2115,
        "P": 0x2119,
        "Q": 0x211A,
        "R": 0x211D,
        "Z": 0x2124,
    },
    "script": {
        "B": 0x212C,
        "E": 0x2130,
        "F": 0x2131,
        "H": 0x210B,
        "I": 0x2110,
        "L": 0x2112,
        "M": 0x2133,
        "R": 0x211B,
        "e": 0x212F,
        "g": 0x210A,
        "o": 0x2134,
    },
    "fraktur": {"C": 0x212D, "H": 0x210C, "I": 0x2111, "R": 0x211C, "Z": 0x2128},
}
_BASES = {  # (capital A, small a, digit 0) code points per variant; None: no digits in that style
    "bold": (0x1D400, 0x1D41A, 0x1D7CE),
    "double-struck": (0x1D538, 0x1D552, 0x1D7D8),
    "script": (0x1D49C, 0x1D4B6, None),
    "fraktur": (0x1D504, 0x1D51E, None),
    "sans-serif": (0x1D5A0, 0x1D5BA, 0x1D7E2),
    "monospace": (0x1D670, 0x1D68A, 0x1D7F6),
}
_VARIANT = re.compile(r'<(?P<tag>mi|mn|mtext) mathvariant="(?P<var>[a-z-]+)">(?P<text>[^<]*)</(?P=tag)>')
_ACCENT = re.compile(
    r'<mover>(?=(?:(?!</?mover).)*<mo(?: stretchy="\w+")?>'
    r"&#x0(?:02D9|00A8|005E|007E|00AF|2192|02C7);</mo></mover>)",
    re.S,
)


# Delimiters after \\big, \\Big, ... come out as the raw command inside <mo>; map them to their characters.
_DELIMS = {
    "\\|": "\u2016",
    "\\Vert": "\u2016",
    "\\lVert": "\u2016",
    "\\rVert": "\u2016",
    "\\vert": "|",
    "\\lvert": "|",
    "\\rvert": "|",
    "\\langle": "\u27e8",
    "\\rangle": "\u27e9",
    "\\{": "{",
    "\\}": "}",
}
_RAW_MO = re.compile(r"(<mo[^>]*>)(\\[A-Za-z]+|\\[|{}])(</mo>)")
_LEFTOVER = re.compile(r">[^<]*\\[A-Za-z|{}][^<]*<")


def _styled(ch: str, var: str) -> str:
    if ch in _HOLES.get(var, {}):
        return chr(_HOLES[var][ch])
    cap, small, digit = _BASES[var]
    if "A" <= ch <= "Z":
        return chr(cap + ord(ch) - ord("A"))
    if "a" <= ch <= "z":
        return chr(small + ord(ch) - ord("a"))
    if "0" <= ch <= "9" and digit is not None:
        return chr(digit + ord(ch) - ord("0"))
    return ch


def _fix_variants(mathml: str) -> str:
    def sub(m: re.Match[str]) -> str:
        var, tag = m.group("var"), m.group("tag")
        if var not in _BASES:
            return m.group(0)  # "normal" (upright) is understood by browsers; others stay as written
        text = "".join(_styled(c, var) for c in html.unescape(m.group("text")))
        # A single styled letter must not be re-italicised by the browser's <mi> default.
        attr = ' mathvariant="normal"' if tag == "mi" and len(text) > 1 else ""
        return f"<{tag}{attr}>{html.escape(text, quote=False)}</{tag}>"

    def delim(m: re.Match[str]) -> str:
        return m.group(1) + _DELIMS.get(m.group(2), m.group(2)) + m.group(3)

    mathml = _RAW_MO.sub(delim, _VARIANT.sub(sub, mathml))
    # Over-accents (dot, ddot, hat, tilde, bar, vec, check) sit tight on their base only with accent="true".
    return _ACCENT.sub('<mover accent="true">', mathml)


def _to_mathml(tex: str, display: str, where: str) -> str | None:
    src = html.unescape(tex).strip()
    fixed = src
    for pattern, repl in _REWRITES:
        fixed = pattern.sub(repl, fixed)
    try:
        mathml = convert(fixed, display=display)
    except Exception as exc:  # latex2mathml raises bare exceptions of several types on bad input
        log.warning(
            "math: cannot convert %r on %s (%s: %s); left as TeX", src, where, type(exc).__name__, exc
        )
        return None
    # Keep the TeX as an annotation (copy/paste, screen readers); the <semantics> wrapper is standard MathML.
    mathml = _fix_variants(mathml)
    if _LEFTOVER.search(mathml):  # a command latex2mathml passed through as text: it would show as raw TeX
        log.warning("math: %r on %s keeps raw TeX after conversion; rewrite it", src, where)
    inner = mathml[mathml.index(">") + 1 : mathml.rindex("</math>")]
    head = mathml[: mathml.index(">") + 1]
    note = f'<annotation encoding="application/x-tex">{html.escape(src, quote=False)}</annotation>'
    return f"{head}<semantics><mrow>{inner}</mrow>{note}</semantics></math>"


def on_page_content(html_text: str, page, config, files):  # noqa: ANN001 (MkDocs hook signature)
    where = page.file.src_uri

    def block(m: re.Match[str]) -> str:
        out = _to_mathml(m.group("tex"), "block", where)
        return m.group(0) if out is None else f'<div class="arithmatex math-block">{out}</div>'

    def inline(m: re.Match[str]) -> str:
        out = _to_mathml(m.group("tex"), "inline", where)
        return m.group(0) if out is None else f'<span class="arithmatex">{out}</span>'

    return _INLINE.sub(inline, _BLOCK.sub(block, html_text))
