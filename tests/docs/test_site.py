"""Gates on the built site: a strict build, no broken links, no typos, nothing fetched remotely."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.docs.sitebuild import BuiltSite, check_links
from tests.procs import ROOT, tool_env

pytestmark = [pytest.mark.docs, pytest.mark.xdist_group("docs:site")]

# Tags whose URL the browser loads by itself when it renders a page (links are not loaded).
_LOADED = re.compile(r"<(?:script|img|iframe|source|link)\b[^>]*?(?:src|href)=\"(https?:)?//", re.I)


@pytest.fixture(scope="module")
def site(built_site: BuiltSite) -> Path:
    return built_site.check()


def test_site_builds_strictly_with_every_nav_page(site: Path) -> None:
    for page in (
        "tutorial",
        "how-to/secure",
        "explanation/delivery",
        "console",
        "reference/protocol",
    ):
        assert (site / page / "index.html").is_file(), page


def test_built_site_has_no_broken_links(site: Path) -> None:
    done = check_links(site)
    assert done.returncode == 0, done.stdout[-4000:]
    assert " 0 errors found" in done.stdout
    assert re.search(r"([2-9]\d|\d{3,}) links in", done.stdout), "the checker saw almost nothing"


def test_pages_load_nothing_from_other_hosts(site: Path) -> None:
    remote = {
        str(page.relative_to(site)): _LOADED.findall(page.read_text(encoding="utf-8"))
        for page in site.rglob("*.html")
    }
    assert not {page: hits for page, hits in remote.items() if hits}
    assert (site / "assets" / "vendor" / "mermaid.min.js").is_file(), "run scripts/bootstrap"
    assert (site / "assets" / "vendor" / "uPlot.iife.min.js").is_file(), "run scripts/bootstrap"
    dashboard = (site / "dashboard" / "index.html").read_text(encoding="utf-8")
    assert 'src="../assets/vendor/uPlot.iife.min.js"' in dashboard


def test_theme_fonts_are_off_and_mermaid_is_local() -> None:
    config = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    assert re.search(r"^\s+font: false", config, re.M)
    assert "assets/vendor/mermaid.min.js" in config


def test_docs_have_no_common_misspellings() -> None:
    checker = Path(sys.executable).parent / "codespell"
    targets = ["docs", "README.md", "mkdocs.yml"]
    skip = "docs/assets/vendor,docs/examples/messy-tree"
    done = subprocess.run(
        [str(checker), "--skip", skip, *targets],
        cwd=ROOT,
        env=tool_env(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout
