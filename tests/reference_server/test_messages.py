"""Publish validation and frame sizes, as plain function calls."""

from __future__ import annotations

import pytest

from reference_server.errors import PayloadTooLarge, PublishError
from reference_server.messages import parse_publish, usable_correlation_id, utf8_length

pytestmark = pytest.mark.unit


def test_a_publish_without_a_type_gets_its_subscriptions_default() -> None:
    assert parse_publish("agents", None, b'{"agent_id": "a"}', 100) == (
        "agent_update",
        {"agent_id": "a"},
    )


def test_a_body_over_the_limit_is_refused_with_status_413() -> None:
    with pytest.raises(PayloadTooLarge) as caught:
        parse_publish("agents", None, b"{}" + b" " * 10, 5)
    assert caught.value.status == 413
    assert isinstance(caught.value, PublishError)


@pytest.mark.parametrize(
    ("subscription", "kind", "body"),
    [
        ("weather", None, b"{}"),
        ("agents", "critical_alert", b'{"alerts": []}'),
        ("agents", "Bad-Type", b"{}"),
        ("agents", "pong", b"{}"),
        ("agents", None, b"[1]"),
        ("agents", None, b"{nope"),
        ("alerts", None, b"{}"),
    ],
)
def test_invalid_publishes_are_refused_with_status_422(
    subscription: str, kind: str | None, body: bytes
) -> None:
    with pytest.raises(PublishError) as caught:
        parse_publish(subscription, kind, body, 100)
    assert caught.value.status == 422
    assert not isinstance(caught.value, PayloadTooLarge)


def test_utf8_length_counts_bytes_and_survives_lone_surrogates() -> None:
    assert utf8_length("abc") == 3
    assert utf8_length("é€") == 5
    assert utf8_length("\ud800") == 3


def test_only_short_non_empty_strings_are_usable_correlation_ids() -> None:
    assert usable_correlation_id("abc") == "abc"
    assert usable_correlation_id("") is None
    assert usable_correlation_id("x" * 129) is None
    assert usable_correlation_id(42) is None
