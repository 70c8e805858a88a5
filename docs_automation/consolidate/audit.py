"""An independent audit of a consolidated tree: rendered like the site, compared block by block.

`verify` checks the output with the consolidator's own parser, keys and link regexes, so it
is blind to their bugs (style guide, principle 16). This module shares nothing with them: it
imports no other module of the consolidator (a test parses its imports), reads both trees
itself, renders every page with Python-Markdown and the extensions of our `mkdocs.yml`, and
reads the rendered HTML with the standard library's `html.parser`. It checks:

- **blocks**: the text of every block-level element of every SRC page (paragraph, heading,
  list item, table row, code block, definition, summary, admonition title, footnote, front
  matter, and the alt text of images in raw HTML) is, exactly, on the DEST page that now holds
  the page, inside the same kind of containers (list, quote, admonition with its type and
  title, `<details>` with its summary, content tab, footnotes). Prose is compared with runs of
  white space made one space (the rendered page does the same); code is compared
  character for character, indentation included; nothing else is normalised, so `✅` is not
  `❌` and `>=` is not `<`, and a one-word list item counts like any other.
- **links and anchors**: every `href` and `src` of the rendered HTML that resolved in SRC
  (a file or folder of SRC, and the `id` its `#fragment` names) resolves in DEST, following
  DEST's `redirects.json`, to the page that now holds its target, and a fragment to an
  element with the same text (the same heading text for a heading).
- **files**: every SRC page is in DEST or redirected to a page that is; every other file and
  every page that is not UTF-8 is in DEST at its path with the same bytes.

The page that "now holds" a SRC page is itself when it is in DEST, else its redirect, plus any
pages the caller names (a deleted page's `covered_by` in the plan).

Pages are read as mkdocs reads them (UTF-8, a BOM dropped, YAML front matter split off with
mkdocs' own expression, valid YAML or not), after line endings are made `\\n`, as
Python-Markdown does first.
Two extensions differ from the site, on purpose: `pymdownx.snippets` is left out (it would
include files from outside the tree; a `--8<--` line is compared as text), and `footnotes` is
added (GitHub and Material render `[^1]`, so footnotes are compared as footnotes).
"""

from __future__ import annotations

import hashlib
import json
import os
import posixpath
import re
import signal
import threading
import time
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import unquote, urlsplit

import markdown
from pymdownx.superfences import fence_code_format

__all__ = [
    "SITE_EXTENSIONS",
    "Audit",
    "Difference",
    "PageRender",
    "audit_trees",
    "render_page",
]

SITE_EXTENSIONS = (
    "abbr",
    "admonition",
    "attr_list",
    "md_in_html",
    "tables",
    "toc",
    "pymdownx.details",
    "pymdownx.highlight",
    "pymdownx.inlinehilite",
    "pymdownx.superfences",
    "pymdownx.tabbed",
)
"""The `markdown_extensions` of our `mkdocs.yml` that the audit renders with (a test keeps the
two lists equal), without `pymdownx.snippets`; `footnotes` is added (module docstring)."""

_CONFIGS: dict[str, dict[str, Any]] = {
    # No Pygments: highlighting splits code into spans but keeps its text, and costs most of
    # the render time. No permalinks: they only add a `¶` link to each heading.
    "pymdownx.highlight": {"use_pygments": False},
    "toc": {"permalink": False},
    "pymdownx.tabbed": {"alternate_style": True},
}
_MARKDOWN_SUFFIXES = (".md", ".markdown")
REDIRECTS_NAME = "redirects.json"
# mkdocs/utils/meta.py YAML_RE: the front matter mkdocs strips before rendering a page.
_FRONT_MATTER_RE = re.compile(r"^-{3}[ \t]*\n(.*?\n)(?:\.{3}|-{3})[ \t]*\n", re.DOTALL)
_FENCE_RE = re.compile(r"^ {0,3}(`{3,}|~{3,})(.*)$")
# markdown/preprocessors.py NormalizeWhitespace: a line of spaces becomes an empty line.
_BLANK_LINE_RE = re.compile(r"(?<=\n) +\n")
_MARKER_RE = re.compile(r"^(?:[-*+]|[0-9]{1,9}[.)])$")
# Containers whose blocks mean something else outside them (a warning, a collapsed block,
# one tab of several, a footnote); lists, quotes and tables are cut differently by engines.
_SPECIAL = ("admonition", "details", "tab", "footnotes")
_SCHEME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")
# HTML Living Standard §13.1.2: elements with no end tag.
_VOID = frozenset(
    [
        "area",
        "base",
        "br",
        "col",
        "embed",
        "hr",
        "img",
        "input",
        "link",
        "meta",
        "param",
        "source",
        "track",
        "wbr",
    ]
)
# Block-level elements (HTML Living Standard "flow content" that browsers lay out as
# blocks); text directly inside one is that block's own text.
_BLOCKS = frozenset(
    {
        "address",
        "article",
        "aside",
        "blockquote",
        "body",
        "caption",
        "center",
        "dd",
        "details",
        "dialog",
        "div",
        "dl",
        "dt",
        "fieldset",
        "figcaption",
        "figure",
        "footer",
        "form",
        "h1",
        "h2",
        "h3",
        "h4",
        "h5",
        "h6",
        "header",
        "hgroup",
        "hr",
        "html",
        "li",
        "main",
        "nav",
        "ol",
        "p",
        "pre",
        "section",
        "summary",
        "table",
        "tbody",
        "tfoot",
        "thead",
        "tr",
        "ul",
    }
)
# Elements that close an open <p> (HTML Living Standard §13.2.6.4.7, "in body").
_CLOSES_P = _BLOCKS - {"body", "html", "li", "dd", "dt", "tr", "tbody", "thead", "tfoot"}
_SKIPPED = frozenset({"script", "style", "template", "head", "title"})
_HEADINGS = frozenset({"h1", "h2", "h3", "h4", "h5", "h6"})
#: Characters of a block quoted in a difference: enough to find it, one line of a report.
_QUOTE = 80
PAGE_SECONDS = 20.0
"""Seconds a page may take to render, plus `SECONDS_PER_MB` per megabyte of its text; a
slower page is reported, not waited for."""
SECONDS_PER_MB = 30.0
"""Render time allowed per megabyte of a page: ten times what Python-Markdown needs on one
idle core (about 3 s per MB, measured on bee-hive), so a busy machine is no reason to fail."""
#: Pages per task sent to a render worker (the consolidator's parse uses the same size).
_CHUNK = 50


class Unit(NamedTuple):
    """One rendered block: where it sits, what it is, its text.

    Attributes:
        context: the containers around it, outermost first (`ul`, `admonition warning: Cap`).
        kind: `heading`, `code`, `item`, `row`, `term`, `summary`, `meta` or `text`.
        text: the rendered text; prose with white space runs made one space, code exact.
    """

    context: tuple[str, ...]
    kind: str
    text: str


class LinkRef(NamedTuple):
    """A link (`a href`) or image (`img src`) of a rendered page, in the unit that holds it."""

    unit: Unit
    tag: str
    label: str
    url: str
    ordinal: int


@dataclass
class PageRender:
    """What the audit takes from one rendered page.

    Attributes:
        units: every block, in page order.
        links: every `a href` and `img src` the author wrote, in page order.
        anchors: element `id` (and `<a name>`) to the element's text.
        sections: a heading's `id` to the texts of the blocks under it, up to the next
            heading: what a link to the heading is for.
        text: the page's source text after reading (for line numbers), or "" when not UTF-8.
        error: why the page could not be rendered (too deep, too slow), or "".
    """

    units: list[Unit] = field(default_factory=list)
    links: list[LinkRef] = field(default_factory=list)
    anchors: dict[str, str] = field(default_factory=dict)
    sections: dict[str, set[str]] = field(default_factory=dict)
    text: str = ""
    error: str = ""


@dataclass(frozen=True)
class Difference:
    """One way DEST breaks a promise SRC kept: `path:line: what` of the SRC page."""

    path: str
    line: int
    what: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.what}"


@dataclass
class Audit:
    """What `audit_trees` found. DEST keeps every promise when `ok`.

    Attributes:
        blocks_total: distinct blocks of SRC pages; `blocks_kept`: those found in DEST.
        links_total: links and anchors that resolved in SRC; `links_kept`: still in DEST.
        broken_before: links or anchors already broken in SRC (not checked further).
        differences: every problem, SRC path and 1-based line first.
        seconds: wall time of the audit.
    """

    blocks_total: int = 0
    blocks_kept: int = 0
    links_total: int = 0
    links_kept: int = 0
    broken_before: int = 0
    differences: list[Difference] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        """No block lost, no link or anchor broken, every file where it belongs."""
        return not self.differences


def _engine() -> markdown.Markdown:
    return markdown.Markdown(
        extensions=[*SITE_EXTENSIONS, "footnotes"],
        extension_configs={
            **_CONFIGS,
            "pymdownx.superfences": {
                "custom_fences": [
                    {
                        "name": "mermaid",
                        "class": "mermaid",
                        "format": fence_code_format,
                    }
                ]
            },
        },
    )


def _collapse(text: str) -> str:
    return " ".join(text.split())


class _Frame:
    """An open element while walking the rendered HTML."""

    __slots__ = ("attrs", "block", "context", "id", "id_text", "label", "links", "own", "tag")

    def __init__(self, tag: str, attrs: dict[str, str], block: bool) -> None:
        self.tag = tag
        self.attrs = attrs
        self.block = block
        self.own: list[str] = []  # text not inside a nested block
        self.links: list[tuple[str, str, list[str]]] = []  # (tag, url, label parts)
        self.label: list[str] | None = None  # the text of an open <a href>
        self.id = attrs.get("id") or (attrs.get("name", "") if tag == "a" else "")
        self.id_text: list[str] = []
        self.context = ""


class _Walker(HTMLParser):
    """Rendered HTML to units, links and anchors, with a browser-like open-element stack."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[_Frame] = [_Frame("body", {}, True)]
        self.out = PageRender()
        self.skip = 0
        self.section: set[str] | None = None  # the blocks under the last heading with an id

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {name: value or "" for name, value in attrs}
        if tag in _SKIPPED:
            self.skip += 1
            return
        if tag in _CLOSES_P and self.stack[-1].tag == "p":
            self._close("p")
        if tag == "li":
            self._close_open("li", stop={"ul", "ol"})
        elif tag in ("dt", "dd"):
            self._close_open("dt", stop={"dl"})
            self._close_open("dd", stop={"dl"})
        elif tag == "tr":
            self._close_open("tr", stop={"table", "tbody", "thead", "tfoot"})
        frame = _Frame(tag, values, tag in _BLOCKS)
        classes = values.get("class", "").split()
        if tag in ("td", "th"):
            self._text(" | ")
        elif tag in ("br", "label"):
            self._text("\n")
        elif tag == "img":
            alt = values.get("alt", "")
            self._block().links.append((tag, values.get("src", ""), [alt]))
            self._text(f" ![{alt}] ")
        elif tag == "a" and "footnote-backref" not in classes and "href" in values:
            frame.label = []
            self._block().links.append((tag, values["href"], frame.label))
        if "footnote-backref" in classes or "footnote-ref" in classes:
            # Generated numbers and arrows (they change when footnotes are renumbered); the
            # link check compares the footnote the reference leads to instead.
            self.skip += 1
            frame.attrs["data-audit-skip"] = "1"
        frame.context = _context_of(tag, classes)
        if tag in _VOID:
            if frame.id:
                self.out.anchors.setdefault(frame.id, "")
            return
        self.stack.append(frame)

    def _text(self, data: str) -> None:
        self._block().own.append(data)
        for frame in self.stack:
            if frame.id:
                frame.id_text.append(data)
            if frame.label is not None:
                frame.label.append(data)

    def _block(self) -> _Frame:
        for frame in reversed(self.stack):
            if frame.block:
                return frame
        return self.stack[0]

    def _close_open(self, tag: str, stop: set[str]) -> None:
        for frame in reversed(self.stack):
            if frame.tag in stop:
                return
            if frame.tag == tag:
                self._close(tag)
                return

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIPPED:
            self.skip = max(0, self.skip - 1)
            return
        self._close(tag)

    def _close(self, tag: str) -> None:
        if not any(f.tag == tag for f in self.stack[1:]):
            return  # a stray end tag, ignored as browsers do
        while len(self.stack) > 1:
            frame = self.stack.pop()
            self._finish(frame)
            if frame.tag == tag:
                return

    def handle_data(self, data: str) -> None:
        if not self.skip:
            self._text(data)

    def _finish(self, frame: _Frame) -> None:
        if frame.attrs.get("data-audit-skip"):
            self.skip = max(0, self.skip - 1)
        if frame.id:
            self.out.anchors.setdefault(frame.id, _collapse("".join(frame.id_text)))
        if not frame.block:
            return
        parent = self.stack[-1] if self.stack else frame
        kind = _kind_of(frame.tag, parent.tag)
        raw = "".join(frame.own)
        text = raw.strip("\n") if kind == "code" else _collapse(raw)
        if kind == "row":
            text = _collapse(text.strip(" |"))
        if kind == "summary" and parent.tag == "details":
            parent.context = f"details: {text}"
        if frame.tag == "p" and "admonition-title" in frame.attrs.get("class", "").split():
            parent.context = f"{parent.context}: {text}"
            kind = "title"
        if not text and not frame.links:
            return
        # A container's own text (raw `<details>` or `<div>` HTML) sits inside it.
        context = tuple(f.context for f in [*self.stack, frame] if f.context)
        unit = Unit(context, kind, text)
        self.out.units.append(unit)
        if kind == "heading":
            self.section = self.out.sections.setdefault(frame.id, set()) if frame.id else None
        elif self.section is not None:
            self.section.add(text)
        seen: dict[tuple[str, str], int] = defaultdict(int)
        for tag, url, parts in frame.links:
            label = _collapse("".join(parts))
            self.out.links.append(LinkRef(unit, tag, label, url, seen[(tag, label)]))
            seen[(tag, label)] += 1

    def close(self) -> None:
        super().close()
        while len(self.stack) > 1:
            self._finish(self.stack.pop())
        self._finish(self.stack[0])


def _context_of(tag: str, classes: list[str]) -> str:
    """The container an element makes for the blocks inside it, or "" when none."""
    if tag in ("ul", "ol", "blockquote", "dl", "table", "details"):
        return tag
    if tag == "div" and "admonition" in classes:
        return "admonition " + " ".join(c for c in classes if c != "admonition")
    if tag == "div" and "tabbed-set" in classes:
        return "tabs"
    if tag == "div" and "tabbed-block" in classes:
        return "tab"
    if tag == "div" and "footnote" in classes:
        return "footnotes"
    return ""


def _kind_of(tag: str, parent: str) -> str:
    if tag in _HEADINGS:
        return "heading"
    if tag == "pre":
        return "code"
    if tag == "li" or (tag == "p" and parent == "li"):
        return "item"  # a loose list's <p> is its item's text, as a tight list's text is
    if tag == "tr":
        return "row"
    if tag == "dt":
        return "term"
    if tag == "summary":
        return "summary"
    return "text"


def _front_matter(text: str) -> tuple[str, str]:
    """Split YAML front matter off a page, with mkdocs' expression: (front matter, the rest).

    MkDocs keeps a block that is not a YAML mapping as text (a setext heading); GitHub, and
    the consolidator, read any `---` block at the top as front matter, and so does the audit,
    so that such a block is compared exactly, as front matter, wherever it goes.
    """
    match = _FRONT_MATTER_RE.match(text)
    if not match:
        return "", text
    return match.group(1), text[match.end() :].lstrip("\n")


def _close_fence(text: str) -> str:
    """Close a code fence left open at the end of a page, as CommonMark reads it.

    CommonMark §4.5: an unclosed fence runs to the end of the document; Python-Markdown
    shows it as a paragraph instead. The consolidator closes it when it appends to the page,
    so both sides are read the CommonMark way, where the author's code is code.
    """
    fence = ""
    for line in text.split("\n"):
        match = _FENCE_RE.match(line)
        if not match:
            continue
        mark = match.group(1)
        if not fence:
            fence = mark
        elif mark[0] == fence[0] and len(mark) >= len(fence) and not match.group(2).strip():
            fence = ""
    return f"{text.rstrip()}\n{fence}\n" if fence else text


def render_page(text: str, engine: markdown.Markdown | None = None) -> PageRender:
    """Render one page's Markdown like the site and take its blocks, links and anchors.

    Args:
        text: the page as read (a BOM and `\\r` line endings are dealt with here).
        engine: a Python-Markdown instance from a previous call to reuse; None makes one.

    Returns:
        The page's units (front matter as one `meta` unit), links and anchors.
    """
    md = engine or _engine()
    source = text.removeprefix("\ufeff").replace("\r\n", "\n").replace("\r", "\n")
    meta, body = _front_matter(source)
    body = _close_fence(body)
    md.reset()
    walker = _Walker()
    walker.feed(md.convert(body))
    walker.close()
    out = walker.out
    if meta:
        # Front matter is never rendered, but a merged page's travels as a code block, which
        # Python-Markdown reads as it reads all text first (`NormalizeWhitespace`: tabs
        # expanded, lines of spaces made empty, in code too): compared as it would show.
        shown = _BLANK_LINE_RE.sub("\n", meta.expandtabs(md.tab_length))
        out.units.insert(0, Unit((), "meta", shown.strip("\n")))
    out.text = source
    return out


class _TooSlow(Exception):
    pass


def _alarm(signum: int, frame: object) -> None:
    raise _TooSlow


def _bounded(
    text: str, engine: markdown.Markdown | None = None, seconds: float | None = None
) -> PageRender:
    """Render a page within its time bound; a page that cannot be rendered says why.

    The bound is a `SIGALRM` timer, so it holds in a process's main thread when no other
    timer is pending (every render worker, and the command line). Where a timer is already
    set (pytest-timeout's, say) that timer bounds the render instead and is left alone.
    """
    # Python-Markdown recurses per nesting level and backtracks on unbalanced brackets:
    # hostile input can exhaust the stack or take minutes (style guide, principles 17, 18).
    bound = PAGE_SECONDS + SECONDS_PER_MB * len(text) / 1e6 if seconds is None else seconds
    timed = (
        threading.current_thread() is threading.main_thread()
        and signal.getitimer(signal.ITIMER_REAL)[0] == 0
    )
    if timed:
        previous = signal.signal(signal.SIGALRM, _alarm)
        signal.setitimer(signal.ITIMER_REAL, bound)
    try:
        return render_page(text, engine)
    except _TooSlow:
        return PageRender(text=text, error=f"takes over {bound:.3g} s to render")
    except RecursionError:
        return PageRender(text=text, error="nests too deep to render")
    finally:
        if timed:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)


def _render_chunk(chunk: list[tuple[str, str]]) -> list[tuple[str, PageRender]]:
    done = []
    engine = _engine()
    for digest, text in chunk:
        page = _bounded(text, engine)
        if page.error:
            engine = _engine()  # an interrupted engine may hold half a page
        done.append((digest, page))
    return done


class _Tree(NamedTuple):
    files: dict[str, bytes]
    folders: set[str]


def _read(root: Path) -> _Tree:
    """Every file under `root` by POSIX path, following symbolic links that stay inside it.

    A linked folder is read under its own name too (it is a path links may use), unless it
    resolves outside `root` (a link to `/` must not make the audit read the whole disk) or to
    a folder it is already inside (a circle).
    """
    files: dict[str, bytes] = {}
    top = os.path.realpath(root)
    chains: dict[str, tuple[str, ...]] = {}
    for folder, dirs, names in os.walk(root, followlinks=True):
        real = os.path.realpath(folder)
        above = chains.get(os.path.dirname(folder), ())
        if real in above or not (real == top or real.startswith(top + os.sep)):
            dirs[:] = []
            continue
        chains[folder] = (*above, real)
        for name in names:
            full = Path(folder, name)
            if full.is_file():
                files[full.relative_to(root).as_posix()] = full.read_bytes()
    folders = {posixpath.dirname(path) for path in files}
    for path in list(folders):
        while path:
            path = posixpath.dirname(path)
            folders.add(path)
    return _Tree(files, folders)


def _decode(data: bytes) -> str | None:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


def _is_page(path: str) -> bool:
    return path.lower().endswith(_MARKDOWN_SUFFIXES)


def _render_all(texts: Iterable[str], workers: int) -> dict[str, PageRender]:
    """Render each distinct text once, in worker processes when there are many."""
    unique = {hashlib.sha1(t.encode("utf-8", "surrogatepass")).hexdigest(): t for t in texts}
    items = sorted(unique.items())
    chunks = [items[i : i + _CHUNK] for i in range(0, len(items), _CHUNK)]
    count = workers or os.cpu_count() or 1
    done: dict[str, PageRender] = {}
    if count > 1 and len(chunks) > 2:
        with ProcessPoolExecutor(max_workers=count) as pool:
            for part in pool.map(_render_chunk, chunks):
                done.update(part)
    else:
        for chunk in chunks:
            done.update(_render_chunk(chunk))
    return {unique[d]: render for d, render in done.items()}


def _line_of(text: str, needle: str) -> int:
    """The 1-based line of `text` where `needle` (rendered text) most likely starts."""
    words = needle.replace("![", " ").split()
    probes = [needle[:40], " ".join(words[:3]), *[w for w in words if len(w) > 3][:3]]
    lines = text.split("\n")
    for probe in probes:
        probe = probe.strip()
        if probe:
            for number, line in enumerate(lines, 1):
                if probe in line:
                    return number
    return 1


def _quote(text: str) -> str:
    flat = text.replace("\n", "⏎")
    return flat if len(flat) <= _QUOTE else flat[: _QUOTE - 1] + "…"


class _Target(NamedTuple):
    path: str  # the file or folder, relative to the tree root; "" for the tree root
    fragment: str
    folder: bool


def _resolve(page: str, url: str, tree: _Tree) -> _Target | None:
    """Where a relative URL written on `page` leads in `tree`; None when external or broken."""
    if not url or _SCHEME_RE.match(url) or url.startswith(("//", "/")):
        return None
    parts = urlsplit(url)
    path = unquote(parts.path)
    fragment = unquote(parts.fragment)
    if not path:
        return _Target(page, fragment, False)
    joined = posixpath.normpath(posixpath.join(posixpath.dirname(page), path))
    if joined == ".":
        joined = ""
    if joined.startswith("../") or joined == "..":
        return None
    if joined in tree.files:
        return _Target(joined, fragment, False)
    if joined in tree.folders:
        return _Target(joined, fragment, True)
    return None


class _Side:
    """One tree with its rendered pages."""

    def __init__(self, tree: _Tree, renders: Mapping[str, PageRender]) -> None:
        self.tree = tree
        self.pages = renders
        self.by_unit: dict[str, dict[tuple[Unit, str, str], list[LinkRef]]] = {}
        self.homes: dict[tuple[str, ...], _Home] = {}

    def home(self, paths: tuple[str, ...]) -> _Home:
        """The blocks of these pages, indexed once (a merge target holds many pages)."""
        if paths not in self.homes:
            units: list[Unit] = []
            for path in paths:
                page = self.pages.get(path)
                units.extend(page.units if page else ())
            self.homes[paths] = _Home(units)
        return self.homes[paths]

    def links_of(self, path: str) -> dict[tuple[Unit, str, str], list[LinkRef]]:
        """A page's links by the block, tag and label they have (what pairs two links).

        Indexed by all three, not by block alone: a generated line of 20,000 links is one
        block, and pairing each link by scanning its block's links took minutes.
        """
        if path not in self.by_unit:
            grouped: dict[tuple[Unit, str, str], list[LinkRef]] = defaultdict(list)
            page = self.pages.get(path)
            for link in page.links if page else ():
                grouped[(link.unit, link.tag, link.label)].append(link)
            self.by_unit[path] = grouped
        return self.by_unit[path]


def audit_trees(
    src: Path,
    dest: Path,
    homes: Mapping[str, Sequence[str]] | None = None,
    workers: int = 0,
) -> Audit:
    """Compare a consolidated tree with its source as rendered pages (module docstring).

    Args:
        src: the source tree's root (only read).
        dest: the consolidated tree's root, with the `redirects.json` the consolidator
            wrote (a JSON object, old path to new path, both relative to the root).
        homes: more DEST pages that hold a SRC page's blocks, by SRC path (a deleted
            page's `covered_by`); its redirect and its own path always count.
        workers: processes that render pages; 0 means one per CPU.

    Returns:
        What was found; DEST keeps every promise when its `ok` is true.

    Raises:
        ValueError: DEST's `redirects.json` is not a JSON object of strings.
        OSError: a file of either tree cannot be read.
    """
    clock = time.perf_counter()
    before, after = _read(src), _read(dest)
    redirects = _redirects(after.files.pop(REDIRECTS_NAME, None))
    after.files.pop(REDIRECTS_NAME, None)
    texts: dict[str, dict[str, str]] = {"src": {}, "dest": {}}
    for name, tree in (("src", before), ("dest", after)):
        for path, data in tree.files.items():
            text = _decode(data) if _is_page(path) else None
            if text is not None:
                texts[name][path] = text
    rendered = _render_all([*texts["src"].values(), *texts["dest"].values()], workers)
    old = _Side(before, {p: rendered[t] for p, t in texts["src"].items()})
    new = _Side(after, {p: rendered[t] for p, t in texts["dest"].items()})
    audit = Audit()
    extra = homes or {}
    home_of = {path: _homes(path, after, redirects, extra) for path in before.files}
    _check_files(before, after, redirects, old, audit)
    for path, page in sorted(old.pages.items()):
        if page.error:  # not checkable: it must be carried byte for byte
            if after.files.get(path) != before.files[path]:
                what = f"{page.error}, so it must be carried as it is, and it was not"
                audit.differences.append(Difference(path, 1, what))
            continue
        _check_blocks(path, page, home_of[path], path in after.files, new, audit)
    for path, page in sorted(new.pages.items()):
        if page.error and before.files.get(path) != after.files[path]:
            audit.differences.append(Difference(path, 1, f"in DEST {page.error}"))
    for path, page in sorted(old.pages.items()):
        _check_links(path, page, home_of, old, new, redirects, audit)
    audit.seconds = time.perf_counter() - clock
    return audit


def _redirects(data: bytes | None) -> dict[str, str]:
    if data is None:
        return {}
    loaded = json.loads(data)
    if not isinstance(loaded, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in loaded.items()
    ):
        raise ValueError(f"{REDIRECTS_NAME} must map old paths to new paths (strings)")
    return loaded


def _follow(path: str, tree: _Tree, redirects: Mapping[str, str]) -> str:
    """Follow redirects from a path missing in `tree` (bounded: a loop is not followed)."""
    for _ in range(len(redirects) + 1):
        if path in tree.files or path not in redirects:
            return path
        path = redirects[path]
    return path


def _homes(
    path: str, after: _Tree, redirects: Mapping[str, str], extra: Mapping[str, Sequence[str]]
) -> list[str]:
    found = [path] if path in after.files else [_follow(path, after, redirects)]
    return [*found, *extra.get(path, ())]


def _hidden(path: str) -> bool:
    """Whether MkDocs leaves a page out of the site: its default `exclude_docs` has `.*`."""
    return any(part.startswith(".") for part in path.split("/"))


def _check_files(
    before: _Tree, after: _Tree, redirects: Mapping[str, str], old: _Side, audit: Audit
) -> None:
    for path, data in sorted(before.files.items()):
        if _is_page(path) and path in old.pages:
            if path in after.files and path in redirects:
                audit.differences.append(Difference(path, 1, "redirected but still in DEST"))
            elif path not in after.files:
                target = _follow(path, after, redirects)
                if path not in redirects:
                    audit.differences.append(Difference(path, 1, "removed without a redirect"))
                elif target not in after.files:
                    audit.differences.append(
                        Difference(path, 1, f"redirected to {target}, which is not in DEST")
                    )
                elif _hidden(target) and not _hidden(path):
                    audit.differences.append(
                        Difference(
                            path,
                            1,
                            f"redirected to {target}, in a folder MkDocs leaves out of the "
                            "site (its name starts with a dot)",
                        )
                    )
            elif _decode(after.files[path]) is None:
                audit.differences.append(Difference(path, 1, "is not UTF-8 in DEST"))
            continue
        # Not a page, or a page that is not UTF-8: carried byte for byte or not at all.
        if after.files.get(path) != data:
            what = "missing from DEST" if path not in after.files else "changed in DEST"
            audit.differences.append(Difference(path, 1, f"{what} (must be copied as it is)"))


_PROSE = frozenset({"heading", "item", "row", "term", "summary", "title", "text"})
_SAME_KIND = {"code": frozenset({"code"}), "meta": frozenset({"meta", "code"})}


def _special(context: tuple[str, ...]) -> tuple[str, ...]:
    """The containers that change what a block means when it leaves or enters them."""
    return tuple(c for c in context if c.startswith(_SPECIAL))


def _tokens(text: str) -> str:
    """A block's words without list markers, which one engine keeps as text and one not."""
    return "\0".join(_pieces(text))


class _Home:
    """The DEST blocks a SRC page must find its blocks among."""

    def __init__(self, units: Sequence[Unit]) -> None:
        self.exact = set(units)
        self.by_text: dict[str, list[Unit]] = defaultdict(list)
        for unit in units:
            self.by_text[unit.text].append(unit)
        # Block boundaries are NUL, so a match must start and end at a block's edge.
        prose = [_tokens(unit.text) for unit in units if unit.kind in _PROSE]
        self.stream = "\0" + "\0".join(prose) + "\0"
        self.pieces = {piece for text in prose for piece in text.split("\0")}

    def _run(self, words: str) -> bool:
        """Whether `words` are, word for word, one DEST block or a run of whole blocks."""
        if words in self.pieces:  # one whole block: most cases, without a scan
            return True
        pattern = "\0" + "[ \0]".join(re.escape(w) for w in words.split()) + "\0"
        return re.search(pattern, self.stream) is not None

    def find(self, unit: Unit) -> str | None:
        """None when `unit` is kept, else why not (a sentence)."""
        if unit in self.exact:
            return None
        wanted = _special(unit.context)
        # Code stays code and prose stays prose; among prose kinds any counts (a heading may
        # come back as a paragraph's bold line). Front matter of a merged page can only
        # travel as a code block.
        kinds = _SAME_KIND.get(unit.kind, _PROSE)
        same = [u for u in self.by_text.get(unit.text, []) if u.kind in kinds]
        if same:
            if any(_special(other.context) == wanted for other in same):
                return None
            moved = " > ".join(_special(same[0].context)) or "no container"
            return f"moved from {' > '.join(wanted) or 'no container'} to {moved}"
        if unit.kind in _PROSE and all(self._run(piece) for piece in _pieces(unit.text)):
            # The two engines may cut the same text into blocks differently: a list with no
            # blank line before it is one paragraph to Python-Markdown and a paragraph and
            # items to CommonMark (and the consolidator), which carries each item alone. The
            # block is kept when each piece between list markers is a run of whole DEST
            # blocks, word for word.
            return None
        return "lost"


def _pieces(text: str) -> list[str]:
    """A block's words cut at list markers, each piece joined by single spaces."""
    pieces: list[list[str]] = [[]]
    for word in text.split():
        if _MARKER_RE.match(word):
            pieces.append([])
        else:
            pieces[-1].append(word)
    return [" ".join(piece) for piece in pieces if piece]


def _check_blocks(
    path: str, page: PageRender, homes: Sequence[str], kept: bool, new: _Side, audit: Audit
) -> None:
    found = new.home(tuple(homes))
    seen: set[Unit] = set()
    for unit in page.units:
        # A removed page's headings name a page the redirect now replaces; a heading that
        # something links to is still checked, as an anchor (`_check_links`).
        if unit in seen or (unit.kind == "heading" and not kept):
            continue
        seen.add(unit)
        audit.blocks_total += 1
        problem = found.find(unit)
        if problem is None:
            audit.blocks_kept += 1
            continue
        where = " > ".join(unit.context) or "page"
        line = _line_of(page.text, unit.text)
        audit.differences.append(
            Difference(
                path,
                line,
                f"{unit.kind} {problem} (in {where}; DEST {', '.join(dict.fromkeys(homes))}): "
                f"{_quote(unit.text)!r}",
            )
        )


def _check_links(
    path: str,
    page: PageRender,
    home_of: Mapping[str, Sequence[str]],
    old: _Side,
    new: _Side,
    redirects: Mapping[str, str],
    audit: Audit,
) -> None:
    for link in page.links:
        target = _resolve(path, link.url, old.tree)
        if target is None:
            if link.url and not _SCHEME_RE.match(link.url) and not link.url.startswith("/"):
                audit.broken_before += 1
            continue
        anchor = None
        if target.fragment and not target.folder:
            target_page = old.pages.get(target.path)
            if target_page is None or target.fragment not in target_page.anchors:
                audit.broken_before += 1
                continue
            section = target_page.sections.get(target.fragment, set())
            anchor = (target_page.anchors[target.fragment], section)
        audit.links_total += 1
        problem = _find_link(path, link, target, anchor, home_of, new, redirects)
        if problem is None:
            audit.links_kept += 1
        else:
            line = _line_of(page.text, link.url)
            # A link and an image with the same URL on one line are two reports, named apart.
            kind = "image" if link.tag == "img" else "link"
            audit.differences.append(Difference(path, line, f"{kind} {link.url!r} {problem}"))


def _find_link(
    path: str,
    link: LinkRef,
    target: _Target,
    anchor: tuple[str, set[str]] | None,
    home_of: Mapping[str, Sequence[str]],
    new: _Side,
    redirects: Mapping[str, str],
) -> str | None:
    """None when the link is in DEST and leads where it led, else what went wrong."""
    source = target.path if not target.folder else ""
    candidates: list[tuple[str, LinkRef]] = []
    for home in home_of.get(path, ()):
        for other in new.links_of(home).get((link.unit, link.tag, link.label), ()):
            candidates.append((home, other))
    if not candidates:
        return "is gone from DEST (its block is reported, or the link was dropped)"
    wanted = set(home_of.get(source, (source,))) if source else set()
    last = "is broken in DEST"
    for home, other in candidates:
        found = _resolve(home, other.url, new.tree)
        if found is None:
            redirected = _redirected(home, other.url, new.tree, redirects)
            if redirected is None:
                last = f"is broken in DEST (on {home} as {other.url!r})"
                continue
            found = redirected
        if target.folder:
            return None
        if not _is_page(target.path):
            if found.path == target.path:
                return None
            last = f"leads to {found.path} in DEST instead of {target.path}"
            continue
        if found.path not in wanted:
            last = f"leads to {found.path} in DEST instead of {sorted(wanted)}"
            continue
        if anchor is None:
            return None
        dest_page = new.pages.get(found.path)
        text = dest_page.anchors.get(found.fragment) if dest_page else None
        blocks = dest_page.sections.get(found.fragment, set()) if dest_page else set()
        wanted_text, section = anchor
        if text == wanted_text and (not section or section & blocks):
            return None
        last = f"anchor #{found.fragment} on {found.path} is {text!r} in DEST, not {wanted_text!r}"
        if text == wanted_text:
            # The same heading text over none of the blocks it had: another page's heading
            # (slugs that collided when pages were merged).
            last = f"anchor #{found.fragment} on {found.path} leads to another {text!r} section"
    return last


def _redirected(page: str, url: str, tree: _Tree, redirects: Mapping[str, str]) -> _Target | None:
    """Resolve a DEST link whose file is gone through `redirects.json`."""
    if not url or _SCHEME_RE.match(url) or url.startswith(("//", "/")):
        return None
    parts = urlsplit(url)
    joined = posixpath.normpath(posixpath.join(posixpath.dirname(page), unquote(parts.path)))
    followed = _follow(joined, tree, redirects)
    if followed in tree.files:
        return _Target(followed, unquote(parts.fragment), False)
    return None
