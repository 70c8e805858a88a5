"""The consolidation plan: what to keep, what to merge into what, what to delete, and why.

`make_plan` is pure: it takes parsed pages and their topic profiles and returns a `Plan`,
whose `to_json` is the PLAN.json contract (paths relative to SRC). The rules it enforces:

- a page is deleted only when every unit of it, however short, is already in its
  `covered_by` pages (exact duplicates and contained pages), with links that lead to the
  same place (`identity`), and every anchor of it that a link points at is an anchor of
  the page that covers it too, on the same heading over some of the same content;
- a family's sources merge into its target (the most live page), which then carries every
  unit of theirs that it lacked;
- protected pages are never deleted or merged away, and are never merge targets or the
  destination of a redirect;
- every deleted or merged page gets a redirect to the page that now holds its content.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from .corpus import Page, Unit
from .nearcopies import NearDuplicate
from .topics import Family, Profile, hidden

__all__ = [
    "Deletion",
    "Merge",
    "MergeSource",
    "Overlap",
    "Plan",
    "identity",
    "make_plan",
    "same_section",
]

OVERLAP_MIN_UNITS = 3
"""Fewest units two sections of different pages must share to be reported as an overlap."""
OVERLAP_MIN_SHARE = 0.5
"""Share of the smaller section's units that must be shared: half, so one stray common
sentence never makes an overlap."""
_RATIO_DIGITS = 3  # enough to tell overlaps apart in the plan, short enough to read
# Containers listed per contained page in `Plan.contained`: the evidence a reviewer needs;
# a short page of common units can sit inside dozens of pages, which would swamp PLAN.json.
_CONTAINERS_LISTED = 3


@dataclass(frozen=True, slots=True)
class MergeSource:
    """One page merged into a target, with its topic similarity and what it brings."""

    path: str
    kind: str
    similarity: float
    unique_units: int
    shared_units: int


@dataclass(frozen=True, slots=True)
class Merge:
    """A topic family: `sources` merge into `target`."""

    target: str
    topic: str
    sources: tuple[MergeSource, ...]

    @property
    def similarity(self) -> float:
        """The weakest source's similarity to the target (the family's coherence floor)."""
        return min(source.similarity for source in self.sources)

    @property
    def reason(self) -> str:
        """One sentence a maintainer can check against the pages."""
        kinds = Counter(source.kind for source in self.sources)
        listed = ", ".join(f"{count} {kind}" for kind, count in sorted(kinds.items()))
        if self.topic.startswith("near copies"):
            return f"{self.topic}: their text is nearly the same ({listed})"
        return f"same topic '{self.topic}' named in every file name or title ({listed})"


@dataclass(frozen=True, slots=True)
class Deletion:
    """A page whose every substantive unit is already in `covered_by`."""

    path: str
    covered_by: tuple[str, ...]
    reason: str


@dataclass(frozen=True, slots=True)
class Overlap:
    """Two sections of different pages that share most of their units."""

    first: str
    second: str
    shared_units: int
    ratio: float


@dataclass
class Plan:
    """The whole plan for one tree: what `make_plan` decided, and the evidence for it.

    Every path is POSIX and relative to SRC. The first five fields are decisions; the rest
    is evidence for the report. `to_json` is the PLAN.json document.

    Attributes:
        merges: topic families, each of whose sources merge into its target page.
        deletions: pages removed because every substantive unit of theirs is already on
            the page(s) that cover them.
        redirects: each removed (merged or deleted) page to the page that now holds its
            content; `final` follows it.
        kept: the analysed pages that stay, in SRC order.
        protected: the pages `--protect` kept from being deleted, merged away or merged into.
        near_duplicates: page pairs whose text is mostly the same (estimated Jaccard).
        exact_duplicates: groups of pages with exactly the same substantive units.
        contained: `(page, container)` pairs: every unit of the page is also in the
            container (only the first few containers of each page are listed).
        overlaps: sections of different pages that share most of their units.
        counts: before and after figures by name (`pages_before`, `pages_after`,
            `families`, `merged_pages`, `deleted_pages`, `substantive_units`, ...), counts of
            pages, units or pairs; `analyse` adds `files_before` and `files_after`.
    """

    merges: list[Merge] = field(default_factory=list)
    deletions: list[Deletion] = field(default_factory=list)
    redirects: dict[str, str] = field(default_factory=dict)
    kept: list[str] = field(default_factory=list)
    protected: list[str] = field(default_factory=list)
    near_duplicates: list[NearDuplicate] = field(default_factory=list)
    exact_duplicates: list[list[str]] = field(default_factory=list)
    contained: list[tuple[str, str]] = field(default_factory=list)
    overlaps: list[Overlap] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)

    def final(self, path: str) -> str:
        """Where the content of a SRC page lives after apply."""
        return self.redirects.get(path, path)

    def to_json(self) -> dict[str, Any]:
        """The PLAN.json document (merges, deletions and redirects first, then evidence)."""
        return {
            "merges": [
                {
                    "target": merge.target,
                    "sources": [source.path for source in merge.sources],
                    "reason": merge.reason,
                    "similarity": merge.similarity,
                    "topic": merge.topic,
                    "details": [asdict(source) for source in merge.sources],
                }
                for merge in self.merges
            ],
            "deletions": [
                {"path": d.path, "covered_by": list(d.covered_by), "reason": d.reason}
                for d in self.deletions
            ],
            "redirects": dict(sorted(self.redirects.items())),
            "kept": sorted(self.kept),
            "protected": sorted(self.protected),
            "counts": self.counts,
            "near_duplicates": [asdict(pair) for pair in self.near_duplicates],
            "exact_duplicates": self.exact_duplicates,
            "contained": [{"path": a, "container": b} for a, b in self.contained],
            "overlapping_sections": [asdict(overlap) for overlap in self.overlaps],
        }


def identity(unit: Unit, page: str, final: Callable[[str], str]) -> str:
    """What makes two units the same fact: the same key, and links that lead to the same place.

    A reader who follows a link of `See [the report](a.md)` and of `See [the report](b.md)`
    lands on different pages: they are different facts, and one must not stand in for the
    other (the link would lead elsewhere). A link leads to where its target's content goes
    (`final`, the plan's redirects as far as they are known); one that leads back to the page
    the unit itself ends up on is written `@`, so that a page and its copy that each link to
    themselves agree. A link to an anchor keeps its SRC page and anchor (the heading may be
    renamed where it lands), and any other URL stays as written.

    Args:
        unit: a unit of `page`.
        page: the path of the page that holds the unit.
        final: where the content of a SRC page goes (`Plan.final`).
    """
    if not unit.targets:
        return unit.key
    home = final(page)
    leads = []
    for target, fragment in unit.targets:
        if not target:
            leads.append(fragment)
        elif fragment:
            leads.append(f"{target}#{fragment}")
        else:
            there = final(target)
            leads.append("@" if there == home else there)
    return unit.key + "\x1e" + "\x1f".join(leads)


def same_section(page: Page, section: int, other: Page) -> str:
    """The anchor of `other`'s heading with the text of `page`'s heading `section` over at
    least one of the units under it (any, when it has none), or "" when `other` has none."""
    heading = page.sections[section].heading
    keys = {u.key for u in page.units if u.section == section and u.substantive}
    for number, candidate in enumerate(other.sections):
        if not candidate.level or candidate.heading != heading:
            continue
        if not keys or any(u.section == number and u.key in keys for u in other.units):
            return candidate.anchor
    return ""


def _index(keys: Sequence[set[str]]) -> dict[str, list[int]]:
    index: dict[str, list[int]] = defaultdict(list)
    for number, page_keys in enumerate(keys):
        for key in page_keys:
            index[key].append(number)
    return index


def _containers(keys: set[str], index: Mapping[str, list[int]], cap: int) -> set[int]:
    """Pages holding every key, by intersecting posting lists from the rarest up."""
    lengths = {key: len(index[key]) for key in keys}
    if min(lengths.values()) == 1:
        return set()  # a unit no other page has: nothing else can hold them all (the usual)
    found: set[int] | None = None
    for key in sorted(keys, key=lengths.__getitem__):
        if found is None:
            if len(index[key]) > cap:
                return set()  # only boilerplate in common; not worth the quadratic cost
            found = set(index[key])
        else:
            found &= set(index[key])
        if not found:
            break
    return found or set()


def _overlaps(
    pages: Sequence[Page], index: Mapping[str, list[int]], cap: int, min_units: int
) -> list[Overlap]:
    """Section pairs across pages sharing at least `min_units` units and half the smaller."""
    common = {key for key, holders in index.items() if 2 <= len(holders) <= cap}
    sizes: dict[int, Counter[int]] = {}
    where: dict[str, set[tuple[int, int]]] = defaultdict(set)
    for number, page in enumerate(pages):
        spots = [(u.key, u.section) for u in page.units if u.substantive and u.key in common]
        if spots:  # most pages share nothing; count section sizes only where needed
            sizes[number] = Counter(u.section for u in page.units if u.substantive)
            for key, section in spots:
                where[key].add((number, section))
    pairs: Counter[tuple[tuple[int, int], tuple[int, int]]] = Counter()
    for places in where.values():
        ordered = sorted(places)
        for i, first in enumerate(ordered):
            for second in ordered[i + 1 :]:
                if first[0] != second[0]:
                    pairs[(first, second)] += 1
    found = []
    for (first, second), shared in pairs.items():
        ratio = shared / min(sizes[first[0]][first[1]], sizes[second[0]][second[1]])
        if shared >= min_units and ratio >= OVERLAP_MIN_SHARE:
            label_a = f"{pages[first[0]].path}#{pages[first[0]].sections[first[1]].heading}"
            label_b = f"{pages[second[0]].path}#{pages[second[0]].sections[second[1]].heading}"
            found.append(Overlap(label_a, label_b, shared, round(min(ratio, 1.0), _RATIO_DIGITS)))
    return sorted(found, key=lambda o: (-o.shared_units, o.first, o.second))


def _lost_anchors(
    path: str,
    home: str,
    linked: Mapping[str, set[str]],
    by_path: Mapping[str, int],
    pages: Sequence[Page],
) -> set[str]:
    """Anchors of `path` that links point at and that page `home` does not have, or has
    on another heading (another text, or over none of the blocks it had): deleting `path`
    would break them or send them elsewhere (it is merged instead, which carries its
    linked headings)."""
    wanted = linked.get(path, set())
    if not wanted or home not in by_path:
        return set()
    page, other = pages[by_path[path]], pages[by_path[home]]
    lost = wanted - other.anchors
    for number, section in enumerate(page.sections):
        landed = section.level and section.anchor in wanted - lost
        if landed and same_section(page, number, other) != section.anchor:
            lost.add(section.anchor)
    return lost


def make_plan(
    pages: Sequence[Page],
    profiles: Sequence[Profile],
    families: Sequence[Family],
    near: Sequence[NearDuplicate],
    protected: set[str],
    posting_cap: int = 50,
) -> Plan:
    """Decide the fate of every page.

    Args:
        pages: parsed pages; `profiles[i]` must describe `pages[i]`.
        families: topic families of unprotected pages (see `topics.families`).
        near: near-duplicate pairs, reported as evidence.
        protected: paths that must stay where they are.
        posting_cap: a unit shared by more pages than this is boilerplate; it does not make
            pages containers of each other (bounds the cost on big trees).

    Returns:
        The plan; `Plan.counts` has the before/after figures.
    """
    by_path = {page.path: number for number, page in enumerate(pages)}
    # Where family members go is known before any page is judged a copy of another; where
    # the pages outside families go is not, so their links count as they are (stricter).
    moved = {path: family.members[0] for family in families for path in family.members[1:]}

    def final(path: str) -> str:
        return moved.get(path, path)

    keys = [
        {identity(unit, page.path, final) for unit in page.units if unit.substantive}
        for page in pages
    ]
    linked: dict[str, set[str]] = defaultdict(set)  # page -> the anchors links point at
    for page in pages:
        for link in page.links:
            if link.fragment:
                linked[link.target].add(link.fragment)
    index = _index(keys)
    plan = Plan(protected=sorted(protected), near_duplicates=list(near))
    exact: dict[frozenset[str], list[str]] = defaultdict(list)
    for page, page_keys in zip(pages, keys, strict=True):
        if page_keys:
            exact[frozenset(page_keys)].append(page.path)
    plan.exact_duplicates = sorted(sorted(group) for group in exact.values() if len(group) > 1)
    containers = {
        number: found - {number}
        for number in range(len(pages))
        if keys[number] and (found := _containers(keys[number], index, posting_cap))
    }
    plan.contained = sorted(
        (pages[number].path, pages[other].path)
        for number, found in containers.items()
        for other in sorted(found)[:_CONTAINERS_LISTED]
    )
    gone: set[str] = set()
    for family in families:
        target = family.members[0]
        carried = set(keys[by_path[target]])
        sources = []
        for path, score in zip(family.members[1:], family.similarity[1:], strict=True):
            own = keys[by_path[path]]
            unique = own - carried
            profile = profiles[by_path[path]]
            if not unique and not _lost_anchors(path, target, linked, by_path, pages):
                if own == keys[by_path[target]]:
                    why = "exact duplicate"
                elif own <= keys[by_path[target]]:
                    why = "every unit is also on the target"
                else:
                    why = "every unit is on the target or carried into it by an earlier merge"
                reason = f"{why} (topic '{family.topic}')"
                plan.deletions.append(Deletion(path, (target,), reason))
            else:
                shared = len(own) - len(unique)
                sources.append(MergeSource(path, profile.kind, score, len(unique), shared))
            carried |= own
            plan.redirects[path] = target
            gone.add(path)
        if sources:
            plan.merges.append(Merge(target, family.topic, tuple(sources)))
    # Pages outside every family: delete the ones another surviving page fully contains,
    # least preferred first, so of two exact copies the better one stays.
    order = sorted(
        (number for number in containers if pages[number].path not in gone),
        key=lambda number: profiles[number].rank(),
        reverse=True,
    )
    homes = set(plan.redirects.values())  # pages others now point to; they must stay
    for number in order:
        path = pages[number].path
        if path in protected or path in homes:
            continue
        # A protected page is never a redirect's destination: a live page identical to its
        # frozen copy (`versions/1.0/...`) must stay live, not be sent into the old version.
        # Nor is a hidden page the destination of one that is not (see `topics.hidden`).
        holders = [
            other
            for other in containers[number]
            if pages[other].path not in gone
            and pages[other].path not in protected
            and hidden(pages[other].path) <= hidden(path)
        ]
        if not holders:
            continue
        best = min(holders, key=lambda other: profiles[other].rank())
        home = plan.final(pages[best].path)
        if _lost_anchors(path, home, linked, by_path, pages):
            continue  # a link points at an id of this page that its home does not have
        same = keys[best] == keys[number]
        reason = "exact duplicate" if same else "every unit is also in a larger page"
        plan.deletions.append(Deletion(path, (home,), f"{reason} ({pages[best].path})"))
        plan.redirects[path] = home
        homes.add(home)
        gone.add(path)
    plan.kept = [page.path for page in pages if page.path not in gone]
    plan.overlaps = _overlaps(pages, index, posting_cap, min_units=OVERLAP_MIN_UNITS)
    plan.counts = {
        "pages_before": len(pages),
        "pages_after": len(plan.kept),
        "merged_pages": sum(len(merge.sources) for merge in plan.merges),
        "deleted_pages": len(plan.deletions),
        "families": len(plan.merges),
        "substantive_units": sum(u.substantive for page in pages for u in page.units),
        "near_duplicate_pairs": len(near),
        "overlapping_sections": len(plan.overlaps),
    }
    return plan
