"""Routing the platform's producer channels into subscriptions."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reference_server.broker.producers import route
from reference_server.messages import encode, is_valid_text
from tests.hostile import client_frames, expected_refusal, publish_bodies

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


# What the Redis link hands over: its connection decodes with surrogateescape, so bytes
# that are not UTF-8 arrive as lone surrogates U+DC80..U+DCFF.
payloads = st.one_of(
    publish_bodies().map(lambda b: b.decode("utf-8", "surrogateescape")),
    client_frames(),
)


@settings(max_examples=300, deadline=None)
@given(payloads)
def test_a_producer_message_is_refused_or_republished_exactly(payload: str) -> None:
    raw = payload.encode("utf-8", "surrogateescape")  # the bytes the producer published
    refusal = expected_refusal(raw)
    try:
        routed = route("system_events", payload, 65_536, max_depth=32)
    except ValueError as exc:
        assert is_valid_text(str(exc)), "the reason is logged and must be writable"
        assert refusal or not isinstance(json.loads(raw.decode("utf-8")), dict)
        return
    assert not refusal, raw
    assert routed.data == json.loads(raw.decode("utf-8"))
    encode(routed.data)  # the republished update can be encoded, so delivered
