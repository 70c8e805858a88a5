"""The consolidator's rules, each on a small tree built here, plus the whole shared corpus."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

from docs_automation.cli import main
from docs_automation.consolidate.corpus import parse_page
from docs_automation.consolidate.engine import Settings, analyse, apply
from docs_automation.consolidate.files import read_tree
from docs_automation.consolidate.links import folders
from docs_automation.consolidate.plan import Deletion
from docs_automation.consolidate.render import render
from docs_automation.consolidate.verify import verify
from docs_automation.errors import SettingsError, VerificationError
from tests.procs import ROOT

pytestmark = pytest.mark.unit  # small trees made in the tests; no sockets

# A small tree with one topic written five ways (guide, plan, report, completion notice and
# scratchpad copy, sharing few sentences), an exact copy, a contained page, and an unrelated page.
TREE = {
    "docs/guides/dashboard.md": """# Dashboard guide

The dashboard shows every agent and its current task.

Open the dashboard at port 8000 after starting the server.

See the [billing page](../billing.md) and the [plan](../plans/DASHBOARD_PLAN.md).
""",
    "docs/plans/DASHBOARD_PLAN.md": """# Dashboard plan

- Add a filter for idle agents to the dashboard
- Show task latency as a sparkline
""",
    "docs/reports/dashboard_validation_report.md": """# Dashboard validation report

All twelve dashboard panels rendered in Chromium and Firefox.

The dashboard shows every agent and its current task.
""",
    "DASHBOARD_COMPLETE.md": """# Dashboard complete

The dashboard work finished on the second sprint with the sparkline shipped.
""",
    "docs/archive/scratchpad/dashboard_notes.md": """# Dashboard notes

Idle agents flicker on the dashboard when the socket reconnects.
""",
    "docs/billing.md": """# Billing

Invoices are generated on the first day of each month.

Refunds go back to the original card within five days.
""",
    "docs/archive/billing_copy.md": """# Billing

Invoices are generated on the first day of each month.

Refunds go back to the original card within five days.
""",
    "docs/archive/refunds.md": """# Refunds

Refunds go back to the original card within five days.
""",
    "docs/images/panel.txt": "not markdown, copied as it is\n",
}

FAMILY = {
    "docs/plans/DASHBOARD_PLAN.md",
    "docs/reports/dashboard_validation_report.md",
    "DASHBOARD_COMPLETE.md",
    "docs/archive/scratchpad/dashboard_notes.md",
}


def make_tree(root: Path, files: dict[str, str]) -> Path:
    for path, text in files.items():
        target = root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
    return root


def digest(root: Path) -> str:
    sha = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        sha.update(path.relative_to(root).as_posix().encode() + b"\0" + path.read_bytes())
    return sha.hexdigest()


@pytest.fixture
def src(tmp_path: Path) -> Path:
    return make_tree(tmp_path / "src", TREE)


def plan_of(src: Path, tmp_path: Path, *extra: str) -> dict:  # type: ignore[type-arg]
    out = tmp_path / "plan.json"
    assert main(["consolidate", str(src), "--plan", str(out), "--quiet", *extra]) == 0
    return json.loads(out.read_text())  # type: ignore[no-any-return]


def apply_to(src: Path, dest: Path, *extra: str) -> int:
    return main(["consolidate", str(src), "--apply", "--out", str(dest), "--quiet", *extra])


def test_plan_json_has_the_contract_fields_with_paths_relative_to_src(src: Path, tmp_path: Path):
    plan = plan_of(src, tmp_path)
    assert {"merges", "deletions", "redirects"} <= set(plan)
    for merge in plan["merges"]:
        assert {"target", "sources", "reason", "similarity"} <= set(merge)
    for deletion in plan["deletions"]:
        assert {"path", "covered_by", "reason"} <= set(deletion)
    every = {p for m in plan["merges"] for p in [m["target"], *m["sources"]]} | set(
        plan["redirects"]
    )
    assert every <= set(TREE)


def test_report_plan_notice_and_archive_copies_of_one_topic_form_one_family(
    src: Path, tmp_path: Path
) -> None:
    plan = plan_of(src, tmp_path)
    (merge,) = [m for m in plan["merges"] if m["topic"] == "dashboard"]
    assert merge["target"] == "docs/guides/dashboard.md"  # the live page is kept
    assert set(merge["sources"]) | {d["path"] for d in plan["deletions"]} >= FAMILY
    assert "docs/billing.md" not in merge["sources"]


def test_an_exact_duplicate_is_deleted_and_covered_by_the_copy_that_stays(
    src: Path, tmp_path: Path
) -> None:
    plan = plan_of(src, tmp_path)
    deleted = {d["path"]: d for d in plan["deletions"]}
    assert deleted["docs/archive/billing_copy.md"]["covered_by"] == ["docs/billing.md"]
    assert plan["exact_duplicates"] == [["docs/archive/billing_copy.md", "docs/billing.md"]]


def test_a_page_contained_in_another_is_deleted_with_what_covers_it(
    src: Path, tmp_path: Path
) -> None:
    plan = plan_of(src, tmp_path)
    deleted = {d["path"]: d for d in plan["deletions"]}
    assert deleted["docs/archive/refunds.md"]["covered_by"] == ["docs/billing.md"]


def test_a_page_with_one_unit_found_nowhere_else_is_never_deleted(tmp_path: Path) -> None:
    files = dict(TREE)
    files["docs/archive/refunds.md"] += "\nRefunds above 500 euros need a manager's approval.\n"
    plan = plan_of(make_tree(tmp_path / "src", files), tmp_path)
    assert "docs/archive/refunds.md" not in {d["path"] for d in plan["deletions"]}


def test_near_duplicates_are_found_with_minhash(tmp_path: Path) -> None:
    words = " ".join(f"word{i}" for i in range(200))
    files = {
        "a.md": f"# A\n\n{words} alpha\n",
        "old/b.md": f"# B\n\n{words} beta\n",
        "c.md": "# C\n\nSomething else entirely, about invoices and refunds.\n",
    }
    plan = plan_of(make_tree(tmp_path / "src", files), tmp_path)
    pairs = {(n["first"], n["second"]) for n in plan["near_duplicates"]}
    assert pairs == {("a.md", "old/b.md")}


def test_a_merge_carries_every_unique_unit_under_a_provenance_line(
    src: Path, tmp_path: Path
) -> None:
    dest = tmp_path / "dest"
    assert apply_to(src, dest) == 0
    target = (dest / "docs/guides/dashboard.md").read_text()
    assert "> Merged from `docs/reports/dashboard_validation_report.md`" in target
    assert "All twelve dashboard panels rendered in Chromium and Firefox." in target
    assert "- Show task latency as a sparkline" in target
    # A unit the target already had is not repeated.
    assert target.count("The dashboard shows every agent and its current task.") == 1


def test_every_removed_page_has_a_redirect_to_an_existing_page(src: Path, tmp_path: Path):
    dest = tmp_path / "dest"
    assert apply_to(src, dest) == 0
    redirects = json.loads((dest / "redirects.json").read_text())
    for path in TREE:
        assert (dest / path).is_file() != (path in redirects), path
    for old, new in redirects.items():
        assert old.endswith(".md") and new.endswith(".md")  # mkdocs-redirects redirect_maps
        assert (dest / new).is_file()


def test_links_are_rewritten_so_that_nothing_that_worked_breaks(tmp_path: Path) -> None:
    files = dict(TREE)
    files["docs/billing.md"] += (
        "\nSee [the notes](archive/scratchpad/dashboard_notes.md#idle), "
        "[the archive](archive/), [a gone page](missing.md) and [a site](https://example.org).\n"
    )
    src = make_tree(tmp_path / "src", files)
    dest = tmp_path / "dest"
    assert apply_to(src, dest) == 0
    billing = (dest / "docs/billing.md").read_text()
    assert "[the notes](guides/dashboard.md#idle)" in billing
    assert "[a gone page](missing.md)" in billing and "(https://example.org)" in billing
    # The moved plan link inside the guide now points at the guide itself.
    guide = (dest / "docs/guides/dashboard.md").read_text()
    assert "[plan](dashboard.md)" in guide
    for path in dest.rglob("*.md"):
        page = parse_page(path.relative_to(dest).as_posix(), path.read_text())
        existing = {p.relative_to(dest).as_posix() for p in dest.rglob("*") if p.is_file()}
        for link in page.links:
            assert link.target in existing | folders(existing) or link.target.endswith(
                "missing.md"
            ), (path, link)


def test_protected_pages_are_never_merged_or_deleted(src: Path, tmp_path: Path) -> None:
    plan = plan_of(src, tmp_path, "--protect", "docs/archive/**", "--protect", "DASHBOARD_*")
    gone = set(plan["redirects"])
    assert not gone & {"docs/archive/billing_copy.md", "DASHBOARD_COMPLETE.md"}
    assert "docs/archive/scratchpad/dashboard_notes.md" in plan["protected"]
    assert all(m["target"] not in plan["protected"] for m in plan["merges"])


def test_excluded_pages_are_not_analysed_and_are_copied_unchanged(
    src: Path, tmp_path: Path
) -> None:
    dest = tmp_path / "dest"
    assert apply_to(src, dest, "--exclude", "docs/archive/*") == 0
    for path in ("docs/archive/billing_copy.md", "docs/archive/refunds.md"):
        assert (dest / path).read_bytes() == (src / path).read_bytes()
    assert (dest / "docs/images/panel.txt").read_text() == "not markdown, copied as it is\n"


def test_src_is_never_modified(src: Path, tmp_path: Path) -> None:
    before = digest(src)
    assert apply_to(src, tmp_path / "dest", "--report", str(tmp_path / "r.md")) == 0
    assert digest(src) == before


def test_apply_refuses_to_publish_an_output_that_would_lose_a_unit(
    src: Path, tmp_path: Path
) -> None:
    analysis = analyse(read_tree(src))
    # A deletion the evidence does not support: the guide has units nobody else has.
    analysis.plan.deletions.append(
        Deletion("docs/billing.md", ("docs/guides/dashboard.md",), "wrong")
    )
    analysis.plan.redirects["docs/billing.md"] = "docs/guides/dashboard.md"
    analysis.plan.kept.remove("docs/billing.md")
    dest = tmp_path / "dest"
    with pytest.raises(VerificationError) as caught:
        apply(analysis, dest)
    assert caught.value.verification.missing
    assert "unit lost: docs/billing.md" in str(caught.value)
    assert not dest.exists() and not list(tmp_path.glob(".dest.partial-*"))


def test_verify_finds_a_dropped_unit_and_a_newly_broken_link(src: Path) -> None:
    tree = read_tree(src)
    analysis = analyse(tree)
    out = render(analysis.pages, analysis.plan, tree.all_paths(), set(tree.copied))
    out["docs/billing.md"] = out["docs/billing.md"].replace("Invoices are", "Bills are")
    out["docs/guides/dashboard.md"] += "\n[broken](../billing-gone.md) [was fine](../billing.md)\n"
    del out["docs/billing.md"]
    dest_files = set(out) | set(tree.copied)
    pages = {path: parse_page(path, text) for path, text in out.items()}
    result = verify(analysis.pages, analysis.plan, pages, tree.all_paths(), dest_files)
    assert not result.ok
    assert any(path == "docs/billing.md" for path, _, _ in result.missing)
    assert ("docs/guides/dashboard.md", "../billing.md") in result.newly_broken
    assert any("without a redirect" in problem for problem in result.redirect_problems)


def test_a_target_ending_in_an_open_fence_does_not_swallow_merged_units(tmp_path: Path):
    files = {
        "docs/setup-guide.md": "# Setup guide\n\nInstall the tools first.\n\n```bash\nmake\n",
        "archive/setup_report.md": "# Setup report\n\nSetup took four minutes on a laptop.\n",
    }
    dest = tmp_path / "dest"
    assert apply_to(make_tree(tmp_path / "src", files), dest) == 0
    page = parse_page("docs/setup-guide.md", (dest / "docs/setup-guide.md").read_text())
    assert "Setup took four minutes on a laptop." in {u.key for u in page.units}


def test_bad_input_gets_a_clear_error_and_exit_status_2(src: Path, tmp_path: Path, capsys):
    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / "keep.txt").write_text("x")
    assert apply_to(src, dest) == 2
    assert apply_to(src, src / "out") == 2
    assert main(["consolidate", str(tmp_path / "nope"), "--plan", "p.json"]) == 2
    assert main(["consolidate", str(src), "--apply", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "not empty" in err and "outside SRC" in err and "not a folder" in err


def test_settings_refuse_out_of_range_values_by_name() -> None:
    with pytest.raises(SettingsError, match="min_family_similarity"):
        Settings(min_family_similarity=1.5)
    with pytest.raises(SettingsError, match="max_topic_pages"):
        Settings(max_topic_pages=0)


def test_report_lists_figures_merges_and_deletions_in_markdown_and_html(
    src: Path, tmp_path: Path
) -> None:
    report = tmp_path / "report.md"
    assert apply_to(src, tmp_path / "dest", "--report", str(report)) == 0
    text = report.read_text()
    assert "| files (before → after) | 9 → " in text
    assert "### `docs/guides/dashboard.md` ← 'dashboard'" in text
    assert "| `docs/archive/billing_copy.md` | `docs/billing.md` | exact duplicate" in text
    html_report = tmp_path / "report.html"
    assert plan_of(src, tmp_path, "--report", str(html_report))
    assert "<table>" in html_report.read_text()


def test_a_non_utf8_page_is_carried_byte_for_byte(tmp_path: Path) -> None:
    src = make_tree(tmp_path / "src", {"a.md": "# A\n\nFirst page about ports\n"})
    (src / "b.md").write_bytes(b"# B \xaf\n\nSecond page about queues\n")
    dest = tmp_path / "dest"
    assert apply_to(src, dest) == 0
    assert (dest / "b.md").read_bytes() == (src / "b.md").read_bytes()


def test_the_command_runs_as_python_m_docs_automation(src: Path, tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "docs_automation", "consolidate", str(src), "--apply",
         "--out", str(tmp_path / "dest"), "--plan", str(tmp_path / "plan.json")],
        cwd=ROOT, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "units kept" in done.stderr and (tmp_path / "dest/redirects.json").is_file()


@pytest.mark.slow
@pytest.mark.timeout(900)  # plan, apply and the audit of 944 pages on two shared cores
# Measured for its floors, not its lines (the small trees here and in test_trees.py cover
# the same code): line tracing made this run 2.5 times slower.
@pytest.mark.no_cover
def test_bee_hive_floors_hold(shared_dir: Path, tmp_path: Path) -> None:
    src = shared_dir / "corpus" / "bee-hive"
    before = digest(src)
    tree = read_tree(src)
    analysis = analyse(tree)
    result = apply(analysis, tmp_path / "dest")
    files_before, files_after = len(tree.all_paths()), len(analysis.plan.kept) + len(tree.copied)
    assert result.units_kept == result.units_total > 100_000  # 100 % of substantive units
    assert result.newly_broken == [] and result.broken_after <= result.broken_before
    gone = tree.all_paths() - {
        p.relative_to(tmp_path / "dest").as_posix()
        for p in (tmp_path / "dest").rglob("*")
        if p.is_file()
    }
    assert gone == set(analysis.plan.redirects)  # a redirect for every removed page
    assert files_after <= 0.30 * files_before  # at least 70 % fewer files
    assert digest(src) == before


def test_clashing_reference_labels_are_renamed_so_both_destinations_survive(tmp_path: Path):
    files = {
        "docs/queue-guide.md": "# Queue guide\n\nSee [the docs][home].\n\n[home]: https://a.example\n",
        "archive/queue_notes.md": "# Queue notes\n\nAlso [home] and [ours][home].\n\n"
        "[home]: https://b.example\n",
    }
    dest = tmp_path / "dest"
    assert apply_to(make_tree(tmp_path / "src", files), dest) == 0
    text = (dest / "docs/queue-guide.md").read_text()
    assert "[home]: https://a.example" in text and "[home-2]: https://b.example" in text
    assert "Also [home][home-2] and [ours][home-2]." in text
