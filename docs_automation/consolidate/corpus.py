"""Parse a Markdown page into sections, units and links, with no I/O.

A *unit* is the smallest piece of content the consolidator must never lose: a paragraph, a
list item's text, a table row, a code block, an HTML block or a front-matter block. Each unit
has a `key`, its text normalised so that the same fact written with other emphasis, spacing,
case or link targets compares equal; the consolidator proves that content was kept by
comparing keys of the source tree against keys of the output tree, parsed by this same module.

markdown-it-py gives the block structure (with source line ranges). Inline markup is reduced
with regular expressions instead of markdown-it's inline parser: the same expressions find the
links that the apply step rewrites, so parsing and rewriting can never disagree, and skipping
the inline pass makes parsing about a third faster (measured on the 944-file bee-hive tree).
"""

from __future__ import annotations

import bisect
import posixpath
import re
import textwrap
from dataclasses import dataclass
from typing import Any, NamedTuple
from urllib.parse import unquote

from markdown_it import MarkdownIt
from markdown_it.token import Token

__all__ = [
    "LINK_RE",
    "REFERENCE_RE",
    "Link",
    "Page",
    "Section",
    "Unit",
    "code_key",
    "fence",
    "link_path",
    "normalize",
    "parse_page",
    "unit_sources",
]

LINK_RE = re.compile(
    r"(!?\[(?:[^\[\]\n]|\[[^\[\]\n]*\])*\])"
    r"\(\s*(<[^<>\n]*>|[^()\s]*(?:\([^()\s]*\)[^()\s]*)*)"
    r"(\s+(?:\"[^\"\n]*\"|'[^'\n]*'|\([^()\n]*\)))?\s*\)"
)
"""An inline link or image: group 1 is `[text]` (with a leading `!` for images), group 2 the
destination (optionally in `<...>`), group 3 an optional title. One level of nested brackets in
the text is allowed, which covers badges (`[![alt](img)](href)`) and the like."""
_REFERENCE_LABEL_RE = re.compile(r"\]\[[^\]\n]*\]")
REFERENCE_RE = re.compile(r"^( {0,3}\[[^\]\n]+\]:[ \t]*)(<[^<>\n]*>|\S+)")
"""A link reference definition on one line: group 1 is `[label]: `, group 2 the destination."""
_IMAGE_RE = re.compile(r"!\[((?:[^\[\]\n]|\[[^\[\]\n]*\])*)\]\([^()\n]*(?:\([^()\n]*\)[^()\n]*)*\)")
_LINK_TEXT_RE = re.compile(
    r"\[((?:[^\[\]\n]|\[[^\[\]\n]*\])*)\]\([^()\n]*(?:\([^()\n]*\)[^()\n]*)*\)"
)
_TAG_RE = re.compile(r"</?[A-Za-z][^<>\n]*>")
_NON_WORD_RE = re.compile(r"[\W_]+", re.UNICODE)
_SCHEME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")
_FRONT_MATTER_END = re.compile(r"^(---|\.\.\.)\s*$")

_MD = MarkdownIt("commonmark").enable("table").disable("inline")


class Section(NamedTuple):
    """A heading and the units under it; the text before the first heading has level 0."""

    heading: str
    level: int
    line: int


class Unit(NamedTuple):
    """One piece of content that must survive consolidation.

    A named tuple rather than a dataclass: pages cross process boundaries when they are
    parsed in parallel, and tuples pickle in half the time.

    Attributes:
        kind: `paragraph`, `item`, `row`, `code`, `html`, `front_matter` or `reference`
            (a link reference definition).
        key: the normalised text that identifies the unit across pages.
        raw: for code, HTML and front matter, Markdown that re-parses to the same key (code
            re-fenced); empty for prose, whose Markdown `unit_sources` cuts from the page.
        section: index of the enclosing section in `Page.sections`.
        line: 1-based first line of the unit in its page; `end`: 1-based last line.
        substantive: whether losing the unit would lose a fact (see `parse_page`).
        header: for a table row, the 1-based line of its table's header row, else 0.
    """

    kind: str
    key: str
    raw: str
    section: int
    line: int
    substantive: bool
    end: int = 0
    header: int = 0


class Link(NamedTuple):
    """A relative link of a page, as written, with the SRC path it resolves to."""

    href: str
    line: int
    target: str


@dataclass(frozen=True, slots=True)
class Page:
    """A parsed Markdown page. `path` is POSIX and relative to the tree root."""

    path: str
    text: str
    title: str
    sections: tuple[Section, ...]
    units: tuple[Unit, ...]
    links: tuple[Link, ...]
    code_lines: frozenset[int]
    closer: str = ""

    def substantive_keys(self) -> set[str]:
        """Return the keys of the units that must be kept."""
        return {unit.key for unit in self.units if unit.substantive}


def normalize(inline: str) -> str:
    """Reduce inline Markdown to lower-case words: link targets, markup and punctuation go.

    Link destinations are dropped on purpose: the apply step rewrites them, and a rewritten
    link must still count as the same fact.
    """
    text = inline
    if "][" in text:  # reference labels go like destinations (a carried page may rename them)
        text = _REFERENCE_LABEL_RE.sub("]", text)
    if "](" in text:  # most prose has no link; skipping the two scans saves a tenth of a parse
        text = _LINK_TEXT_RE.sub(r" \1 ", _IMAGE_RE.sub(r" \1 ", text))
    if "<" in text:
        text = _TAG_RE.sub(" ", text)
    return " ".join(_NON_WORD_RE.sub(" ", text.lower()).split())


def code_key(content: str) -> str:
    """Return the key of a code block: its text with whitespace runs collapsed."""
    return "code: " + " ".join(content.split())


def fence(content: str, info: str = "") -> str:
    """Wrap code in a backtick fence longer than any backtick run inside it."""
    longest = max((len(run) for run in re.findall(r"`+", content)), default=0)
    ticks = "`" * max(3, longest + 1)
    body = content if content.endswith("\n") or not content else content + "\n"
    return f"{ticks}{info}\n{body}{ticks}"


def link_path(page: str, href: str) -> str | None:
    """Resolve a relative link of `page` to a root-relative path, or None if not relative.

    Absolute URLs, `mailto:` and the like, site-absolute paths (`/x`) and same-page anchors
    (`#x`) are not tree links. The result may point outside the tree (it then starts `..`).
    """
    href = href.strip()
    if href.startswith("<") and href.endswith(">"):
        href = href[1:-1]
    if not href or href.startswith(("#", "/")) or _SCHEME_RE.match(href):
        return None
    path = unquote(href.split("#", 1)[0].split("?", 1)[0])
    if not path:
        return None
    return posixpath.normpath(posixpath.join(posixpath.dirname(page), path))


def _front_matter(lines: list[str]) -> int:
    """Return the number of lines of a YAML front-matter block at the top (0 if none)."""
    if not lines or lines[0].rstrip() != "---":
        return 0
    for index in range(1, len(lines)):
        if _FRONT_MATTER_END.match(lines[index]):
            return index + 1
    return 0


class _Builder:
    """Collects units while walking markdown-it's block tokens of one page."""

    def __init__(self, path: str, lines: list[str], offset: int, min_words: int) -> None:
        self.path = path
        self.lines = lines
        self.offset = offset
        self.min_words = min_words
        self.sections: list[Section] = [Section("", 0, 1)]
        self.units: list[Unit] = []

    def add(self, kind: str, key: str, raw: str, start: int, end: int, header: int = -1) -> None:
        # markdown-it maps are 0-based, end-exclusive, relative to the text after front matter.
        prefixed = kind in ("code", "front_matter", "reference")  # key starts "code:" etc.
        words = len(key.split()) - (1 if prefixed else 0)
        substantive = words >= (1 if prefixed else self.min_words)
        section = len(self.sections) - 1
        first, last = start + self.offset + 1, end + self.offset
        top = header + self.offset + 1 if header >= 0 else 0
        self.units.append(Unit(kind, key, raw, section, first, substantive, last, top))


def parse_page(path: str, text: str, min_words: int = 2) -> Page:
    """Parse one Markdown page.

    Args:
        path: the page's POSIX path relative to the tree root (used to resolve links).
        text: the page's Markdown source.
        min_words: prose units with fewer words than this (`✅ Done`) are not substantive;
            code, HTML and front matter are substantive whenever they have any content.

    Returns:
        The page with its sections, units (in document order) and relative links.
    """
    lines = text.split("\n")
    offset = _front_matter(lines)
    builder = _Builder(path, lines, offset, min_words)
    if offset:
        content = "\n".join(lines[1 : offset - 1]) + "\n"
        builder.add("front_matter", code_key(content), fence(content, "yaml"), -offset, 0)
    env: dict[str, Any] = {}
    tokens = _MD.parse("\n".join(lines[offset:]), env)
    code_lines: set[int] = set(range(1, offset + 1))
    containers: list[str] = []
    header = -1
    for index, token in enumerate(tokens):
        kind = token.type
        if kind.endswith("_open") and kind not in ("paragraph_open", "heading_open", "tr_open"):
            containers.append(kind)
            continue
        if kind.endswith("_close") and kind not in ("paragraph_close", "heading_close"):
            containers.pop()
            continue
        start, end = token.map if token.map else (0, 0)
        if kind == "heading_open":
            title = tokens[index + 1].content.strip()
            builder.sections.append(Section(title, int(token.tag[1:]), start + offset + 1))
        elif kind == "paragraph_open":
            inline = tokens[index + 1].content
            in_item = bool(containers) and containers[-1] == "list_item_open"
            builder.add("item" if in_item else "paragraph", normalize(inline), "", start, end)
        elif kind in ("fence", "code_block"):
            code_lines.update(range(start + offset + 1, end + offset + 1))
            info = token.info.strip() if kind == "fence" else ""
            builder.add("code", code_key(token.content), fence(token.content, info), start, end)
        elif kind == "html_block":
            code_lines.update(range(start + offset + 1, end + offset + 1))
            raw = token.content.rstrip("\n")
            builder.add("html", normalize(token.content), raw + _html_closer(raw), start, end)
        elif kind == "tr_open":
            containers.append(kind)
            if containers[-2] == "thead_open":
                header = start
            cells = lines[offset + start].strip().strip("|").split("|")
            builder.add("row", normalize(" ".join(cells)), "", start, end, header)
    _add_references(builder, env.get("references", {}))
    return Page(
        path=path,
        text=text,
        closer=_closer(tokens, lines[offset:]),
        title=_title(builder.sections, path),
        sections=tuple(builder.sections),
        units=tuple(builder.units),
        links=_links(path, lines, code_lines),
        code_lines=frozenset(code_lines),
    )


_FENCE_END_RE = re.compile(r"^ {0,3}(`{3,}|~{3,})\s*$")
_HTML_ENDS = (
    ("<!--", "-->"),
    ("<?", "?>"),
    ("<![CDATA[", "]]>"),
    ("<pre", "</pre>"),
    ("<script", "</script>"),
    ("<style", "</style>"),
    ("<textarea", "</textarea>"),
)


def _html_closer(raw: str) -> str:
    """The line that ends an HTML block left open (`<!--` with no `-->`), or ""."""
    start = raw.lstrip().lower()
    for opener, end in _HTML_ENDS:
        if start.startswith(opener) and end not in start:
            return "\n" + end
    return ""


def _closer(tokens: list[Token], lines: list[str]) -> str:
    """What to append so that text added after the page is not swallowed by a block the
    page leaves open at its end: an unclosed code fence runs to the end of the document."""
    last = tokens[-1] if tokens else None
    if last is None or last.map is None or last.map[1] < len(lines) - 1:
        return ""
    if last.type == "fence":
        tail = [line for line in lines[last.map[0] + 1 : last.map[1]] if line.strip()]
        closing = tail[-1] if tail else ""
        match = _FENCE_END_RE.match(closing)
        if not (
            match
            and match.group(1)[0] == last.markup[0]
            and len(match.group(1)) >= len(last.markup)
        ):
            return "\n" + last.markup
    if last.type == "html_block":
        return _html_closer(last.content)
    return ""


def _add_references(builder: _Builder, references: dict[str, dict[str, Any]]) -> None:
    """Add link reference definitions (`[label]: url`) as units, in document order.

    markdown-it consumes them without a token, but a definition is content: without it a
    `[text][label]` link carried to another page would lose its destination. The key is the
    destination (the label is a page-local name, see `linkrefs`). A definition of a URL is
    substantive; one of a tree path is a link, which the apply step rewrites like any other
    and checks with the links (no link that worked may break), so its key may change.
    """
    if not references:
        return
    starts = [section.line for section in builder.sections]
    for ref in references.values():
        start, end = ref["map"]
        href = " ".join(ref["href"].split())
        builder.add("reference", "reference: " + href, "", start, end)
        unit = builder.units[-1]
        section = max(bisect.bisect_right(starts, unit.line) - 1, 0)
        relative = link_path(builder.path, href) is not None
        builder.units[-1] = unit._replace(section=section, substantive=not relative)
    builder.units.sort(key=lambda unit: unit.line)


def unit_sources(page: Page) -> list[str]:
    """The Markdown of each unit of `page`, in order, each re-parsing to a unit with its key.

    Prose is cut from the page and dedented (a list item keeps its marker); a table row
    comes with its table's header and delimiter rows, so that it is still a table row.
    """
    lines = page.text.split("\n")

    def cut(first: int, last: int) -> str:
        if first == last:
            return lines[first - 1].lstrip()  # what dedent does to one line, much faster
        return textwrap.dedent("\n".join(lines[first - 1 : last]))

    sources = []
    for unit in page.units:
        if unit.raw:
            sources.append(unit.raw)
        elif unit.kind == "row":
            head = [cut(unit.header, unit.header), cut(unit.header + 1, unit.header + 1)]
            sources.append(
                "\n".join(head if unit.line == unit.header else [*head, cut(unit.line, unit.line)])
            )
        else:
            sources.append(cut(unit.line, unit.end))
    return sources


def _title(sections: list[Section], path: str) -> str:
    for section in sections:
        if section.level == 1 and section.heading:
            return section.heading
    for section in sections:
        if section.level and section.heading:
            return section.heading
    stem = posixpath.splitext(posixpath.basename(path))[0]
    return stem.replace("_", " ").replace("-", " ")


def _links(path: str, lines: list[str], code_lines: set[int]) -> tuple[Link, ...]:
    found: list[Link] = []
    for number, line in enumerate(lines, start=1):
        if number in code_lines or "]" not in line:
            continue
        hrefs = [match.group(2) for match in LINK_RE.finditer(line)] if "](" in line else []
        definition = REFERENCE_RE.match(line)
        if definition:
            hrefs.append(definition.group(2))
        for href in hrefs:
            target = link_path(path, href)
            if target is not None:
                found.append(Link(href, number, target))
    return tuple(found)
