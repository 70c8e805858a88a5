"""Routing the platform's producer channels into subscriptions."""

from __future__ import annotations

import json

import pytest

from reference_server.broker.producers import route

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("channel", "subscription", "kind"),
    [
        ("system_events", "system", "system_event"),
        ("agent_events:a-7", "agents", "agent_event"),
        ("project_index:websocket_events", "project_index", "project_index_event"),
    ],
)
def test_each_producer_channel_has_its_subscription(
    channel: str, subscription: str, kind: str
) -> None:
    routed = route(channel, '{"status": "busy"}', 1024, max_depth=32)
    assert (routed.subscription, routed.type, routed.data) == (
        subscription,
        kind,
        {"status": "busy"},
    )
    assert routed.correlation_id is None


def test_project_index_messages_deliver_their_event_with_its_correlation_id() -> None:
    payload = {"event": {"type": "file_indexed", "correlation_id": "pi-1"}, "subscribers": ["x"]}
    routed = route("project_index:websocket_events", json.dumps(payload), 1024, max_depth=32)
    assert routed.data == payload["event"]
    assert routed.correlation_id == "pi-1"


@pytest.mark.parametrize(
    ("channel", "payload", "reason"),
    [
        ("other", "{}", "not a producer channel"),
        ("system_events", "not json", "not JSON"),
        ("system_events", "[1, 2]", "not a JSON object"),
        ("system_events", json.dumps({"x": "y" * 2000}), "larger than 1024 bytes"),
    ],
)
def test_bad_messages_are_refused_with_a_reason(channel: str, payload: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        route(channel, payload, 1024, max_depth=32)
