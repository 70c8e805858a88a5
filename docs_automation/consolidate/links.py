"""Links of a consolidated tree: rewritten to where their target went, and carried safely.

`LinkRewriter` points every relative link of a kept or merged page at the page that now
holds its target's content (or that folder's former index page), and every `#anchor` at the
id its heading or element has there. It edits the page at the line and column where the
parser found each destination (`corpus.Link`), so link text over several lines, links in
HTML attributes and links beside code are handled alike, and nothing else is touched.

Link reference definitions (`[label]: url`) are carried into another page without clashes.
Labels are page-wide, and the first definition of a label wins (CommonMark). Two READMEs that
both define `[npm]` for different URLs cannot simply be concatenated: the second URL would
be silently ignored. So when a merged page brings a label the target already defines for
another URL, the label is renamed (`npm-2`) in the definition and in every link of that
page that uses it. Unit keys ignore reference labels, so the rename loses nothing.
"""

from __future__ import annotations

import html
import posixpath
import re
from collections.abc import Iterable, Mapping, Sequence
from urllib.parse import quote

from ..errors import InputError
from .corpus import Link, Page, Unit
from .plan import Plan

__all__ = [
    "LinkRewriter",
    "carry_references",
    "defined_labels",
    "folders",
    "label_of",
    "relabel",
]

_DEFINITION_RE = re.compile(r"^ {0,3}\[([^\]\n]+)\]:")


def label_of(definition: str) -> str:
    """The normalised label of a definition's Markdown (case and inner spaces folded)."""
    match = _DEFINITION_RE.match(definition)
    return " ".join(match.group(1).lower().split()) if match else ""


def defined_labels(units: Sequence[Unit], sources: Sequence[str]) -> dict[str, str]:
    """Label to unit key of every reference definition among a page's units."""
    return {
        label_of(source): unit.key
        for unit, source in zip(units, sources, strict=True)
        if unit.kind == "reference"
    }


def carry_references(
    units: Sequence[Unit], sources: Sequence[str], defined: dict[str, str]
) -> tuple[dict[str, str], set[int]]:
    """Plan how a page's definitions join a page that already defines `defined`.

    Args:
        units: the merged page's units.
        sources: the Markdown of each of `units` (`unit_sources`), in the same order.
        defined: label to key on the target so far; updated with what this page adds.

    Returns:
        The labels to rename (old to new), and the indexes of definitions to leave out
        because the target already defines the same label for the same destination.
    """
    renames: dict[str, str] = {}
    skip: set[int] = set()
    for index, (unit, source) in enumerate(zip(units, sources, strict=True)):
        if unit.kind != "reference":
            continue
        label = label_of(source)
        if defined.get(label) == unit.key:
            skip.add(index)
        elif label in defined:
            number = 2
            while f"{label}-{number}" in defined:
                number += 1
            renames[label] = f"{label}-{number}"
            defined[renames[label]] = unit.key
        else:
            defined[label] = unit.key
    return renames, skip


def relabel(text: str, renames: Mapping[str, str]) -> str:
    """Rename reference labels in definitions and in full, collapsed and shortcut links."""
    for old, new in renames.items():
        label = r"\s+".join(re.escape(part) for part in old.split())
        text = re.sub(rf"^( {{0,3}}\[){label}(\]:)", rf"\g<1>{new}\g<2>", text,
                      flags=re.IGNORECASE | re.MULTILINE)  # fmt: skip
        text = re.sub(rf"\]\[{label}\]", f"][{new}]", text, flags=re.IGNORECASE)
        text = re.sub(rf"\[({label})\](?:\[\])?(?![\[(:])", rf"[\g<1>][{new}]", text,
                      flags=re.IGNORECASE)  # fmt: skip
    return text


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
    """Rewrites relative links so that they point where their target's content went.

    Args:
        plan: the plan whose redirects say where each page went.
        src_files: every file of SRC (relative paths).
        dest_files: every file the output will have.
        anchors: `(SRC page, anchor)` to `(output page, anchor)` for every anchor whose page
            moved or whose id changed (a heading merged under a slug already taken); an
            anchor not listed keeps its id on the page its content went to.
    """

    def __init__(
        self,
        plan: Plan,
        src_files: set[str],
        dest_files: set[str],
        anchors: Mapping[tuple[str, str], tuple[str, str]] | None = None,
    ) -> None:
        self.plan = plan
        self.src_files = src_files
        self.src_dirs = folders(src_files)
        self.dest_dirs = folders(dest_files)
        self.anchors = dict(anchors or {})
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

    def href(self, link: Link, source: str, dest: str) -> str:
        """Return the destination `link` of page `source` must have on page `dest`.

        Returns `link.href` itself when nothing changes.
        """
        bare = link.href
        target, is_dir = link.target, False
        if target in self.src_files:
            final = self.plan.final(target)
        elif target in self.src_dirs and target not in self.dest_dirs:
            final = self._folder_home(target)
        else:
            # A folder that survives, or a link already broken in SRC: same place as before.
            final, is_dir = target, target in self.src_dirs
        fragment = link.fragment
        if fragment and (target, fragment) in self.anchors:
            final, fragment = self.anchors[(target, fragment)]
        if source == dest and final == target and fragment == link.fragment:
            return bare
        anchor = "#" + quote(fragment, safe="/._-~+:") if fragment else ""
        if bare.startswith("#") and final == dest:
            return anchor or bare
        cut = min((i for i in (bare.find("#"), bare.find("?")) if i >= 0), default=len(bare))
        query = bare[cut:].split("#", 1)[0] if bare[cut:].startswith("?") else ""
        if bare.startswith("#"):
            query = ""
        relative = posixpath.relpath(final, posixpath.dirname(dest) or ".")
        if is_dir and bare[:cut].endswith("/"):
            relative += "/"
        return quote(relative, safe="/._-~+") + query + (anchor if "#" in bare else "")

    def rewrite(self, page: Page, dest: str) -> str:
        """`page`'s text with every link rewritten as it must read on page `dest`.

        Only the characters of each destination the parser found change (code, and text
        that merely looks like a link, are never touched).

        Raises:
            InputError: a link that must change could not be located in the page (the
                message names the page, line and destination).
        """
        edits: list[tuple[int, int, int, str]] = []
        for link in page.links:
            new = self.href(link, page.path, dest)
            if new == link.href:
                continue
            if link.column < 0:
                raise InputError(
                    f"{page.path}:{link.line}: cannot locate the link to {link.href!r} "
                    "in the page to rewrite it; write it on one line and run again"
                )
            if link.html:
                new = html.escape(new, quote=True)
            edits.append((link.line, link.column, link.length, new))
        if not edits:
            return page.text
        lines = page.text.split("\n")
        for line, column, length, new in sorted(edits, reverse=True):
            text = lines[line - 1]
            lines[line - 1] = text[:column] + new + text[column + length :]
        return "\n".join(lines)
