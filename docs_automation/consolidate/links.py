"""Links of a consolidated tree: rewritten to where their target went, and carried safely.

`LinkRewriter` points every relative link of a kept or merged page at the page that now
holds its target's content (or that folder's former index page).

Link reference definitions (`[label]: url`) are carried into another page without clashes.
Labels are page-wide, and the first definition of a label wins (CommonMark). Two READMEs that
both define `[npm]` for different URLs cannot simply be concatenated: the second URL would
be silently ignored. So when a merged page brings a label the target already defines for
another URL, the label is renamed (`npm-2`) in the definition and in every link of that
page that uses it. Unit keys ignore reference labels, so the rename loses nothing.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Iterable, Mapping, Sequence
from urllib.parse import quote

from .corpus import LINK_RE, REFERENCE_RE, Page, Unit, link_path
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
