"""The audit's render workers: a page that renders too slowly is cut short and reported."""

from __future__ import annotations

from concurrent.futures import ProcessPoolExecutor

import pytest

from docs_automation.consolidate import audit

pytestmark = pytest.mark.integration  # a worker process, as the audit renders in


def test_a_page_slower_than_its_bound_is_cut_short_in_a_render_worker() -> None:
    # Unbalanced brackets make Python-Markdown backtrack for minutes. In a worker no other
    # timer is pending (here, pytest-timeout's would be), so the audit's own bound applies.
    with ProcessPoolExecutor(max_workers=1) as pool:
        slow = pool.submit(audit._bounded, "[" * 50_000 + "x", None, 0.5).result(timeout=60)
    assert slow.error == "takes over 0.5 s to render" and not slow.units
