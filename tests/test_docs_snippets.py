"""Every ```python block of the docs pages runs as written (the docs are part of the API's promise).

Each block runs in a fresh namespace, in process. Blocks that train the transformer are marked slow. A page
joins by adding its name to PAGES once its blocks run on their own (no output lines, no undefined names).
"""

import re
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parent.parent / "docs"
PAGES = ("index.md", "standard_ufm.md", "modified_ufm.md", "ntp_geometry.md", "metrics.md", "transformer.md")
SLOW_PAGES = {"transformer.md"}  # trains the baseline GPT for 3000 steps


def _blocks() -> list:
    params = []
    for page in (DOCS / name for name in PAGES):
        for i, code in enumerate(re.findall(r"^```python\n(.*?)^```", page.read_text(), re.S | re.M)):
            marks = [pytest.mark.slow] if page.name in SLOW_PAGES else []
            params.append(pytest.param(page.name, code, id=f"{page.stem}-{i}", marks=marks))
    return params


@pytest.mark.parametrize(("page", "code"), _blocks())
def test_docs_snippet_runs(page: str, code: str) -> None:
    exec(compile(code, f"docs/{page}", "exec"), {"__name__": "__docs__"})
