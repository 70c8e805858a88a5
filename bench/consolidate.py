"""`python -m bench.consolidate [--smoke]`: how the consolidator's time grows with the tree.

The shared bee-hive tree is grown to 1,000 and 10,000 pages: copy 0 is the tree itself, and
copy k (under `copy-k/`) is the tree with every letter but `m` and `d` put through a
permutation seeded by k. Each copy keeps the tree's structure, sizes, topics, duplicates and
links (paths are permuted like the text, and `.md` survives), but shares no word with the
others, so a copy behaves like another project's docs in the same tree rather than like
10,000 duplicates.

For each size it times `plan` (read the tree, parse, analyse; wall and CPU seconds, with the
machine's load average, since other work on the machine stretches wall time) and `apply`
(render, write, re-read, verify), each also as a ratio to a bare single-process parse of the
same files measured in the same run (`MarkdownIt("commonmark").enable("table").parse` of
every page; issue 12's floors: plan at most 0.5, apply at most 1.0). As the baseline for
near-duplicate search, measured in the same run, it times
near-duplicate search by comparing every pair of pages' MinHash signatures (numpy,
vectorised) against the LSH lookup the consolidator uses. The growth exponent between two
sizes is log(t2/t1) / log(n2/n1): 1 is linear, 2 is quadratic. Results print as a table
and go to bench/results/ as JSON.
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import os
import random
import resource
import shutil
import string
import tempfile
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from markdown_it import MarkdownIt
from rich.console import Console
from rich.table import Table

from docs_automation.consolidate.engine import Settings, analyse, apply
from docs_automation.consolidate.files import read_tree
from docs_automation.consolidate.nearcopies import near_duplicates

__all__ = ["all_pairs", "bare_parse", "grow", "main", "measure"]

ROOT = Path(__file__).resolve().parent.parent
SHARED_CORPUS = ROOT.parent / "shared" / "corpus" / "bee-hive"
SMOKE_CORPUS = ROOT / "docs" / "examples" / "messy-tree"
RESULTS = ROOT / "bench" / "results"


def _cipher(seed: int) -> dict[int, int]:
    """A letter permutation that keeps `m` and `d` (so `.md` stays `.md`) and case."""
    letters = [c for c in string.ascii_lowercase if c not in "md"]
    shuffled = letters[:]
    random.Random(seed).shuffle(shuffled)
    table = {ord(a): ord(b) for a, b in zip(letters, shuffled, strict=True)}
    table |= {ord(a.upper()): ord(b.upper()) for a, b in zip(letters, shuffled, strict=True)}
    return table


def grow(pages: dict[str, str], size: int) -> dict[str, str]:
    """Grow a tree of Markdown pages to exactly `size` pages (see the module docstring)."""
    if not pages:
        raise ValueError("cannot grow an empty tree")
    out: dict[str, str] = {}
    copy = 0
    while len(out) < size:
        table = _cipher(copy) if copy else {}
        for path, text in sorted(pages.items()):
            if len(out) == size:
                break
            if copy:
                out[f"copy-{copy}/{path.translate(table)}"] = text.translate(table)
            else:
                out[path] = text
        copy += 1
    return out


def all_pairs(pages: Sequence[tuple[str, np.ndarray]], threshold: float) -> int:
    """The baseline: compare every pair of MinHash signatures; return the pairs found."""
    if len(pages) < 2:
        return 0
    signatures = np.stack([values for _, values in pages])
    found = 0
    for row in range(len(pages) - 1):
        agree = (signatures[row + 1 :] == signatures[row]).mean(axis=1)
        found += int((agree >= threshold).sum())
    return found


def bare_parse(texts: Iterable[str]) -> tuple[float, float]:
    """Wall and CPU seconds of a bare single-process markdown-it parse of every text (the
    baseline). CPU seconds compare fairly when other work on the machine takes cores."""
    md = MarkdownIt("commonmark").enable("table")
    clock, cpu = time.perf_counter(), time.process_time()
    for text in texts:
        md.parse(text)
    return time.perf_counter() - clock, time.process_time() - cpu


def _cpu() -> float:
    """CPU seconds used so far by this process and its finished children (the parse workers)."""
    own, children = (
        resource.getrusage(resource.RUSAGE_SELF),
        resource.getrusage(resource.RUSAGE_CHILDREN),
    )
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def _write(root: Path, pages: dict[str, str]) -> None:
    for path, text in pages.items():
        target = root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8", errors="surrogateescape")


def measure(pages: dict[str, str], size: int, work: Path, settings: Settings) -> dict[str, Any]:
    """Grow to `size`, then time plan, apply and both near-duplicate searches (seconds)."""
    src, dest = work / f"src-{size}", work / f"dest-{size}"
    grown = grow(pages, size)
    _write(src, grown)
    bare_s, bare_cpu = bare_parse(grown.values())
    clock, cpu, load = time.perf_counter(), _cpu(), os.getloadavg()[0]
    analysis = analyse(read_tree(src), settings)
    plan_s, plan_cpu = time.perf_counter() - clock, _cpu() - cpu
    # Both searches run as they do inside `analyse`: with the cycle collector paused, so
    # that neither pays for walking the million units the analysis keeps alive.
    gc.disable()
    try:
        clock = time.perf_counter()
        sketches = [(item.path, item.minhash) for item in analysis.profiles if item.units]
        lsh_pairs = len(near_duplicates(sketches, settings.near_duplicate_threshold))
        lsh_s = time.perf_counter() - clock
        clock = time.perf_counter()
        baseline_pairs = all_pairs(sketches, settings.near_duplicate_threshold)
        baseline_s = time.perf_counter() - clock
    finally:
        gc.enable()
    clock = time.perf_counter()
    result = apply(analysis, dest)
    apply_s = time.perf_counter() - clock
    counts = analysis.plan.counts
    shutil.rmtree(src)
    shutil.rmtree(dest)
    return {
        "files": size,
        "files_after": counts["files_after"],
        "units_kept": f"{result.units_kept}/{result.units_total}",
        "newly_broken_links": len(result.newly_broken),
        "parse_s": round(analysis.timings["parse"], 4),
        "plan_s": round(plan_s, 4),
        "plan_cpu_s": round(plan_cpu, 4),
        "load_average_before_plan": round(load, 2),
        "apply_s": round(apply_s, 4),
        "bare_parse_s": round(bare_s, 4),
        "plan_over_bare_parse": round(plan_s / bare_s, 3),
        "apply_over_bare_parse": round(apply_s / bare_s, 3),
        "bare_parse_cpu_s": round(bare_cpu, 4),
        "plan_cpu_over_bare_parse_cpu": round(plan_cpu / bare_cpu, 3),
        "near_dup_lsh_s": round(lsh_s, 4),
        "near_dup_all_pairs_s": round(baseline_s, 4),
        "all_pairs_over_lsh": round(baseline_s / lsh_s, 1) if lsh_s else None,
        "near_dup_pairs_lsh": lsh_pairs,
        "near_dup_pairs_all_pairs": baseline_pairs,
    }


#: The columns printed (all fields go to the JSON file).
_COLUMNS = (
    ("files", "files"),
    ("files_after", "after"),
    ("units_kept", "units kept"),
    ("plan_s", "plan"),
    ("plan_cpu_s", "plan CPU"),
    ("load_average_before_plan", "load"),
    ("apply_s", "apply"),
    ("bare_parse_s", "bare parse"),
    ("plan_over_bare_parse", "plan/parse"),
    ("apply_over_bare_parse", "apply/parse"),
    ("near_dup_lsh_s", "LSH"),
    ("near_dup_all_pairs_s", "all pairs"),
    ("all_pairs_over_lsh", "ratio"),
)


def _show(value: object) -> str:
    return f"{value:.2f}" if isinstance(value, float) else str(value)


def _growth(rows: list[dict[str, Any]], key: str) -> float | None:
    first, last = rows[0], rows[-1]
    if first[key] <= 0 or last["files"] == first["files"]:
        return None
    return round(math.log(last[key] / first[key]) / math.log(last["files"] / first["files"]), 2)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark; print the table and write bench/results/consolidate-*.json."""
    parser = argparse.ArgumentParser(prog="python -m bench.consolidate", description=__doc__)
    parser.add_argument("--smoke", action="store_true", help="tiny sizes from the example tree")
    parser.add_argument("--src", type=Path, help="tree to grow (default: the shared corpus)")
    parser.add_argument("--sizes", type=int, nargs="+", help="page counts to measure")
    args = parser.parse_args(argv)
    src = args.src or (SMOKE_CORPUS if args.smoke else SHARED_CORPUS)
    sizes = args.sizes or ([40, 80] if args.smoke else [1_000, 10_000])
    if not src.is_dir():
        parser.error(f"{src} is not a folder; pass --src or run beside ../shared")
    pages = read_tree(src).pages
    settings = Settings()
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-consolidate-") as work:
        for size in sizes:
            rows.append(measure(pages, size, Path(work), settings))
    summary = {
        "source": str(src),
        "rows": rows,
        "growth_exponent_plan": _growth(rows, "plan_s"),
        "growth_exponent_plan_cpu": _growth(rows, "plan_cpu_s"),
        "growth_exponent_near_dup_lsh": _growth(rows, "near_dup_lsh_s"),
        "growth_exponent_near_dup_all_pairs": _growth(rows, "near_dup_all_pairs_s"),
    }
    table = Table(title=f"consolidate: grown from {src.name} (seconds)")
    for _, label in _COLUMNS:
        table.add_column(label, justify="right")
    for row in rows:
        table.add_row(*(_show(row[key]) for key, _ in _COLUMNS))
    console = Console()
    console.print(table)
    console.print({k: v for k, v in summary.items() if k.startswith("growth")})
    RESULTS.mkdir(parents=True, exist_ok=True)
    name = "consolidate-smoke.json" if args.smoke else f"consolidate-{int(time.time())}.json"
    (RESULTS / name).write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
