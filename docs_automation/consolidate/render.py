"""The consolidated tree rendered from a plan: kept pages, merged pages, paths to text.

`render` is pure: parsed pages and the plan in, the output tree (path to text) out. Links
are rewritten by `links.LinkRewriter`; `verify` checks the result.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from .corpus import Page, unit_sources
from .links import LinkRewriter, carry_references, defined_labels, relabel
from .plan import Merge, Plan

__all__ = ["render"]

_HEADING_RE = re.compile(r"^#{1,6}\s+")
_ITEM_RE = re.compile(r"^(?:([-*+])|[0-9]{1,9}([.)]))(?:[ \t]|$)")


def _marker(unit_kind: str, raw: str) -> str:
    """The list marker kind of an emitted list item (`-`, `*`, `+`, `.` or `)`), else ""."""
    match = _ITEM_RE.match(raw) if unit_kind == "item" else None
    return (match.group(1) or match.group(2)) if match else ""


def _merged_block(
    merge: Merge,
    index: int,
    pages: Mapping[str, Page],
    seen: set[str],
    labels: dict[str, str],
    links: LinkRewriter,
) -> str:
    """The part of a target page that carries one source's units it did not have yet."""
    source = merge.sources[index]
    page = pages[source.path]
    sources = unit_sources(page)
    renames, skip = carry_references(page.units, sources, labels)
    chunks: list[list[str]] = []
    section = -1
    previous = ""
    for number, (unit, source_text) in enumerate(zip(page.units, sources, strict=True)):
        if unit.kind == "reference":
            if number in skip:  # the target defines the same label for the same URL
                continue
        elif not unit.key or unit.key in seen:
            continue
        seen.add(unit.key)
        if unit.section != section:
            section, previous = unit.section, ""
            heading = page.sections[section]
            # The page title is already the block's heading; other headings keep the outline.
            if heading.level and heading.heading and heading.heading != page.title:
                level = "#" * min(6, max(3, heading.level + 1))
                text = relabel(heading.heading, renames) if renames else heading.heading
                chunks.append([f"{level} {links.text(text, page.path, merge.target)}"])
        raw = source_text
        if unit.kind not in ("code", "html"):
            raw = links.text(relabel(raw, renames) if renames else raw, page.path, merge.target)
        lines = raw.split("\n")
        last = chunks[-1] if chunks else []
        if unit.kind == "row" and len(lines) == 3 and last[:2] == lines[:2]:
            last.append(lines[2])  # the next row of the same table
            continue
        marker = _marker(unit.kind, raw)
        if marker and marker == previous:
            # The next item of the same kind of list stays in one tight list; an item of
            # another kind after a blank line, or "1986." would continue the paragraph.
            last.extend(lines)
            continue
        previous = marker
        chunks.append(lines)
    if not chunks:
        return ""
    title = _HEADING_RE.sub("", page.title)
    header = [
        "---",
        f"## {links.text(title, page.path, merge.target)}",
        f"> Merged from `{source.path}` ({source.kind}, topic '{merge.topic}', similarity "
        f"{source.similarity:.2f}). Units already on this page are not repeated.",
    ]
    return "\n\n".join([*header, *("\n".join(chunk) for chunk in chunks)])


def render(
    pages: Mapping[str, Page], plan: Plan, src_files: set[str], copied: set[str]
) -> dict[str, str]:
    """Render every Markdown page of the consolidated tree (path to text).

    Kept pages keep their path and text, with links to moved pages rewritten. A merge target
    gets, after its own text, one block per source with the units it did not have, under a
    provenance line naming the source.
    """
    links = LinkRewriter(plan, src_files, set(plan.kept) | copied)
    merges = {merge.target: merge for merge in plan.merges}
    out: dict[str, str] = {}
    for path in plan.kept:
        page = pages[path]
        text = links.page(page)
        merge = merges.get(path)
        if merge:
            seen = {unit.key for unit in page.units}
            labels = defined_labels(page.units, unit_sources(page))
            blocks = [
                _merged_block(merge, i, pages, seen, labels, links)
                for i in range(len(merge.sources))
            ]
            body = text.rstrip("\n") + page.closer
            text = "\n\n".join([body, *(b for b in blocks if b)]) + "\n"
        out[path] = text
    return out
