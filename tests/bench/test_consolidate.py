"""Smoke run of the consolidator benchmark (asserts nothing about speed)."""

from __future__ import annotations

import json

import pytest

from bench.consolidate import RESULTS, grow, main

pytestmark = pytest.mark.bench


def test_smoke_run_writes_a_row_per_size_with_every_unit_kept() -> None:
    assert main(["--smoke"]) == 0
    summary = json.loads((RESULTS / "consolidate-smoke.json").read_text())
    assert [row["files"] for row in summary["rows"]] == [40, 80]
    for row in summary["rows"]:
        kept, total = row["units_kept"].split("/")
        assert kept == total and row["newly_broken_links"] == 0
        # Both of issue 12's speed ratios are measured against a parse of the same run.
        assert row["bare_parse_s"] > 0
        assert row["plan_over_bare_parse"] == pytest.approx(
            row["plan_s"] / row["bare_parse_s"], rel=0.01
        )
        assert row["apply_over_bare_parse"] > 0
        # LSH finds what comparing every pair finds, bar a rare miss near the threshold.
        lsh, every = row["near_dup_pairs_lsh"], row["near_dup_pairs_all_pairs"]
        assert 0.9 * every <= lsh <= every


def test_grown_copies_keep_paths_sizes_and_links_but_share_no_words() -> None:
    pages = {"docs/a.md": "# Alpha\n\nSee [b](b.md).\n", "docs/b.md": "# Beta\n"}
    grown = grow(pages, 5)
    assert list(grown)[:2] == ["docs/a.md", "docs/b.md"]
    moved = [path for path in grown if path.startswith("copy-1/")]
    assert len(grown) == 5 and len(moved) == 2 and all(p.endswith(".md") for p in moved)
    text = grown[moved[0]]
    assert len(text) == len(pages["docs/a.md"]) and "Alpha" not in text
    assert "(" + moved[1].rsplit("/", 1)[1] + ")" in text  # the link follows its target
