"""The data-block validators: frames, settings snippets and Prometheus rules."""

from __future__ import annotations

import pytest

from docs_automation.errors import BlockError
from docs_automation.examples.validators import check_frame, check_prometheus, check_settings

pytestmark = pytest.mark.unit


def test_frames_are_checked_against_the_schema() -> None:
    assert check_frame('{"type": "ping", "correlation_id": "c-1"}') == "ping"
    with pytest.raises(BlockError):
        check_frame('{"type": "subscribe", "subscriptions": "agents"}')


def test_settings_snippets_must_name_real_settings() -> None:
    assert check_settings("WS_RATE_BURST=10\n# comment\nexport WS_PORT=9000").rate_burst == 10
    with pytest.raises(BlockError, match="not a setting"):
        check_settings("WS_RATE_BRUST=10")
    with pytest.raises(BlockError, match="refuse"):
        check_settings("WS_AUTH_REQUIRED=true")


def test_prometheus_rules_must_name_exported_metrics() -> None:
    rules = "groups:\n  - name: g\n    rules:\n      - alert: A\n        expr: x_total > 1\n"
    with pytest.raises(BlockError, match="no metric"):
        check_prometheus(rules.replace("x_total", "leanvibe_ws_nope_total"), {"leanvibe_ws_up"})
    assert (
        check_prometheus(rules.replace("x_total", "leanvibe_ws_up_total"), {"leanvibe_ws_up"}) == 1
    )
