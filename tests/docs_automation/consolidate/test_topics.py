"""Topic words, page kinds, near copies and families (`consolidate.topics`, `.nearcopies`)."""

from __future__ import annotations

import pytest

from docs_automation.consolidate.corpus import parse_page
from docs_automation.consolidate.nearcopies import NearDuplicate, near_duplicates, near_groups
from docs_automation.consolidate.topics import Profile, families, page_kind, profile, topic_words

pytestmark = pytest.mark.unit


def make(path: str, text: str) -> Profile:
    return profile(parse_page(path, text), num_perm=64, shingle_words=3, top_keywords=30)


def test_topic_words_drop_kinds_dates_phases_and_adjectives() -> None:
    assert topic_words("COMPREHENSIVE_DASHBOARD_VALIDATION_REPORT_2025") == ["dashboard"]
    assert topic_words("phase2_final_dx_enhancement_plan") == ["dx", "enhancement"]
    assert topic_words("SessionRecovery", camel=True) == ["session", "recovery"]
    assert topic_words("SessionRecovery") == ["sessionrecovery"]
    assert topic_words("TypeScript build") == ["typescript", "build"]


@pytest.mark.parametrize(
    ("path", "kind"),
    [
        ("docs/guides/dashboard.md", "live"),
        ("DASHBOARD_PLAN.md", "plan"),
        ("docs/reports/dashboard.md", "report"),
        ("EPIC4_COMPLETION_SUMMARY.md", "notice"),
        ("docs/archive/dashboard.md", "archive"),
        ("mobile/scratchpad/dashboard_report.md", "scratchpad"),
    ],
)
def test_page_kind_comes_from_folders_then_the_file_name(path: str, kind: str) -> None:
    assert page_kind(path) == kind


def test_a_readme_takes_its_topic_from_its_folder() -> None:
    item = make("app/observability/hooks/README.md", "# Notes\n\nHooks fire on every tool call.\n")
    assert "hook" in item.signature and "readme" not in item.signature


def test_same_topic_pages_sharing_few_words_form_one_family_kept_on_the_live_page() -> None:
    pages = [
        make("docs/dashboard-guide.md", "# Dashboard guide\n\nThe dashboard lists agents.\n"),
        make("DASHBOARD_PLAN.md", "# Dashboard plan\n\n- Add a dashboard filter for idle ones\n"),
        make("reports/dashboard_report.md", "# Dashboard report\n\nTwelve dashboard panels.\n"),
        make("archive/dashboard_notes.md", "# Dashboard notes\n\nThe dashboard flickers.\n"),
        make("docs/billing.md", "# Billing\n\nInvoices go out monthly.\n"),
    ]
    (family,) = families(pages, max_topic_pages=60, min_similarity=0.1)
    assert family.topic == "dashboard"
    assert family.members[0] == "docs/dashboard-guide.md"
    assert set(family.members) == {p.path for p in pages} - {"docs/billing.md"}


def test_a_word_in_too_many_names_names_no_topic() -> None:
    pages = [make(f"docs/hive_{name}.md", f"# Hive {name}\n\nAbout {name}.\n")
             for name in ("alpha", "beta", "gamma")]  # fmt: skip
    assert families(pages, max_topic_pages=2, min_similarity=0.0) == []


def test_protected_pages_are_left_out_of_families() -> None:
    pages = [make("a/queue_guide.md", "# Queue guide\n\nJobs wait.\n"),
             make("b/queue_report.md", "# Queue report\n\nJobs waited.\n")]  # fmt: skip
    assert families(pages, 60, 0.0, eligible=["a/queue_guide.md"]) == []


def test_near_copies_are_found_and_grouped() -> None:
    body = " ".join(f"w{i}" for i in range(300))
    a, b, c = (make(p, f"# T\n\n{body} {extra}\n") for p, extra in
               [("a.md", "x"), ("b.md", "y"), ("c.md", "z")])  # fmt: skip
    d = make("d.md", "# Other\n\nnothing in common with the rest of them at all\n")
    pairs = near_duplicates([(p.path, p.minhash) for p in (a, b, c, d)], threshold=0.5)
    assert {(n.first, n.second) for n in pairs} == {("a.md", "b.md"), ("a.md", "c.md"),
                                                    ("b.md", "c.md")}  # fmt: skip
    chain = [NearDuplicate("a.md", "b.md", 0.9), NearDuplicate("b.md", "c.md", 0.9)]
    assert near_groups(chain, {"a.md", "b.md", "c.md"}) == [["a.md", "b.md", "c.md"]]
