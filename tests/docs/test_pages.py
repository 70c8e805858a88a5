"""Every how-to runs as written: top to bottom, in one shell, only its port numbers moved.

A reader who lands on a how-to follows it as printed, so each page runs in a fresh copy of
the project, starting its own servers and waiting for them only with its own commands. The
venv is made once per session (`prepare_project`); each page's prerequisites block finds it
ready. The ports a page names (8000 and the others) are moved to free ones, as the
newcomer run moves them, and `WS_PORT` points a bare `python -m reference_server` there: two
CI runs each lost a page to something else holding 127.0.0.1:8000 for a moment while the
suite ran in parallel, and a page must not depend on who else listens on a fixed port.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from docs_automation.examples.fences import EXECUTED, classify, outcome
from docs_automation.examples.harness import NEWCOMER_TIMEOUT_SECONDS, ROOT, docs_fences
from docs_automation.examples.pages import (
    page_ports,
    prepare_project,
    reader_env,
    refresh_project,
    run_page,
)
from docs_automation.examples.runners import DEFAULT_PORT
from docs_automation.processes import free_port
from tests.docs.summary import PAGES_REPORT

PAGE_TIMEOUT_SECONDS = 240.0
"""Longest one how-to may run, in seconds (each takes well under a minute)."""

_FENCES = docs_fences(ROOT)
PAGES = sorted(
    {f.page for f in _FENCES if f.page.startswith("how-to/") and f.page != "how-to/index.md"}
)
# Hide the project's own venv: the page must activate the copy's.
_HIDE = [str(Path(sys.executable).parent)]

pytestmark = pytest.mark.docs


@pytest.fixture(scope="session")
def page_project(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A copy of the project with its own `.venv` (editable install), made once."""
    work = tmp_path_factory.mktemp("pages")
    env = reader_env(os.environ, work / "home", hide=_HIDE)
    yield prepare_project(ROOT, work / "hive-living-docs", env, NEWCOMER_TIMEOUT_SECONDS)


@pytest.mark.slow
@pytest.mark.xdist_group("docs:pages")
# The first page also waits for the session's venv and `pip install`.
@pytest.mark.timeout(NEWCOMER_TIMEOUT_SECONDS + PAGE_TIMEOUT_SECONDS)
@pytest.mark.parametrize("page", PAGES)
def test_how_to_runs_as_written(page: str, page_project: Path, tmp_path: Path) -> None:
    refresh_project(ROOT, page_project)
    fences = [f for f in _FENCES if f.page == page]
    ports = {p: free_port() for p in page_ports(fences, ROOT) | {DEFAULT_PORT}}
    env = reader_env(os.environ, tmp_path / "home", hide=_HIDE)
    run = run_page(
        fences,
        root=ROOT,
        project=page_project,
        work=tmp_path,
        env={**env, "WS_PORT": str(ports[DEFAULT_PORT])},
        timeout=PAGE_TIMEOUT_SECONDS,
        ports=ports,
    )
    PAGES_REPORT.mkdir(parents=True, exist_ok=True)
    report = {"page": run.page, "seconds": run.seconds, "steps": run.steps}
    (PAGES_REPORT / (page.replace("/", "__") + ".json")).write_text(json.dumps(report))


def test_every_how_to_starts_with_its_prerequisites() -> None:
    first = {}
    for fence in _FENCES:
        if fence.page in PAGES and outcome(classify(fence)) == EXECUTED:
            first.setdefault(fence.page, fence)
    missing = [page for page in PAGES if classify(first[page]) != "prerequisites"]
    assert not missing, f"how-tos whose first runnable block is not its prerequisites: {missing}"
