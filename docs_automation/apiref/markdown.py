"""Small Markdown builders shared by the generated reference pages.

Every generated page starts with the same banner, so readers (and the staleness report)
know it is generated and which command regenerates it. Fences that the docs example harness
must not run are marked illustrative on the line before.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from typing import Any

__all__ = ["ILLUSTRATIVE", "banner", "cell", "code", "fence", "json_fence", "table"]

ILLUSTRATIVE = "<!-- illustrative: generated reference -->"
"""The marker the docs example harness reads as "show this block, do not run it"."""

_CODE_SPAN = re.compile(r"(``.+?``|`[^`]*`)")


def banner(command: str, source: str) -> str:
    """The comment every generated page opens with, naming its source and its command."""
    return (
        f"<!-- Generated from {source} by `python -m docs_automation {command}`. "
        "Do not edit by hand: edit the source and regenerate. -->\n"
    )


def code(text: object) -> str:
    """`text` as inline code (pipes inside code spans need no escape in a table)."""
    raw = str(text)
    tick = "``" if "`" in raw else "`"
    pad = " " if tick == "``" else ""
    return f"{tick}{pad}{raw}{pad}{tick}"


def cell(text: object) -> str:
    """`text` flattened to one table-cell line, with pipes outside code spans escaped."""
    parts = _CODE_SPAN.split(" ".join(str(text).split()))
    # split() with a group keeps the code spans at odd indexes; only prose needs escaping.
    return "".join(p if i % 2 else p.replace("|", "\\|") for i, p in enumerate(parts))


def table(header: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    """A pipe table; cells are flattened to one line and pipes are escaped."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def fence(lang: str, body: str, *, illustrative: bool = True) -> str:
    """A fenced block; illustrative ones carry the marker that keeps the harness off them."""
    marker = ILLUSTRATIVE + "\n" if illustrative else ""
    return f"{marker}```{lang}\n{body.rstrip()}\n```\n"


def json_fence(obj: Any) -> str:
    """A `json` block the docs harness validates against the schema (so it is not marked)."""
    return fence("json", json.dumps(obj, indent=2, ensure_ascii=False), illustrative=False)
