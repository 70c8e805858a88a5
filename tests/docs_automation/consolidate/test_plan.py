"""Which pages may go (docs_automation.consolidate.plan): only those whose every fact stays.

Each test builds two pages that a loose identity would call the same, runs the whole
consolidation, and checks that the second page's facts are in the output.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from docs_automation.consolidate.corpus import parse_page
from docs_automation.consolidate.engine import analyse, apply
from docs_automation.consolidate.files import read_tree

pytestmark = pytest.mark.unit  # small trees in a temp folder; no sockets

TABLE = "# Platforms\n\n| OS | Supported |\n| --- | --- |\n| Linux | ✅ |\n| Windows | {} |\n"
CLOUDS = (
    "# Deploy\n\nThe deploy script builds the image, pushes it to the registry and rolls "
    "the service one instance at a time, waiting for each health check to pass.\n\n"
    "Supported clouds:\n\n- AWS\n- GCP\n{}"
)
YAML = "# Retry settings\n\n```yaml\nretry:\n  cap: 60\n{}limit: 5\n```\n"


def output_keys(tmp_path: Path, first: str, second: str) -> tuple[set[str], set[str], dict]:  # type: ignore[type-arg]
    """Consolidate `docs/page.md` = first and `archive/page.md` = second; return the keys
    of the second page, every key of the output, and the plan."""
    src = tmp_path / "src"
    for path, text in {"docs/page.md": first, "archive/page.md": second}.items():
        (src / path).parent.mkdir(parents=True, exist_ok=True)
        (src / path).write_text(text, encoding="utf-8")
    analysis = analyse(read_tree(src))
    apply(analysis, tmp_path / "dest")
    out: set[str] = set()
    for page in (tmp_path / "dest").rglob("*.md"):
        out |= {u.key for u in parse_page(page.name, page.read_text(encoding="utf-8")).units}
    keys = {u.key for u in parse_page("archive/page.md", second).units}
    return keys, out, analysis.plan.to_json()


@pytest.mark.parametrize(
    ("first", "second"),
    [
        (TABLE.format("✅"), TABLE.format("❌")),
        ("# Install\n\nRequires Python >= 3.11.\n", "# Install\n\nRequires Python < 3.11.\n"),
        (YAML.format(""), YAML.format("  ")),
        (CLOUDS.format(""), CLOUDS.format("- Azure\n")),
    ],
    ids=["table-symbol", "version-operator", "yaml-indentation", "one-word-list-item"],
)
def test_a_page_that_differs_in_one_short_fact_is_not_deleted_and_the_fact_stays(
    tmp_path: Path, first: str, second: str
) -> None:
    keys, out, plan = output_keys(tmp_path, first, second)
    assert keys <= out
    assert "archive/page.md" not in {d["path"] for d in plan["deletions"]}
    assert plan["exact_duplicates"] == []


def test_a_true_duplicate_is_still_deleted(tmp_path: Path) -> None:
    _, _, plan = output_keys(tmp_path, TABLE.format("✅"), TABLE.format("✅"))
    assert [d["path"] for d in plan["deletions"]] == ["archive/page.md"]


def test_a_page_whose_linked_anchor_its_copy_lacks_is_merged_not_deleted(tmp_path: Path) -> None:
    first = "# Install\n\nRequires Python 3.11 or newer.\n"
    second = "# Install\n\n## Requirements\n\nRequires Python 3.11 or newer.\n"
    src = tmp_path / "src"
    files = {
        "docs/install.md": first,
        "archive/install.md": second,
        "index.md": "# Home\n\nSee the [requirements](archive/install.md#requirements).\n",
    }
    for path, text in files.items():
        (src / path).parent.mkdir(parents=True, exist_ok=True)
        (src / path).write_text(text, encoding="utf-8")
    analysis = analyse(read_tree(src))
    assert "archive/install.md" not in {d.path for d in analysis.plan.deletions}
    apply(analysis, tmp_path / "dest")
    home = (tmp_path / "dest/index.md").read_text(encoding="utf-8")
    assert "[requirements](docs/install.md#requirements)" in home
    assert "### Requirements" in (tmp_path / "dest/docs/install.md").read_text(encoding="utf-8")
