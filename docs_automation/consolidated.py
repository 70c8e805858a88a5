"""The consolidated tree: render it from a plan, rewrite its links, and verify it.

`render` and `verify` are pure (paths to text in, paths to text or findings out). `verify`
parses the output with the same parser as the source and checks the three promises: every
substantive unit of SRC is on the page that now holds it, no link that worked in SRC is
broken, and every page that left has a redirect to a page that exists.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from urllib.parse import quote

from .corpus import LINK_RE, REFERENCE_RE, Page, link_path, unit_sources
from .linkrefs import carry_references, defined_labels, relabel
from .plan import Merge, Plan

__all__ = ["LinkRewriter", "Verification", "folders", "render", "verify"]

_HEADING_RE = re.compile(r"^#{1,6}\s+")
_ITEM_RE = re.compile(r"^(?:([-*+])|[0-9]{1,9}([.)]))(?:[ \t]|$)")


def _marker(unit_kind: str, raw: str) -> str:
    """The list marker kind of an emitted list item (`-`, `*`, `+`, `.` or `)`), else ""."""
    match = _ITEM_RE.match(raw) if unit_kind == "item" else None
    return (match.group(1) or match.group(2)) if match else ""


def folders(paths: Iterable[str]) -> set[str]:
    """Every folder that holds one of `paths`, at any depth (the root is not included)."""
    found: set[str] = set()
    for path in paths:
        folder = posixpath.dirname(path)
        while folder and folder not in found:
            found.add(folder)
            folder = posixpath.dirname(folder)
    return found


class LinkRewriter:
    """Rewrites relative links so that they point where their target's content went."""

    def __init__(self, plan: Plan, src_files: set[str], dest_files: set[str]) -> None:
        self.plan = plan
        self.src_files = src_files
        self.src_dirs = folders(src_files)
        self.dest_dirs = folders(dest_files)
        pages_by_dir: dict[str, list[str]] = {}
        for path in sorted(src_files):
            pages_by_dir.setdefault(posixpath.dirname(path), []).append(path)
        self.pages_by_dir = pages_by_dir
        self.folder_homes: dict[str, str] = {}

    def _folder_home(self, folder: str) -> str:
        # A folder that no longer exists: send the link to where its index page (or its
        # first page) went, so the reader lands on that folder's former content.
        if folder in self.folder_homes:
            return self.folder_homes[folder]
        inside = [
            p
            for d, paths in self.pages_by_dir.items()
            for p in paths
            if d == folder or d.startswith(folder + "/")
        ]
        index = [p for p in inside if posixpath.basename(p).lower() in ("readme.md", "index.md")]
        home = self.plan.final(min(index or inside, key=lambda p: (p.count("/"), p)))
        self.folder_homes[folder] = home
        return home

    def href(self, href: str, source: str, dest: str) -> str:
        """Return `href` as it must be written on page `dest`, moved there from `source`."""
        target = link_path(source, href)
        if target is None:
            return href
        bare = href.strip().strip("<>")
        cut = min((i for i in (bare.find("#"), bare.find("?")) if i >= 0), default=len(bare))
        suffix, is_dir = bare[cut:], False
        if target in self.src_files:
            final = self.plan.final(target)
        elif target in self.src_dirs and target not in self.dest_dirs:
            final = self._folder_home(target)
        else:
            # A folder that survives, or a link already broken in SRC: same place as before.
            final, is_dir = target, target in self.src_dirs
        if source == dest and final == target:
            return href
        relative = posixpath.relpath(final, posixpath.dirname(dest) or ".")
        if is_dir and bare[:cut].endswith("/"):
            relative += "/"
        return quote(relative, safe="/._-~+") + suffix

    def text(self, text: str, source: str, dest: str) -> str:
        """Rewrite every inline link and reference definition of a Markdown snippet (not code)
        moved to `dest`."""
        if "]" not in text:
            return text

        def replace(match: re.Match[str]) -> str:
            new = self.href(match.group(2), source, dest)
            if new == match.group(2):
                return match.group(0)
            return f"{match.group(1)}({new}{match.group(3) or ''})"

        def define(match: re.Match[str]) -> str:
            return match.group(1) + self.href(match.group(2), source, dest)

        if "](" in text:
            text = LINK_RE.sub(replace, text)
        return REFERENCE_RE.sub(define, text) if "]:" in text else text

    def page(self, page: Page) -> str:
        """A kept page's text with the links to moved pages rewritten; code is left alone."""
        lines = page.text.split("\n")
        for number in sorted({link.line for link in page.links} - page.code_lines):
            lines[number - 1] = self.text(lines[number - 1], page.path, page.path)
        return "\n".join(lines)


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


@dataclass
class Verification:
    """What `verify` found. The apply step publishes the output only when `ok`."""

    units_total: int = 0
    units_kept: int = 0
    missing: list[tuple[str, int, str]] = field(default_factory=list)
    links_total_before: int = 0
    broken_before: int = 0
    links_total_after: int = 0
    broken_after: int = 0
    newly_broken: list[tuple[str, str]] = field(default_factory=list)
    redirect_problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """No unit lost, no link newly broken, every redirect sound."""
        return not (self.missing or self.newly_broken or self.redirect_problems)


def verify(
    src: Mapping[str, Page],
    plan: Plan,
    dest: Mapping[str, Page],
    src_files: set[str],
    dest_files: set[str],
) -> Verification:
    """Check the consolidated tree `dest` against the source tree `src`.

    Args:
        src: parsed SRC pages that were analysed. dest: parsed output pages.
        src_files: every file of SRC; dest_files: every file of the output.
    """
    result = Verification()
    dest_keys = {path: {unit.key for unit in page.units} for path, page in dest.items()}
    homes = {d.path: d.covered_by for d in plan.deletions}
    for path, page in src.items():
        have: set[str] = set()
        for home in homes.get(path, (plan.final(path),)):
            have |= dest_keys.get(home, set())
        for unit in page.units:
            if unit.substantive:
                result.units_total += 1
                if unit.key in have:
                    result.units_kept += 1
                else:
                    result.missing.append((path, unit.line, unit.key[:80]))
    src_exists = src_files | folders(src_files)
    dest_exists = dest_files | folders(dest_files)
    for page in src.values():
        result.links_total_before += len(page.links)
        result.broken_before += sum(link.target not in src_exists for link in page.links)
    for page in dest.values():
        result.links_total_after += len(page.links)
        for link in page.links:
            if link.target not in dest_exists:
                result.broken_after += 1
                if link.target in src_exists:
                    result.newly_broken.append((page.path, link.href))
    for old, new in plan.redirects.items():
        if old in dest_files:
            result.redirect_problems.append(f"{old} is redirected but still exists")
        if new not in dest_files:
            result.redirect_problems.append(f"{old} redirects to {new}, which does not exist")
    for path in src:
        if path not in dest_files and path not in plan.redirects:
            result.redirect_problems.append(f"{path} was removed without a redirect")
    return result
