"""The maintainer's report of a consolidation: figures, the new layout, and every decision.

`markdown` and `html` return text (the CLI writes it); `summary` returns a rich table for the
terminal. The report is what a reviewer reads to agree or disagree with each family, so every
merge lists its sources with their kind and similarity, and every deletion what covers it.
"""

from __future__ import annotations

import html as html_escape
import posixpath
from collections import defaultdict
from collections.abc import Mapping

from markdown_it import MarkdownIt
from rich.table import Table

from .files import Tree
from .plan import Plan
from .verify import Verification

__all__ = ["figures", "html", "markdown", "summary"]

#: How many rows of each evidence list (near copies, overlapping sections, and when
#: verification failed, lost units, broken links and unsound redirects) the report lists:
#: enough to see every pattern, few enough that the report stays readable on a big tree.
EVIDENCE_ROWS = 50
#: How many of the weakest merges the report asks the reviewer to check first.
REVIEW_ROWS = 25


def _cell(text: object) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def figures(
    plan: Plan, result: Verification | None, timings: Mapping[str, float]
) -> list[tuple[str, str]]:
    """The before/after figures as (label, value) rows."""
    counts = plan.counts
    before, after = counts.get("files_before", 0), counts.get("files_after", 0)
    cut = 100.0 * (before - after) / before if before else 0.0
    rows = [
        ("files (before → after)", f"{before} → {after} ({cut:.1f} % fewer)"),
        ("Markdown pages (before → after)", f"{counts['pages_before']} → {counts['pages_after']}"),
        ("topic families merged", str(counts["families"])),
        ("pages merged into a family page", str(counts["merged_pages"])),
        ("pages deleted (fully covered)", str(counts["deleted_pages"])),
        ("redirects", str(len(plan.redirects))),
        ("substantive units in SRC", str(counts["substantive_units"])),
        ("near-duplicate page pairs", str(counts["near_duplicate_pairs"])),
        ("overlapping sections", str(counts["overlapping_sections"])),
    ]
    if result is not None:
        kept = 100.0 * result.units_kept / result.units_total if result.units_total else 100.0
        rows += [
            ("units kept", f"{result.units_kept} / {result.units_total} ({kept:.2f} %)"),
            (
                "relative links: broken before",
                f"{result.broken_before} of {result.links_total_before}",
            ),
            (
                "relative links: broken after",
                f"{result.broken_after} of {result.links_total_after}",
            ),
            ("links newly broken", str(len(result.newly_broken))),
            ("audit differences (rendered like the site)", str(len(result.differences))),
        ]
    rows += [(f"time: {step}", f"{seconds:.2f} s") for step, seconds in timings.items()]
    return rows


def summary(plan: Plan, result: Verification | None, timings: Mapping[str, float]) -> Table:
    """The figures as a rich table for the terminal."""
    table = Table(title="consolidation", show_header=False)
    for label, value in figures(plan, result, timings):
        table.add_row(label, value)
    return table


def _layout(plan: Plan, titles: Mapping[str, str]) -> list[str]:
    merges = {merge.target: merge for merge in plan.merges}
    by_folder: dict[str, list[str]] = defaultdict(list)
    for path in sorted(plan.kept):
        by_folder[posixpath.dirname(path) or "."].append(path)
    lines = []
    for folder, paths in sorted(by_folder.items()):
        lines.append(f"- `{folder}/`")
        for path in paths:
            note = ""
            if path in merges:
                merge = merges[path]
                note = f" ← topic '{merge.topic}': {len(merge.sources)} pages merged in"
            title = titles.get(path, "")
            lines.append(f"    - `{posixpath.basename(path)}` {_cell(title)}{note}")
    return lines


def markdown(
    plan: Plan,
    result: Verification | None,
    timings: Mapping[str, float],
    tree: Tree,
    titles: Mapping[str, str] | None = None,
) -> str:
    """The full report as Markdown."""
    titles = titles or {}
    out = [
        "# Consolidation report",
        "",
        f"Source tree: `{tree.root}`",
        "",
        "## Before and after",
        "",
        "| figure | value |",
        "| --- | --- |",
    ]
    out += [f"| {label} | {_cell(value)} |" for label, value in figures(plan, result, timings)]
    if result is not None and not result.ok:
        out += ["", "**Verification failed; the output was not published.**", ""]
        rows = EVIDENCE_ROWS
        out += [
            f"- unit lost: `{p}`:{line}: {_cell(text)}" for p, line, text in result.missing[:rows]
        ]
        out += [f"- link newly broken: `{p}` → `{href}`" for p, href in result.newly_broken[:rows]]
        out += [f"- {problem}" for problem in result.redirect_problems[:rows]]
        out += [f"- audit: {_cell(problem)}" for problem in result.differences[:rows]]
    out += [
        "",
        "## Proposed information architecture",
        "",
        "Every page that stays, by folder; family pages show the topic merged into them.",
        "",
    ]
    out += _layout(plan, titles)
    weakest = sorted(
        ((source.similarity, merge, source) for merge in plan.merges for source in merge.sources),
        key=lambda row: (row[0], row[2].path),
    )[:REVIEW_ROWS]
    out += [
        "",
        f"## Review first: the {len(weakest)} weakest merges",
        "",
        "The sources least similar to their family page; if one is not about the family's"
        " topic, protect it (`--protect`) or leave it out (`--exclude`) and plan again.",
        "",
        "| similarity | topic | source | merged into |",
        "| --- | --- | --- | --- |",
    ]
    out += [
        f"| {score:.2f} | {merge.topic} | `{source.path}` {_cell(titles.get(source.path, ''))} "
        f"| `{merge.target}` {_cell(titles.get(merge.target, ''))} |"
        for score, merge, source in weakest
    ]
    out += [
        "",
        "## Merges",
        "",
        "Each family keeps its most live page (live > plan > report > completion notice >"
        " archive or scratchpad copy) and carries into it every unit the others add.",
        "",
    ]
    for merge in plan.merges:
        out += [
            f"### `{merge.target}` ← '{merge.topic}'",
            "",
            f"{merge.reason}; lowest similarity {merge.similarity:.2f}.",
            "",
            "| source | kind | similarity | units carried | units already there |",
            "| --- | --- | --- | --- | --- |",
        ]
        out += [
            f"| `{s.path}` {_cell(titles.get(s.path, ''))} | {s.kind} | {s.similarity:.2f} "
            f"| {s.unique_units} | {s.shared_units} |"
            for s in merge.sources
        ]
        out.append("")
    out += ["## Deletions", "", "| page | covered by | reason |", "| --- | --- | --- |"]
    out += [
        f"| `{d.path}` | {', '.join(f'`{c}`' for c in d.covered_by)} | {_cell(d.reason)} |"
        for d in plan.deletions
    ]
    out += ["", "## Evidence", "", "### Exact duplicates", ""]
    out += [f"- {', '.join(f'`{p}`' for p in group)}" for group in plan.exact_duplicates] or [
        "none"
    ]
    out += ["", f"### Near duplicates (first {EVIDENCE_ROWS})", ""]
    out += [
        f"- `{n.first}` ≈ `{n.second}` (Jaccard {n.jaccard:.2f})"
        for n in plan.near_duplicates[:EVIDENCE_ROWS]
    ] or ["none"]
    out += ["", f"### Overlapping sections (first {EVIDENCE_ROWS})", ""]
    out += [
        f"- `{_cell(o.first)}` and `{_cell(o.second)}`: {o.shared_units} units ({o.ratio:.0%})"
        for o in plan.overlaps[:EVIDENCE_ROWS]
    ] or ["none"]
    if plan.protected:
        out += ["", "### Protected pages", ""] + [f"- `{p}`" for p in plan.protected]
    if tree.undecodable:
        out += ["", "### Pages that are not valid UTF-8 (kept byte for byte)", ""]
        out += [f"- `{path}`" for path in tree.undecodable]
    if tree.aliases:
        out += ["", "### Symbolic links to pages", ""]
        out += [
            f"- `{alias}` → `{target}`: "
            + (f"redirected to `{plan.redirects[alias]}`" if alias in plan.redirects else "copied")
            for alias, target in sorted(tree.aliases.items())
        ]
    return "\n".join(out) + "\n"


def html(text: str) -> str:
    """The Markdown report as a standalone HTML page."""
    body = MarkdownIt("commonmark").enable("table").render(text)
    return (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{html_escape.escape('Consolidation report')}</title>"
        "<style>body{font-family:sans-serif;max-width:70em;margin:auto}"
        "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:2px 6px}</style>"
        f"</head><body>\n{body}</body></html>\n"
    )
