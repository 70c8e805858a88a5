"""The consolidated bee-hive tree is a site: it builds with mkdocs and no new warning.

Issue 12 item 10. SRC and the consolidated tree are each built by `mkdocs build` (MkDocs
1.6) with the Markdown extensions of our `mkdocs.yml` (as the audit renders them), a nav of
every page generated here, link and anchor validation on (the `validation:` options, all at
`warn`), and, for the consolidated tree, its `redirects.json` as the mkdocs-redirects
plugin's `redirect_maps`. A warning of the consolidated build is new unless SRC's build had
the same kind of warning on the page it came from (or the page that took its content), for
the same link as written or the same target.
"""

from __future__ import annotations

import json
import posixpath
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any, NamedTuple

import pytest
import yaml

from docs_automation.consolidate.audit import SITE_EXTENSIONS
from docs_automation.consolidate.engine import analyse
from docs_automation.consolidate.files import read_tree, write_tree
from docs_automation.consolidate.render import render
from tests.procs import tool_env

pytestmark = pytest.mark.docs

_WARNING_RE = re.compile(r"^WARNING\s+-\s+(.*)$")
_DOC_RE = re.compile(r"Doc file '([^']*)' contains (?:a link|an unrecognized relative link|"
                     r"an absolute link) '([^']*)'")  # fmt: skip
_TARGET_RE = re.compile(r"(?:the target|the doc) '([^']*)'")
# What kind of warning it is, from the words MkDocs 1.6 uses (mkdocs/structure/pages.py).
_KINDS = (
    ("is not found among documentation files", "link not found"),
    ("does not contain an anchor", "anchor not found"),
    ("there is no such anchor on this page", "anchor not found"),
    ("unrecognized relative link", "unrecognized link"),
    ("absolute link", "absolute link"),
    ("is included in the 'nav' configuration", "nav"),
    ('not included in the "nav" configuration', "nav"),
    ("conflicts with", "index conflict"),
)


class Warning_(NamedTuple):
    kind: str
    page: str
    href: str
    target: str
    text: str


def _nav(pages: list[str]) -> list[Any]:
    """A nav of every page MkDocs builds, nested by folder (pages before subfolders)."""
    built = [p for p in pages if not any(part.startswith(".") for part in p.split("/"))]
    index = {posixpath.dirname(p) for p in built if posixpath.basename(p) == "index.md"}
    built = [p for p in built if not (p.endswith("README.md") and posixpath.dirname(p) in index)]
    tree: dict[str, Any] = {}
    for path in sorted(built):
        node = tree
        for part in path.split("/")[:-1]:
            node = node.setdefault(part + "/", {})
        node[path] = path
    return _as_nav(tree)


def _as_nav(node: dict[str, Any]) -> list[Any]:
    pages = [value for key, value in node.items() if not key.endswith("/")]
    folders = [
        {key.rstrip("/"): _as_nav(value)} for key, value in node.items() if key.endswith("/")
    ]
    return pages + folders


def _hidden(path: str) -> bool:
    return any(part.startswith(".") for part in path.split("/"))


def _published(redirects: dict[str, str]) -> dict[str, str]:
    return {old: new for old, new in redirects.items() if not _hidden(old)}


def _utf8(path: Path) -> bool:
    try:
        path.read_bytes().decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _config(docs: Path, site: Path, redirects: dict[str, str] | None) -> str:
    pages = sorted(p.relative_to(docs).as_posix() for p in docs.rglob("*.md"))
    # MkDocs stops at a page that is not UTF-8 (bee-hive has one): both builds leave it out.
    unreadable = [page for page in pages if not _utf8(docs / page)]
    pages = [page for page in pages if page not in unreadable]
    config: dict[str, Any] = {
        "site_name": "consolidated",
        "docs_dir": str(docs),
        "site_dir": str(site),
        "theme": {"name": "mkdocs"},
        "nav": _nav(pages),
        "exclude_docs": "".join(f"/{page}\n" for page in unreadable),
        "markdown_extensions": [
            *[e for e in SITE_EXTENSIONS if e not in ("pymdownx.tabbed", "pymdownx.superfences")],
            {"pymdownx.tabbed": {"alternate_style": True}},
            "pymdownx.superfences",
            "footnotes",
        ],
        # Only URLs the site had need a redirect: a hidden page was never built.
        "plugins": [{"redirects": {"redirect_maps": _published(redirects)}}] if redirects else [],
        "validation": {
            "nav": {"omitted_files": "warn", "not_found": "warn", "absolute_links": "warn"},
            "links": {
                "not_found": "warn",
                "anchors": "warn",
                "absolute_links": "warn",
                "unrecognized_links": "warn",
            },
        },
    }
    return yaml.safe_dump(config, sort_keys=False, allow_unicode=True)


def build_warnings(docs: Path, work: Path, redirects: dict[str, str] | None) -> list[Warning_]:
    """Build `docs` with mkdocs and return its warnings, parsed."""
    work.mkdir(parents=True, exist_ok=True)
    config = work / "mkdocs.yml"
    config.write_text(_config(docs, work / "site", redirects), encoding="utf-8")
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "-f", str(config)],
        env=tool_env(), capture_output=True, text=True, timeout=900, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    found = []
    for line in done.stderr.splitlines():
        match = _WARNING_RE.match(line.strip())
        if not match:
            continue
        text = match.group(1)
        doc, target = _DOC_RE.search(text), _TARGET_RE.search(text)
        kind = next((name for words, name in _KINDS if words in text), "other")
        where = target.group(1) if target else ""
        if kind == "unrecognized link" and doc:
            # MkDocs names no target here: the path the link leads to, from its page, so that
            # a link rewritten for a page that moved is the same link.
            href = doc.group(2).partition("#")[0].partition("?")[0]
            where = posixpath.normpath(posixpath.join(posixpath.dirname(doc.group(1)), href))
        if kind == "anchor not found" and doc:  # the anchor is part of what is missing
            where += "#" + doc.group(2).partition("#")[2]
        found.append(
            Warning_(
                kind,
                doc.group(1) if doc else "",
                doc.group(2) if doc else "",
                where,
                text,
            )
        )
    return found


def new_warnings(
    before: list[Warning_],
    after: list[Warning_],
    redirects: dict[str, str],
    src_files: frozenset[str] = frozenset(),
) -> list[Warning_]:
    """Warnings of the consolidated build that SRC's build did not have (module docstring).

    A page SRC's build left out (a hidden page, `.devcontainer/README.md`, or a `README.md`
    beside an `index.md`) has no warnings there; one merged into a published page (or
    published once its `index.md` went away) brings its links along, and a link of it to a
    file that SRC did not have either (it was broken there too), or to a folder (which
    MkDocs does not resolve), is not new.
    """
    old: set[tuple[str, str, str]] = set()
    indexed = {posixpath.dirname(p) for p in src_files if posixpath.basename(p) == "index.md"}
    unbuilt = {
        p
        for p in src_files
        if _hidden(p) or (posixpath.basename(p) == "README.md" and posixpath.dirname(p) in indexed)
    }
    hidden_homes = {redirects.get(path, path) for path in unbuilt}
    for warning in after:
        if (
            warning.kind in ("link not found", "unrecognized link")
            and warning.page in hidden_homes
            and warning.target
            and warning.target not in src_files
        ):
            old.add((warning.kind, warning.page, warning.target))
    for warning in before:
        for page in {warning.page, redirects.get(warning.page, warning.page)}:
            old |= {(warning.kind, page, warning.href), (warning.kind, page, warning.target)}
    if any(w.kind == "other" for w in before):
        old |= {("other", "", w.text) for w in before if w.kind == "other"}
    return [
        w
        for w in after
        if (w.kind, w.page, w.href) not in old
        and (not w.target or (w.kind, w.page, w.target) not in old)
        and ("other", "", w.text) not in old
    ]


@pytest.mark.unit
def test_a_warning_is_new_only_when_src_did_not_have_it_on_the_page_it_came_from() -> None:
    before = [
        Warning_("link not found", "old/a.md", "x.md", "old/x.md", ""),
        Warning_("anchor not found", "b.md", "c.md#gone", "c.md#gone", ""),
    ]
    after = [
        Warning_("link not found", "new/a.md", "x.md", "new/x.md", ""),  # carried, same href
        Warning_("anchor not found", "b.md", "c.md#gone", "c.md#gone", ""),  # unchanged page
        Warning_("anchor not found", "b.md", "c.md#other", "c.md#other", ""),  # newly broken
    ]
    fresh = new_warnings(before, after, {"old/a.md": "new/a.md"})
    assert [w.href for w in fresh] == ["c.md#other"]


@pytest.mark.slow
@pytest.mark.timeout(1200)  # two mkdocs builds of about 900 pages each
# Measured for its warnings, not its lines (the tree tests cover the same code): line
# tracing made the analysis 2.5 times slower.
@pytest.mark.no_cover
def test_the_consolidated_bee_hive_builds_with_no_warning_src_did_not_have(
    shared_dir: Path, tmp_path: Path
) -> None:
    src = shared_dir / "corpus" / "bee-hive"
    tree = read_tree(src)
    analysis = analyse(tree)
    # The rendered tree as apply writes it (apply also audits it: see test_engine).
    rendered = render(analysis.pages, analysis.plan, tree.all_paths(), set(tree.copied))
    redirects = dict(sorted(analysis.plan.redirects.items()))
    dest = tmp_path / "dest"
    write_tree(dest, tree, rendered, tree.copied, {"redirects.json": json.dumps(redirects)})
    before = build_warnings(src, tmp_path / "src-site", None)
    after = build_warnings(dest, tmp_path / "dest-site", redirects)
    print("SRC warnings:", Counter(w.kind for w in before))
    print("DEST warnings:", Counter(w.kind for w in after))
    fresh = new_warnings(before, after, redirects, frozenset(tree.all_paths()))
    print("new:", Counter(w.kind for w in fresh))
    assert not fresh, "\n".join(w.text for w in fresh[:40])


@pytest.mark.unit
def test_a_hidden_pages_broken_link_is_not_new_but_a_link_it_broke_is() -> None:
    after = [
        Warning_("link not found", "docs/guide.md", "../x.md", "x.md", ""),  # broken in SRC too
        Warning_("unrecognized link", "docs/guide.md", "../", "docs", ""),  # a folder link
        Warning_("link not found", "docs/guide.md", "y.md", "docs/y.md", ""),  # y.md was there
    ]
    src = frozenset({"docs/y.md", ".claude/README.md", "docs/guide.md"})
    fresh = new_warnings([], after, {".claude/README.md": "docs/guide.md"}, src)
    assert [w.href for w in fresh] == ["y.md"]
