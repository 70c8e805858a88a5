"""The consolidated tree verified against its source: no unit lost, no link broken.

`verify` is pure. It is handed the output parsed with the same parser as the source and
checks the three promises: every substantive unit of SRC is on the page that now holds it,
no link that worked in SRC is broken, and every page that left has a redirect to a page
that exists.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from .corpus import Page
from .links import folders
from .plan import Plan

__all__ = ["Verification", "verify"]

#: Characters of a lost unit's key quoted in `Verification.missing`: enough to find the unit
#: in its page with a search, short enough for one line of the report.
_QUOTE_CHARS = 80


@dataclass
class Verification:
    """What `verify` found. The apply step publishes the output only when `ok`.

    Links count once per occurrence; a link is broken when its target (a file or folder)
    does not exist in its tree, or when its `#anchor` is not an id of its target page. An
    anchor link is newly broken when the anchor was an id, in SRC, of a page whose content
    the target now holds.

    Attributes:
        units_total: substantive units in the analysed SRC pages.
        units_kept: those found on the output page that now holds them.
        missing: each lost unit as `(SRC path, 1-based line, the start of its key)`.
        links_total_before: relative links in the analysed SRC pages.
        broken_before: those already broken in SRC (not the consolidator's doing).
        links_total_after: relative links in the output pages.
        broken_after: those broken in the output, including the ones broken before.
        newly_broken: each link broken in the output whose target existed in SRC, as
            `(output path, href as written)`.
        redirect_problems: one sentence per unsound redirect (a redirected page still
            exists, a redirect to nothing, or a page removed without a redirect).
        differences: what the independent audit (`consolidate.audit`, the pages rendered
            like the site) found, one `SRC path:line: problem` each.
    """

    units_total: int = 0
    units_kept: int = 0
    missing: list[tuple[str, int, str]] = field(default_factory=list)
    links_total_before: int = 0
    broken_before: int = 0
    links_total_after: int = 0
    broken_after: int = 0
    newly_broken: list[tuple[str, str]] = field(default_factory=list)
    redirect_problems: list[str] = field(default_factory=list)
    differences: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """No unit lost, no link newly broken, every redirect sound, no audit difference."""
        return not (self.missing or self.newly_broken or self.redirect_problems or self.differences)


def verify(
    src: Mapping[str, Page],
    plan: Plan,
    dest: Mapping[str, Page],
    src_files: set[str],
    dest_files: set[str],
) -> Verification:
    """Check the consolidated tree `dest` against the source tree `src`.

    Args:
        src: parsed SRC pages that were analysed, by path.
        plan: the plan the output was rendered from.
        dest: the output pages, parsed with the same parser and settings, by path.
        src_files: every file of SRC, by path relative to it.
        dest_files: every file of the output, by path relative to it.

    Returns:
        What was found; publish the output only when its `ok` is true.
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
                    result.missing.append((path, unit.line, unit.key[:_QUOTE_CHARS]))
    src_exists = src_files | folders(src_files)
    dest_exists = dest_files | folders(dest_files)
    for page in src.values():
        result.links_total_before += len(page.links)
        for link in page.links:
            if link.target not in src_exists or (
                link.fragment
                and link.target in src
                and link.fragment not in src[link.target].anchors
            ):
                result.broken_before += 1
    # The anchors each output page had in SRC: its own, and those of the pages merged into it.
    had: dict[str, set[str]] = {}
    for path, page in src.items():
        had.setdefault(plan.final(path), set()).update(page.anchors)
    for page in dest.values():
        result.links_total_after += len(page.links)
        for link in page.links:
            if link.target not in dest_exists:
                result.broken_after += 1
                if link.target in src_exists:
                    result.newly_broken.append((page.path, link.href))
            elif (
                link.fragment
                and link.target in dest
                and link.fragment not in dest[link.target].anchors
            ):
                result.broken_after += 1
                if link.fragment in had.get(link.target, set()):
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
