"""The consolidated tree rendered from a plan: kept pages, merged pages, paths to text.

`render` is pure: parsed pages and the plan in, the output tree (path to text) out. It works
in two passes. The first lays out every merge: which blocks of each merged page a target
does not have yet (a block moves whole, with every container it is: an admonition, a
`<details>` element, a list item with its nested blocks, a footnote definition), which of
its headings come along (those with new content under them, and every heading some link
points at), and the id each of those headings gets on the target (`toc` gives a repeated
slug a `_1` suffix). The second writes the pages, with `links.LinkRewriter` pointing every
link and `#anchor` where its target went. `verify` checks the result.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from .corpus import Block, Page, Unit, dedent, normalize, slugify, unique_anchor, unit_sources
from .links import LinkRewriter, carry_references, defined_labels, relabel
from .plan import Merge, MergeSource, Plan, identity, same_section

__all__ = ["linked_anchors", "render"]

_HEADING_RE = re.compile(r"^#{1,6}\s+")
_ATX_RE = re.compile(r"^ {0,3}#{1,6}(?:[ \t]+|$)(.*?)(?:[ \t]+#+)?[ \t]*$")
_ATTR_RE = re.compile(r"\s*\{[^{}\n]*\}\s*$")
_ITEM_RE = re.compile(r"^(?:([-*+])|[0-9]{1,9}([.)]))(?:[ \t]|$)")


def linked_anchors(pages: Mapping[str, Page]) -> set[tuple[str, str]]:
    """Every `(page, anchor)` that a link of the tree points at (the page's own included)."""
    return {
        (link.target, link.fragment)
        for page in pages.values()
        for link in page.links
        if link.fragment
    }


@dataclass
class _Part:
    """What one merged page brings to its target: chunks of Markdown, in order."""

    source: MergeSource
    page: Page
    renames: dict[str, str]
    chunks: list[tuple[str, int]] = field(default_factory=list)  # ("heading"|"block", index)
    headings: dict[int, str] = field(default_factory=dict)  # section -> id on the target
    title_anchor: str = ""  # the id of the part's `## title` on the target; "" if no part
    title_section: int = -1  # the section of the page's title heading, if it has one
    prose: set[int] = field(default_factory=set)  # blocks whose reference labels may change


def _layout(
    merge: Merge,
    pages: Mapping[str, Page],
    linked: set[tuple[str, str]],
    anchors: dict[tuple[str, str], tuple[str, str]],
    final: Callable[[str], str],
) -> list[_Part]:
    """Decide what each source of `merge` brings, and where its anchors land."""
    target = pages[merge.target]
    seen = {identity(unit, target.path, final) for unit in target.units}
    used = set(target.anchors)
    labels = defined_labels(target.units, unit_sources(target))
    parts = []
    for source in merge.sources:
        page = pages[source.path]
        renames, skip = carry_references(page.units, unit_sources(page), labels)
        part = _Part(source, page, renames)
        part.title_section = next(
            (n for n, s in enumerate(page.sections) if s.level and s.heading == page.title), -1
        )
        wanted = {
            n for n, s in enumerate(page.sections) if s.level and (page.path, s.anchor) in linked
        }
        # A link to a heading leads to that heading over the blocks it had: the target's
        # heading of the same text over one of them, when it has one; else this heading,
        # carried with every block of its section, even blocks the target already has
        # elsewhere (the reader who follows the link must find them under it).
        landed = {n: found for n in wanted if (found := same_section(page, n, target))}
        forced = {u.block for u in page.units if u.section in wanted and u.section not in landed}
        emitted = _new_blocks(part, skip, seen, forced, final)
        carried = wanted - set(landed)
        if emitted or carried:
            _place(part, emitted, carried - {part.title_section}, used)
            for section, new_id in part.headings.items():
                anchors[(page.path, page.sections[section].anchor)] = (merge.target, new_id)
        for section, anchor in landed.items():
            anchors[(page.path, page.sections[section].anchor)] = (merge.target, anchor)
        parts.append(part)
    return parts


def _new_blocks(
    part: _Part, skip: set[int], seen: set[str], forced: set[int], final: Callable[[str], str]
) -> dict[int, int]:
    """The blocks of `part`'s page that bring a unit not `seen` yet, or that are `forced`,
    each with its section.

    A block comes whole or not at all; `seen` gains every unit of the blocks that come.
    """
    page = part.page
    by_block: dict[int, list[tuple[int, Unit, str]]] = defaultdict(list)
    for number, unit in enumerate(page.units):
        by_block[unit.block].append((number, unit, identity(unit, page.path, final)))
    emitted: dict[int, int] = {}
    for index, members in sorted(by_block.items()):
        if index in forced or any(
            (unit.kind == "reference" and number not in skip)
            or (unit.kind != "reference" and unit.key and same not in seen)
            for number, unit, same in members
        ):
            emitted[index] = min(unit.section for _, unit, _ in members)
            seen.update(same for _, _, same in members)
            if any(unit.kind not in ("code", "html") for _, unit, _ in members):
                part.prose.add(index)
    return emitted


def _place(part: _Part, emitted: dict[int, int], wanted: set[int], used: set[str]) -> None:
    """Order `part`'s blocks and headings, and give each heading its id on the target
    (`used` holds the ids taken there so far, in document order, as `toc` assigns them)."""
    page = part.page
    lines = page.text.split("\n")
    title = part.title_section
    base = _anchor_base(page, lines, title) if title >= 0 else slugify(normalize(page.title))
    part.title_anchor = unique_anchor(base, used)
    if title >= 0:
        part.headings[title] = part.title_anchor
    order = sorted(
        [(page.blocks[index].first, "block", index, section) for index, section in emitted.items()]
        + [(page.sections[n].line, "heading", n, n) for n in wanted]
    )
    current = -1
    for _, kind, index, section in order:
        heading = page.sections[section]
        if section != current and heading.level and heading.heading and section != title:
            part.headings[section] = unique_anchor(_anchor_base(page, lines, section), used)
            part.chunks.append(("heading", section))
        current = section
        if kind == "block":
            part.chunks.append(("block", index))


def _anchor_base(page: Page, lines: list[str], section: int) -> str:
    """The id a heading asks for before `toc` dedups it: its explicit id, else its slug."""
    heading = page.sections[section]
    match = _ATX_RE.match(lines[heading.line - 1])
    explicit = _ATTR_RE.search(match.group(1)) if match else None
    found = re.search(r"#([\w:.-]+)", explicit.group(0)) if explicit else None
    return found.group(1) if found else slugify(normalize(heading.heading))


def _heading_text(page: Page, lines: list[str], section: int, new_id: str) -> str:
    """A merged heading's text, from the rewritten page, with an explicit id kept (renamed
    when it is taken on the target)."""
    heading = page.sections[section]
    match = _ATX_RE.match(lines[heading.line - 1])
    text = match.group(1) if match else heading.heading
    explicit = _ATTR_RE.search(text)
    if explicit and "#" in explicit.group(0):
        attrs = re.sub(r"#[\w:.-]+", "#" + new_id, explicit.group(0).strip())
        return f"{text[: explicit.start()].rstrip()} {attrs}"
    return text


def _block_text(lines: list[str], block: Block, renames: Mapping[str, str]) -> str:
    """The Markdown of one block, cut from the rewritten page and dedented."""
    if block.raw:
        return block.raw
    if block.header:
        rows = [lines[block.header - 1].strip(), lines[block.header].strip()]
        if block.first != block.header:
            rows.append(lines[block.first - 1].strip())
        text = "\n".join(rows)
    else:
        text = dedent(lines[block.first - 1 : block.last]).strip("\n")
    return relabel(text, renames) if renames else text


def _marker(raw: str) -> str:
    """The list marker kind of an emitted list item (`-`, `*`, `+`, `.` or `)`), else ""."""
    match = _ITEM_RE.match(raw)
    return (match.group(1) or match.group(2)) if match else ""


def _merged_block(part: _Part, merge: Merge, links: LinkRewriter) -> str:
    """The part of a target page that carries one source's blocks it did not have yet."""
    page = part.page
    if not part.title_anchor:
        return ""
    lines = links.rewrite(page, merge.target).split("\n")
    out: list[list[str]] = []
    previous = ""
    for kind, index in part.chunks:
        if kind == "heading":
            previous = ""
            level = "#" * min(6, max(3, page.sections[index].level + 1))
            text = _heading_text(page, lines, index, part.headings[index])
            out.append([f"{level} {relabel(text, part.renames) if part.renames else text}"])
            continue
        block = page.blocks[index]
        raw = _block_text(lines, block, part.renames if index in part.prose else {})
        chunk = raw.split("\n")
        last = out[-1] if out else []
        if block.header and len(chunk) == 3 and last[:2] == chunk[:2]:
            last.append(chunk[2])  # the next row of the same table
            continue
        marker = _marker(raw)
        # An item that had a blank line before it in its page keeps one: joined to the item
        # above, an item after a fenced block reads differently to Python-Markdown.
        tight = "\n\n" not in raw and block.first > 1 and bool(lines[block.first - 2].strip())
        if marker and marker == previous and tight:
            # The next item of the same kind of list stays in one tight list; an item of
            # another kind after a blank line, or "1986." would continue the paragraph.
            last.extend(chunk)
            continue
        previous = marker if tight else ""
        out.append(chunk)
    if part.title_section >= 0:
        title = _heading_text(page, lines, part.title_section, part.title_anchor)
    else:
        title = _HEADING_RE.sub("", page.title)
    source = part.source
    header = [
        "---",
        f"## {relabel(title, part.renames) if part.renames else title}",
        f"> Merged from `{source.path}` ({source.kind}, topic '{merge.topic}', similarity "
        f"{source.similarity:.2f}). Blocks already on this page are not repeated.",
    ]
    return "\n\n".join([*header, *("\n".join(chunk) for chunk in out)])


def render(
    pages: Mapping[str, Page], plan: Plan, src_files: set[str], copied: set[str]
) -> dict[str, str]:
    """Render every Markdown page of the consolidated tree (path to text).

    Kept pages keep their path and text, with links to moved pages rewritten. A merge target
    gets, after its own text, one part per source with the blocks it did not have, under a
    provenance line naming the source.
    """
    linked = linked_anchors(pages)
    anchors: dict[tuple[str, str], tuple[str, str]] = {}
    merges = {merge.target: merge for merge in plan.merges}
    layouts = {
        path: _layout(merges[path], pages, linked, anchors, plan.final)
        for path in plan.kept
        if path in merges
    }
    links = LinkRewriter(plan, src_files, set(plan.kept) | copied, anchors)
    out: dict[str, str] = {}
    for path in plan.kept:
        page = pages[path]
        text = links.rewrite(page, path)
        if path in layouts:
            blocks = [_merged_block(part, merges[path], links) for part in layouts[path]]
            body = text.rstrip("\n") + page.closer
            text = "\n\n".join([body, *(b for b in blocks if b)]) + "\n"
        out[path] = text
    return out
