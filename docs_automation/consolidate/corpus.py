"""Parse a Markdown page into sections, blocks, units, links and anchors, with no I/O.

A *unit* is the smallest piece of content the consolidator must never lose: a paragraph, a
list item's text, a table row, a code block, an HTML block, a front-matter block or a link
reference definition. Each unit has a `key` that identifies its fact across pages: prose is
reduced to the text markdown-it's inline parser sees (emphasis markers and link targets go;
symbols such as `✅`, `>=` and `<` stay, and so does letter case: `GET` is not `get`); code,
HTML and front matter are compared exactly (indentation is meaning), HTML with its
`href`/`src` values left out so that a rewritten link is the same fact.

A *block* is what moves as a whole when a page is merged into another: a top-level paragraph,
list item (with everything nested in it), blockquote, code block, HTML block, table row (with
its table's header), reference definition, or a container that Python-Markdown (the site
engine) reads as one: an admonition or content tab (`!!! note`, `??? tip`, `=== "Tab"` and its
indented body), a footnote definition with its indented continuation, and an HTML element
left open over several blocks (`<details>` ... `</details>`). CommonMark reads an indented
admonition body as code; the body is dedented before parsing, as Python-Markdown does, so its
links and units are seen for what they are.

Links come from the parser, never from line regexes: inline links and images from
markdown-it's inline tokens, whose destination spans are recorded by wrapping its `link`,
`image` and `html_inline` rules (its tokens carry no column offsets); reference definitions
from its `references`; HTML `href`/`src` from the standard library's `html.parser`, in HTML
blocks and inline HTML alike. Each link carries the line and column of its destination in the
page, so the apply step rewrites exactly those characters.

Anchors are the ids a site gives a page: heading slugs (Python-Markdown's `toc` slugify,
with its `_1` suffix for a repeated slug), attr_list ids (`## Setup {#install}`, and
`{: #id }` as the last line of a paragraph) and HTML `id`/`name` attributes.
"""

from __future__ import annotations

import bisect
import html
import posixpath
import re
import unicodedata
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from html.parser import HTMLParser, attrfind_tolerant, tagfind_tolerant  # type: ignore[attr-defined]
from typing import Any, NamedTuple
from urllib.parse import unquote

from markdown_it import MarkdownIt
from markdown_it.rules_inline import StateInline
from markdown_it.token import Token

__all__ = [
    "Block",
    "Link",
    "Page",
    "Section",
    "Unit",
    "code_key",
    "dedent",
    "fence",
    "link_path",
    "normalize",
    "parse_page",
    "slugify",
    "unique_anchor",
    "unit_sources",
]

_SCHEME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")
_FRONT_MATTER_END = re.compile(r"^(---|\.\.\.)\s*$")
# Python-Markdown containers whose body is indented by four: admonitions (`admonition`,
# `pymdownx.details`), content tabs (`pymdownx.tabbed`) and footnote definitions.
_CONTAINER_HEAD_RE = re.compile(r"^( *)(?:!!!|\?\?\?\+?|===\+?|\[\^[^\]\n]+\]:)(?:[ \t]|$)")
_ATTR_ID_RE = re.compile(r"\s*\{[^{}\n]*?#([\w:.-]+)[^{}\n]*\}\s*$")  # `## Title {#id .x}`
_BLOCK_ATTR_RE = re.compile(r"(?:^|\n)\{:?[^{}\n]*?#([\w:.-]+)[^{}\n]*\}\s*$")
_SLUG_DROP_RE = re.compile(r"[^\w\s-]")
_SLUG_JOIN_RE = re.compile(r"[-\s]+")
_UNIQUE_RE = re.compile(r"^(.*)_([0-9]+)$")
# Elements whose end tag is forbidden (HTML living standard, "void elements"): they never
# leave a block open.
_VOID = frozenset(
    {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source"}
    | {"track", "wbr", "param", "keygen"}
)
_LINK_ATTRS = frozenset({"href", "src"})
_MARKED_SECTION_RE = re.compile(r"<!\[(?!CDATA\[)")
# Characters that start an inline rule of markdown-it's CommonMark preset: `\\` escape,
# backticks, `*`/`_` emphasis, `[`/`![` links and images, `<` autolinks and HTML, `&` entities
# (`~` too, for the strikethrough rule when a preset enables it).
_MARKUP_RE = re.compile(r"[\\`*_\[\]!<&~]")
# Top-level tokens that are not a block of their own: a heading starts a section, a list
# is cut into its items, a table into its rows.
_NOT_BLOCKS = frozenset(
    {"heading_open", "table_open", "thead_open", "tbody_open", "bullet_list_open"}
    | {"ordered_list_open"}
)
_ID_ATTRS = frozenset({"id", "name"})


class Section(NamedTuple):
    """A heading and the units under it; the text before the first heading has level 0.

    `anchor` is the id a site gives the heading (see `slugify`), unique within the page.
    """

    heading: str
    level: int
    line: int
    anchor: str = ""


class Block(NamedTuple):
    """Lines that move together (1-based, inclusive); see the module docstring.

    `header` is, for a table row, the line of its table's header row, else 0. `raw` is the
    Markdown to emit instead of the lines (an indented code block re-fenced, front matter
    as a YAML block), or "".
    """

    first: int
    last: int
    header: int = 0
    raw: str = ""


class Unit(NamedTuple):
    """One piece of content that must survive consolidation.

    A named tuple rather than a dataclass: pages cross process boundaries when they are
    parsed in parallel, and tuples pickle in half the time.

    Attributes:
        kind: `paragraph`, `item`, `row`, `code`, `html`, `front_matter`, `reference` (a
            link reference definition) or `footnote` (a one-word footnote definition,
            which CommonMark reads as a reference definition).
        key: the text that identifies the unit across pages (see the module docstring).
        raw: for code, HTML and front matter, Markdown that re-parses to the same key (code
            re-fenced); empty for prose, whose Markdown `unit_sources` cuts from the page.
        section: index of the enclosing section in `Page.sections`.
        line: 1-based first line of the unit in its page; `end`: 1-based last line.
        substantive: whether the unit must be kept (it has content; see `parse_page`).
        header: for a table row, the 1-based line of its table's header row, else 0.
        block: index of the block that holds the unit in `Page.blocks`.
        targets: where each link and image of the unit leads, in order: `(root-relative
            path, fragment)` for a relative link (`(page, fragment)` for `#anchor`), or
            `("", url)` for any other. The key leaves them out (a rewritten link is the
            same text); whether two units are the same fact also asks where their links
            lead (`plan.identity`).
    """

    kind: str
    key: str
    raw: str
    section: int
    line: int
    substantive: bool
    end: int = 0
    header: int = 0
    block: int = 0
    targets: tuple[tuple[str, str], ...] = ()


class Link(NamedTuple):
    """A relative link of a page, with where its destination is written and what it reaches.

    Attributes:
        href: the destination as the parser decoded it (Markdown links percent-encoded).
        line: 1-based line of the destination in the page.
        target: the root-relative path it resolves to; the page itself for `#anchor`.
        column: 0-based column of the destination text in its line, or -1 when it could
            not be located (the apply step then refuses to rewrite it).
        length: characters of the destination text as written (`<...>` included).
        fragment: the anchor after `#`, percent-decoded, or "".
        html: whether the link is an HTML attribute (its new value is HTML-escaped).
    """

    href: str
    line: int
    target: str
    column: int = -1
    length: int = 0
    fragment: str = ""
    html: bool = False


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
    blocks: tuple[Block, ...] = ()
    anchors: frozenset[str] = frozenset()
    fences_differ: bool = False

    def substantive_keys(self) -> set[str]:
        """Return the keys of the units that must be kept."""
        return {unit.key for unit in self.units if unit.substantive}


def slugify(text: str) -> str:
    """The id Python-Markdown's `toc` extension gives a heading (its default `slugify`).

    Same steps as `markdown.extensions.toc.slugify` (unicode=False): NFKD, ASCII only,
    drop what is not a word character, space or hyphen, lower-case, join runs with `-`.
    """
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    return _SLUG_JOIN_RE.sub("-", _SLUG_DROP_RE.sub("", ascii_text).strip().lower())


def unique_anchor(anchor: str, used: set[str]) -> str:
    """`anchor`, or the `_1`, `_2`... variant not in `used`, as `toc` dedups ids; adds it."""
    while anchor in used or not anchor:
        match = _UNIQUE_RE.match(anchor)
        anchor = f"{match.group(1)}_{int(match.group(2)) + 1}" if match else f"{anchor}_1"
    used.add(anchor)
    return anchor


def _spanned(rule: Callable[[StateInline, bool], bool]) -> Callable[[StateInline, bool], bool]:
    """Wrap an inline rule so that the token it makes records where it is in `state.src`.

    markdown-it-py's inline tokens carry no offsets; the rule knows them. `meta["span"]`
    is the whole construct, `meta["dest"]` the destination text of an inline link or image.
    """

    def wrapped(state: StateInline, silent: bool) -> bool:
        start, count = state.pos, len(state.tokens)
        if not rule(state, silent):
            return False
        if silent:
            return True
        for token in state.tokens[count:]:
            if token.type in ("link_open", "image", "html_inline"):
                token.meta["span"] = (start, state.pos)
                if token.type != "html_inline":
                    token.meta["dest"] = _destination(state, start)
                break
        return True

    return wrapped


def _destination(state: StateInline, start: int) -> tuple[int, int] | None:
    """The span of an inline link's destination (as markdown-it's `link` rule finds it)."""
    src = state.src
    image = src.startswith("!", start)
    opener = start + 1 if image else start
    if src.startswith("[^", opener):
        return None  # a footnote reference, never a link to rewrite
    # As the `link` and `image` rules call it: nested brackets only in an image's alt text.
    label_end = state.md.helpers.parseLinkLabel(state, opener, not image)
    pos = label_end + 1
    if label_end < 0 or not src.startswith("(", pos):
        return (-1, -1)  # a reference link: its destination is in the definition
    pos += 1
    while pos < state.posMax and src[pos] in " \t\n":
        pos += 1
    result = state.md.helpers.parseLinkDestination(src, pos, state.posMax)
    return (pos, result.pos) if result.ok and result.pos > pos else None


def _markdown() -> MarkdownIt:
    # The core `inline` rule is off: `_Builder.inline` runs the inline parser itself, and
    # only on text that has inline markup (see `_MARKUP_RE`).
    md = MarkdownIt("commonmark").enable("table").disable("inline")
    for name in ("link", "image", "html_inline"):
        rule = next(r for r in md.inline.ruler.__rules__ if r.name == name)
        md.inline.ruler.at(name, _spanned(rule.fn))
    return md


_MD = _markdown()


def normalize(inline: str) -> str:
    """The key of a piece of inline Markdown: its text as a reader sees it, letter case kept.

    Markup (emphasis, code backticks, link and image syntax) and link destinations go;
    every other character, symbols included, stays. Whitespace runs become one space.
    """
    return _inline_key(_inline_tokens(inline, {}))


def _inline_tokens(content: str, env: dict[str, Any]) -> list[Token]:
    children: list[Token] = []
    _MD.inline.parse(content, _MD, env, children)
    return children


def _inline_key(children: Iterable[Token]) -> str:
    parts: list[str] = []
    for child in children:
        kind = child.type
        if kind in ("text", "code_inline", "text_special"):
            parts.append(child.content)
        elif kind == "image":
            parts.append(" " + _inline_key(child.children or []) + " ")
        elif kind == "html_inline":
            parts.append(" " + _blank_links(child.content) + " ")
        elif kind in ("softbreak", "hardbreak"):
            parts.append(" ")
    return " ".join("".join(parts).split())


def code_key(content: str) -> str:
    """Return the key of a code block: its text exactly (indentation is meaning)."""
    return "code: " + content.rstrip("\n")


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


def _fragment(href: str) -> str:
    return unquote(href.split("#", 1)[1]) if "#" in href else ""


class _Tags(HTMLParser):
    """Start and end tags of an HTML snippet, with where each link attribute value is."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.values: list[tuple[int, int, int, str, str]] = []  # line, column, length, name, value
        self.depth = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in _VOID:
            self.depth += 1
        line, column = self.getpos()
        raw = self.get_starttag_text() or ""
        # The parser's own attribute pattern, run where it runs it (`parse_starttag`), gives
        # each value's offset in the tag, which `handle_starttag` does not.
        found = tagfind_tolerant.match(raw, 1)
        pos = found.end() if found else len(raw)
        while pos < len(raw):
            match = attrfind_tolerant.match(raw, pos)
            if not match:
                break
            name, value = match.group(1).lower(), match.group(3)
            if value is not None and (name in _LINK_ATTRS or name in _ID_ATTRS):
                begin = match.start(3)
                if value[:1] in ("'", '"') and value[-1:] == value[:1] and len(value) > 1:
                    value, begin = value[1:-1], begin + 1
                where = _advance(raw, begin, line, column)
                self.values.append((*where, len(value), name, html.unescape(value)))
            pos = match.end()

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)
        if tag not in _VOID:
            self.depth -= 1

    def handle_endtag(self, tag: str) -> None:
        if tag not in _VOID:
            self.depth -= 1


def _advance(raw: str, offset: int, line: int, column: int) -> tuple[int, int]:
    """Line (1-based) and column of `raw[offset]`, `raw` starting at (`line`, `column`)."""
    breaks = raw.count("\n", 0, offset)
    if not breaks:
        return line, column + offset
    return line + breaks, offset - raw.rfind("\n", 0, offset) - 1


def _html_values(content: str) -> tuple[list[tuple[int, int, int, str, str]], int]:
    """Link and id attribute values of an HTML snippet, and how many elements it leaves open."""
    parser = _Tags()
    try:
        parser.feed(content)
        parser.close()
    except AssertionError:
        # `<![name]>` that is not CDATA makes the standard library's parser raise
        # AssertionError("unknown status keyword ...") (CPython issue 81928; MkDocs #3929
        # met it in generated API docs). Read it as text instead: same length, so every
        # position found stays right.
        parser = _Tags()
        parser.feed(_MARKED_SECTION_RE.sub("&![", content))
        parser.close()
    return parser.values, parser.depth


def _blank_links(content: str) -> str:
    """HTML with its `href`/`src` values emptied: a rewritten link is the same fact."""
    if "href" not in content.lower() and "src" not in content.lower():
        return " ".join(content.split())
    values, _ = _html_values(content)
    lines = content.split("\n")
    for line, column, length, name, _ in sorted(values, reverse=True):
        if name in _LINK_ATTRS:
            text = lines[line - 1]
            lines[line - 1] = text[:column] + text[column + length :]
    return " ".join("\n".join(lines).split())


def _front_matter(lines: list[str]) -> int:
    """Return the number of lines of a YAML front-matter block at the top (0 if none)."""
    if not lines or lines[0].rstrip() != "---":
        return 0
    for index in range(1, len(lines)):
        if _FRONT_MATTER_END.match(lines[index]):
            return index + 1
    return 0


class _Source:
    """The parsed text of a page (front matter off, container bodies dedented) mapped back
    to the page's own lines and columns."""

    def __init__(self, lines: list[str], offset: int) -> None:
        self.page_lines = lines
        self.offset = offset
        self.lines = lines[offset:]
        self.removed: dict[int, list[tuple[int, int]]] = {}  # body line -> (column, width)
        self.groups: list[tuple[int, int]] = []  # body lines of containers, inclusive

    def dedent_body(self, head: int, indent: int) -> bool:
        """Dedent by four the indented body under a container's first line; False if none."""
        last = head
        for number in range(head + 1, len(self.lines)):
            line = self.lines[number]
            if not line.strip():
                continue
            if line[:indent].strip() or not (
                line[indent : indent + 4] == "    " or line[indent : indent + 1] == "\t"
            ):
                break
            last = number
        self.groups.append((head, last))
        for number in range(head + 1, last + 1):
            line = self.lines[number]
            width = 4 if line[indent : indent + 4] == "    " else 1
            if line.strip():
                self.lines[number] = line[:indent] + line[indent + width :]
                self.removed.setdefault(number, []).append((indent, width))
        return last > head

    def column(self, body_line: int, column: int) -> int:
        """The page column of a column of the dedented text."""
        for start, width in reversed(self.removed.get(body_line, ())):
            if column >= start:
                column += width
        return column


def _place(source: str, content: str, cursor: int) -> int:
    """Where one line of an inline token's content sits in its source line.

    Returns `base` such that content column c is source column base + c (for c past the
    line's leading spaces), or -1. markdown-it keeps a line's text as written after the
    container prefix it strips, so a line is a suffix of its source line (trailing spaces
    aside); an ATX heading's closing `#`s or a table cell break that, and are found left to
    right from `cursor`.
    """
    stripped = content.strip()
    lead = len(content) - len(content.lstrip())
    if not stripped:
        return -1
    end = len(source.rstrip())
    column = end - len(stripped)
    if column < cursor or not source.startswith(stripped, column):
        column = source.find(stripped, cursor)
    return column - lead if column >= 0 else -1


class _Builder:
    """Collects units, blocks, links and anchors while walking one page's tokens."""

    def __init__(self, path: str, source: _Source, min_words: int, env: dict[str, Any]) -> None:
        self.path = path
        self.env = env  # the page's reference definitions, for `[text][label]` links
        self.source = source
        self.min_words = min_words
        self.sections: list[Section] = [Section("", 0, 1)]
        self.units: list[Unit] = []
        self.spans: list[tuple[int, int, int, str]] = []  # first, last body line, header, raw
        self.links: list[Link] = []
        self.anchors: set[str] = set()
        self.code_lines: set[int] = set(range(1, source.offset + 1))
        self.pending: list[tuple[str, str]] = []  # targets of the unit being read

    def lead(self, href: str) -> None:
        """Note where a link of the unit being read leads (see `Unit.targets`)."""
        href = href.strip()
        target = self.path if href.startswith("#") else link_path(self.path, href)
        self.pending.append((target, _fragment(href)) if target is not None else ("", href))

    def add(self, kind: str, key: str, raw: str, start: int, end: int, header: int = -1) -> None:
        # Maps are 0-based, end-exclusive, in body lines (after front matter).
        offset = self.source.offset
        prefixed = kind in ("code", "front_matter", "reference", "html", "footnote")
        words = len(key.split()) - (1 if prefixed else 0)
        substantive = words >= (1 if prefixed else self.min_words) or (prefixed and bool(raw))
        section = len(self.sections) - 1
        first, last = start + offset + 1, max(end + offset, start + offset + 1)
        top = header + offset + 1 if header >= 0 else 0
        targets, self.pending = tuple(self.pending), []
        self.units.append(Unit(kind, key, raw, section, first, substantive, last, top, 0, targets))

    def link(self, href: str, body_line: int, column: int, length: int, is_html: bool) -> None:
        """Record a link whose destination text starts at (`body_line`, `column`)."""
        fragment = _fragment(href)
        target = self.path if href.startswith("#") else link_path(self.path, href)
        if target is None:
            return
        line = body_line + self.source.offset + 1
        if column >= 0:
            column = self.source.column(body_line, column)
            written = self.source.page_lines[line - 1][column : column + length]
            if length <= 0 or not written.strip():
                column = -1
        self.links.append(Link(href, line, target, column, length, fragment, is_html))

    def inline(self, token: Token, cells: dict[int, int]) -> str:
        """The key of an inline token; its links and inline HTML are recorded on the way."""
        if not _MARKUP_RE.search(token.content):
            # No character that starts an inline rule of the CommonMark preset (escape,
            # code, emphasis, link, image, autolink, HTML, entity): the parser would return
            # the text itself with line breaks, so the key is the text (a third of all
            # parse time saved on the bee-hive tree).
            return " ".join(token.content.split())
        children = _inline_tokens(token.content, self.env)
        if token.map is None:
            return _inline_key(children)
        first = token.map[0]
        content_lines = token.content.split("\n")
        starts = [0]
        for text in content_lines[:-1]:
            starts.append(starts[-1] + len(text) + 1)
        bases: dict[int, int] = {}

        def where(offset: int) -> tuple[int, int]:
            index = bisect.bisect_right(starts, offset) - 1
            body_line = first + index
            if index not in bases:
                cursor = cells.get(body_line, 0)
                source = self.source.lines[body_line] if body_line < len(self.source.lines) else ""
                bases[index] = _place(source, content_lines[index], cursor)
                if bases[index] >= 0:
                    cells[body_line] = bases[index] + len(content_lines[index].rstrip())
            base = bases[index]
            return body_line, (base + offset - starts[index]) if base >= 0 else -1

        self._inline_links(children, token.content, where)
        return _inline_key(children)

    def _inline_links(
        self, children: list[Token], content: str, where: Callable[[int], tuple[int, int]]
    ) -> None:
        for child in children:
            if child.type in ("link_open", "image"):
                dest = child.meta.get("dest")
                href = str(child.attrGet("href" if child.type == "link_open" else "src") or "")
                if dest is None or not href:
                    continue  # a footnote reference, or an empty destination
                self.lead(href)
                if dest == (-1, -1):
                    continue  # a reference link: the definition is the link to rewrite
                body_line, column = where(dest[0])
                raw = content[dest[0] : dest[1]]
                column = self._check(body_line, column, raw)
                self.link(href, body_line, column, len(raw), False)
            elif child.type == "html_inline" and "span" in child.meta:
                begin = child.meta["span"][0]
                body_line, column = where(begin)
                self.html(child.content, body_line, column)

    def _check(self, body_line: int, column: int, raw: str) -> int:
        """`column` if `raw` is written there (in the dedented text), else its one other place."""
        line = self.source.lines[body_line] if body_line < len(self.source.lines) else ""
        if column >= 0 and line.startswith(raw, column):
            return column
        return line.find(raw) if line.count(raw) == 1 else -1

    def html(self, content: str, body_line: int, column: int) -> int:
        """Record the links and ids of an HTML snippet at (`body_line`, `column`); return how
        many elements it leaves open."""
        values, depth = _html_values(content)
        for line, col, length, name, value in values:
            at_line = body_line + line - 1
            at_col = (column + col if line == 1 else col) if column >= 0 else -1
            if at_col >= 0 and line > 1:
                source = self.source.lines[at_line] if at_line < len(self.source.lines) else ""
                content_line = content.split("\n")[line - 1]
                base = _place(source, content_line, 0)
                at_col = base + col if base >= 0 else -1
            if name in _ID_ATTRS:
                self.anchors.add(value)
            else:
                self.lead(value)
                self.link(value, at_line, at_col, length, True)
        return depth

    def reference(self, label: str, ref: dict[str, Any]) -> None:
        """Record a link reference definition: a unit, a block, and a link to rewrite."""
        start, end = ref["map"]
        href = str(ref["href"])
        if label.startswith("^"):  # `[^1]: Measured`: a footnote, not a link
            text = " ".join(self.source.lines[start:end])
            self.add("footnote", "footnote: " + " ".join(text.split()), "", start, end)
            self.spans.append((start, end - 1, -1, ""))
            return
        self.add("reference", "reference: " + " ".join(href.split()), "", start, end)
        if link_path(self.path, href) is not None:
            # A definition of a tree path is a link: the apply step rewrites it like any
            # other and checks it with the links (no link that worked may break), so its
            # key may change; one of a URL is a fact.
            self.units[-1] = self.units[-1]._replace(substantive=False)
        self.spans.append((start, end - 1, -1, ""))
        text = "\n".join(self.source.lines[start:end])
        close = text.find("]:")
        pos = close + 2
        while 0 < pos < len(text) and text[pos] in " \t\n":
            pos += 1
        result = _MD.helpers.parseLinkDestination(text, pos, len(text))
        if close < 0 or not result.ok:
            self.link(href, start, -1, 0, False)
            return
        body_line, column = _advance(text, pos, start + 1, 0)
        self.link(href, body_line - 1, column, result.pos - pos, False)


def parse_page(path: str, text: str, min_words: int = 1) -> Page:
    """Parse one Markdown page.

    Args:
        path: the page's POSIX path relative to the tree root (used to resolve links).
        text: the page's Markdown source, with `\\n` line endings.
        min_words: prose units with fewer words than this are not substantive; the default,
            1, makes every unit with any content substantive (however short: `- Azure`).

    Returns:
        The page with its sections, blocks, units (in document order), relative links
        (same-page `#anchor` links included) and anchors.
    """
    lines = text.split("\n")
    offset = _front_matter(lines)
    source = _Source(lines, offset)
    env: dict[str, Any] = {}
    tokens = _MD.parse("\n".join(source.lines), env)
    done: set[int] = set()
    while True:  # dedent container bodies, outermost first, until none is left
        heads = _container_heads(tokens, env, source, done)
        if not heads:
            break
        changed = False
        for head, indent in heads:
            done.add(head)
            changed |= source.dedent_body(head, indent)
        if not changed:
            break
        env = {}
        tokens = _MD.parse("\n".join(source.lines), env)
    builder = _Builder(path, source, min_words, env)
    if offset:
        content = "\n".join(lines[1 : offset - 1]) + "\n"
        builder.add("front_matter", code_key(content), fence(content, "yaml"), -offset, 0)
        builder.spans.append((-offset, -1, -1, fence(content, "yaml")))
    _walk(tokens, builder)
    for label, ref in env.get("references", {}).items():
        builder.reference(label, ref)
    blocks = _blocks(builder, source)
    starts = [block.first for block in blocks]
    units = sorted(builder.units, key=lambda unit: unit.line)
    units = [u._replace(block=max(bisect.bisect_right(starts, u.line) - 1, 0)) for u in units]
    section_starts = [section.line for section in builder.sections]
    units = [
        u._replace(section=max(bisect.bisect_right(section_starts, u.line) - 1, 0))
        if u.kind in ("reference", "footnote")
        else u
        for u in units
    ]
    anchors = builder.anchors | {section.anchor for section in builder.sections if section.anchor}
    closer = _closer(tokens, source.lines)
    return Page(
        path=path,
        text=text,
        closer=closer,
        fences_differ=_fences_differ(tokens, source.lines),
        title=_title(builder.sections, path),
        sections=tuple(builder.sections),
        units=tuple(units),
        links=tuple(sorted(builder.links, key=lambda link: (link.line, link.column))),
        code_lines=frozenset(builder.code_lines),
        blocks=tuple(blocks),
        anchors=frozenset(anchors),
    )


_FENCE_LIKE_RE = re.compile(r"^ {0,3}(`{3,}|~{3,})", re.MULTILINE)


def _fences_differ(tokens: list[Token], lines: list[str]) -> bool:
    """Whether the site engine (Python-Markdown) may read a code fence of the page other
    than CommonMark does: a line of text right after a closing fence (Python-Markdown puts
    the code and that text in one paragraph), or a line that starts like a fence but is
    text to CommonMark (a whole program on one line with literal `\\n`, a fence opener
    whose info string has a backtick). A fence left open at the end of the page is not one
    of them: the page's `closer` closes it before anything is appended, and the audit reads
    it the CommonMark way."""
    for token in tokens:
        if token.type == "fence" and token.map:
            end = token.map[1]
            if end < len(lines) and lines[end].strip():
                return True
        elif token.type == "inline" and _FENCE_LIKE_RE.search(token.content):
            return True
    return False


def _container_heads(
    tokens: list[Token], env: dict[str, Any], source: _Source, done: set[int]
) -> list[tuple[int, int]]:
    """First lines (with their indent) of admonitions, tabs and footnote definitions not yet
    dedented: the first line of a paragraph or definition that starts like one."""
    firsts = [t.map[0] for t in tokens if t.type == "paragraph_open" and t.map]
    firsts += [
        ref["map"][0] for label, ref in env.get("references", {}).items() if label[:1] == "^"
    ]
    heads = []
    for first in sorted(set(firsts) - done):
        match = _CONTAINER_HEAD_RE.match(source.lines[first])
        if match:
            heads.append((first, len(match.group(1))))
    return heads


def _walk(tokens: list[Token], builder: _Builder) -> None:
    """Collect units, sections, links, anchors and top-level blocks from block tokens."""
    offset = builder.source.offset
    containers: list[str] = []
    header = -1
    cells: dict[int, int] = {}
    used: set[str] = set()
    html_open: tuple[int, int] | None = None  # first line and depth of an open HTML element
    paragraph = (-1, -1)  # lines of the last top-level paragraph
    for index, token in enumerate(tokens):
        kind = token.type
        top = token.level == 0 or (token.level == 1 and kind == "list_item_open")
        if top and token.map and kind not in _NOT_BLOCKS:
            builder.spans.append((token.map[0], token.map[1] - 1, -1, ""))
        if token.level == 0 and token.map and kind == "paragraph_open":
            paragraph = (token.map[0], token.map[1])
        elif (
            token.level == 0
            and token.map
            and kind.endswith(("list_open", "table_open"))
            and (token.map[0] == paragraph[1])
        ):
            # A list or table right under a paragraph line, with no blank line between, is
            # part of the paragraph to Python-Markdown (the site engine), though CommonMark
            # starts one there: the two move as one block, or a carried item would turn
            # `- >20x faster` into a quote and lose its `>`.
            builder.source.groups.append((paragraph[0], token.map[1] - 1))
        if kind.endswith("_open") and kind not in ("paragraph_open", "heading_open", "tr_open"):
            containers.append(kind)
            continue
        if kind.endswith("_close") and kind not in ("paragraph_close", "heading_close"):
            containers.pop()
            continue
        start, end = token.map if token.map else (0, 0)
        if kind == "heading_open":
            inline = tokens[index + 1]
            title = inline.content.strip()
            explicit = _ATTR_ID_RE.search(title)
            key = builder.inline(inline, cells)
            if token.level:
                # A heading inside a quote or list item is no section (`> ---` under a quoted
                # line makes one); it is content of its container, a unit like a paragraph.
                builder.add("paragraph", key, "", start, end)
            builder.pending.clear()  # a top-level heading is a section, not a unit
            anchor = explicit.group(1) if explicit else slugify(key if key else title)
            if explicit:
                title = title[: explicit.start()].rstrip()
            anchor = unique_anchor(anchor, used)
            if token.level == 0:
                builder.sections.append(
                    Section(title, int(token.tag[1:]), start + offset + 1, anchor)
                )
            builder.anchors.add(anchor)
        elif kind == "paragraph_open":
            key = builder.inline(tokens[index + 1], cells)
            block_id = _BLOCK_ATTR_RE.search(tokens[index + 1].content)
            if block_id:  # attr_list's `{: #id }` as the last line of a block
                builder.anchors.add(block_id.group(1))
            in_item = bool(containers) and containers[-1] == "list_item_open"
            builder.add("item" if in_item else "paragraph", key, "", start, end)
        elif kind in ("fence", "code_block"):
            builder.code_lines.update(range(start + offset + 1, end + offset + 1))
            info = token.info.strip() if kind == "fence" else ""
            raw = fence(token.content, info)
            builder.add("code", code_key(token.content), raw, start, end)
            if token.level == 0:
                # Re-fenced, so that a fence left open at the end of its page (it runs to
                # the end of the document) cannot swallow what follows it on the target.
                builder.spans[-1] = (start, end - 1, -1, raw)
        elif kind == "html_block":
            builder.code_lines.update(range(start + offset + 1, end + offset + 1))
            raw = token.content.rstrip("\n")
            first_line = token.content.split("\n", 1)[0]
            depth = builder.html(
                token.content, start, _place(builder.source.lines[start], first_line, 0)
            )
            closer = _html_closer(raw)
            builder.add("html", "html: " + _blank_links(raw), raw + closer, start, end)
            if token.level == 0 and closer:
                builder.spans[-1] = (start, end - 1, -1, raw + closer)
            if token.level == 0:
                if html_open is None and depth > 0:
                    html_open = (start, depth)
                elif html_open is not None:
                    html_open = (html_open[0], html_open[1] + depth)
                if html_open is not None and html_open[1] <= 0:
                    builder.source.groups.append((html_open[0], end - 1))
                    html_open = None
        elif kind == "tr_open":
            containers.append(kind)
            if containers[-2] == "thead_open":
                header = start
            row = []
            for cell in tokens[index + 1 :]:
                if cell.type == "tr_close":
                    break
                if cell.type == "inline":
                    row.append(builder.inline(cell, cells))
            builder.add("row", " | ".join(row), "", start, end, header)
            if token.level == 2:
                builder.spans.append((start, end - 1, header, ""))
    if html_open is not None:
        builder.source.groups.append((html_open[0], len(builder.source.lines) - 1))


def _blocks(builder: _Builder, source: _Source) -> list[Block]:
    """Top-level blocks, with containers (admonitions, open HTML elements) made one block."""
    offset = source.offset
    spans = sorted(builder.spans)
    groups = sorted(source.groups)
    merged: list[list[Any]] = []
    for first, last, header, raw in spans:
        merged.append([first, last, header, raw])
    for first, last in groups:
        inside = [m for m in merged if m[0] <= last and m[1] >= first]
        outside = [m for m in merged if not (m[0] <= last and m[1] >= first)]
        low = min([first, *(m[0] for m in inside)])
        high = max([last, *(m[1] for m in inside)])
        merged = [*outside, [low, high, -1, ""]]
    merged.sort()
    blocks = []
    for first, last, header, raw in merged:
        top = header + offset + 1 if header >= 0 else 0
        blocks.append(Block(first + offset + 1, last + offset + 1, top, raw))
    return blocks


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


def dedent(lines: list[str]) -> str:
    """Join lines, removing the indentation they all share.

    Unlike `textwrap.dedent`, a line of only spaces keeps what it has past the margin: in
    code, `"    "` and `""` are different lines, and code keys are exact.
    """
    margin = min((len(line) - len(line.lstrip()) for line in lines if line.strip()), default=0)
    if not margin:
        return "\n".join(lines)
    return "\n".join(line[margin:] for line in lines)


def unit_sources(page: Page) -> list[str]:
    """The Markdown of each unit of `page`, in order, each re-parsing to a unit with its key.

    Prose is cut from the page and dedented (a list item keeps its marker); a table row
    comes with its table's header and delimiter rows, so that it is still a table row.
    """
    lines = page.text.split("\n")

    def cut(first: int, last: int) -> str:
        if first == last:
            return lines[first - 1].lstrip()  # what dedent does to one line, much faster
        return dedent(lines[first - 1 : last])

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
