"""Every redis-server the docs start works in a temporary folder, never the project's.

A replica writes the copy it receives from its primary (`dump.rdb`) into its working
directory even with persistence off; the Sentinel how-to's replica had no `--dir`, so
running the page (as tests/docs does, from the project folder) left a `dump.rdb` there,
which was then committed by mistake.
"""

from __future__ import annotations

import re

import pytest

from tests.procs import ROOT

pytestmark = pytest.mark.unit

# A redis-server started in the background by a docs block (not `--version`).
_STARTED = re.compile(r"^redis-server (?!--version).*&\s*$")


def _started_servers() -> list[tuple[str, str]]:
    found = []
    for page in sorted((ROOT / "docs").rglob("*.md")):
        for line in page.read_text(encoding="utf-8").splitlines():
            if _STARTED.match(line.strip()):
                found.append((str(page.relative_to(ROOT)), line.strip()))
    return found


def test_the_docs_start_redis_servers() -> None:
    pages = {page for page, _ in _started_servers()}
    assert {"docs/how-to/redis-instances.md", "docs/how-to/redis-sentinel.md"} <= pages


@pytest.mark.parametrize(("page", "line"), _started_servers())
def test_every_redis_server_the_docs_start_gets_a_temporary_working_directory(
    page: str, line: str
) -> None:
    if "--sentinel" in line:
        # A Sentinel's folder is the `dir` of its configuration file.
        text = (ROOT / page).read_text(encoding="utf-8")
        assert re.search(r"printf 'dir %s\\n", text), page
    else:
        assert '--dir "$(mktemp -d)"' in line, (page, line)
