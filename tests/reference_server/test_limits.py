"""Runtime limit changes and the listing's paging, checked without a server."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from reference_server.errors import LimitsError
from reference_server.limits import RUNTIME_LIMITS, parse_changes, parse_page, schema
from reference_server.settings import SETTING_DOCS, Settings

pytestmark = pytest.mark.unit

CURRENT = Settings()


def refused(body: bytes | str) -> LimitsError:
    raw = body.encode() if isinstance(body, str) else body
    with pytest.raises(LimitsError) as caught:
        parse_changes(raw, CURRENT)
    return caught.value


def test_a_valid_change_returns_the_new_settings_and_old_and_new_values() -> None:
    new, changed = parse_changes(b'{"rate_burst": 10, "send_queue_max_bytes": 4096}', CURRENT)
    assert (new.rate_burst, new.send_queue_max_bytes) == (10.0, 4096)
    assert changed == {"rate_burst": (40.0, 10.0), "send_queue_max_bytes": (1_048_576, 4096)}
    assert new.port == CURRENT.port  # nothing else moves


def test_a_value_equal_to_the_current_one_is_not_a_change() -> None:
    new, changed = parse_changes(b'{"rate_burst": 40, "idle_disconnect_seconds": 30}', CURRENT)
    assert changed == {"idle_disconnect_seconds": (600.0, 30.0)}
    assert isinstance(new.rate_burst, float)
    assert parse_changes(b'{"rate_burst": 40.0, "send_queue_max_messages": 1024}', CURRENT)[1] == {}


def test_the_changes_are_the_values_in_force_of_each_settings_type() -> None:
    # Review 14: float() of both sides once turned 9007199254740993 into 9007199254740992.0.
    value = 2**53 + 1
    new, changed = parse_changes(f'{{"send_queue_max_messages": {value}}}'.encode(), CURRENT)
    assert new.send_queue_max_messages == value
    ((old, now),) = changed.values()
    assert (old, now) == (1024, value) and type(old) is int and type(now) is int
    _, changed = parse_changes(b'{"rate_burst": 7}', CURRENT)
    assert changed == {"rate_burst": (40.0, 7.0)} and type(changed["rate_burst"][1]) is float


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("", "empty"),
        ("  \n", "empty"),
        ("{", "not valid JSON"),
        ("[1, 2]", "must be a JSON object"),
        ("42", "must be a JSON object"),
        ('"rate_burst"', "must be a JSON object"),
        ("null", "must be a JSON object"),
        ("{}", "Nothing to change"),
        ("[" * 100_000, "not valid JSON"),
    ],
)
def test_a_body_that_is_not_a_nonempty_object_is_refused_as_a_whole(
    body: str, message: str
) -> None:
    error = refused(body)
    assert message in str(error)
    assert error.key == ""


@pytest.mark.parametrize(
    ("body", "key", "message"),
    [
        ('{"rate_burst": "ten"}', "rate_burst", "rate_burst must be a number, got 'ten'"),
        ('{"rate_burst": true}', "rate_burst", "rate_burst must be a number, got true"),
        ('{"rate_burst": null}', "rate_burst", "must be a number, got null"),
        ('{"rate_burst": [10]}', "rate_burst", "must be a number, got [10]"),
        ('{"rate_burst": 0.5}', "rate_burst", "rate_burst must be at least 1"),
        ('{"rate_tokens_per_sec": 0}', "rate_tokens_per_sec", "greater than zero"),
        ('{"rate_tokens_per_sec": -3}', "rate_tokens_per_sec", "must not be negative"),
        ('{"idle_disconnect_seconds": 1e400}', "idle_disconnect_seconds", "finite"),
        ('{"idle_disconnect_seconds": NaN}', "idle_disconnect_seconds", "finite"),
        ('{"rate_burst": 1' + "0" * 300 + "}", "rate_burst", "out of range"),
        # Review 14: valid JSON that int() cannot read (over 4300 digits) named no key.
        ('{"rate_burst": 1' + "0" * 5000 + "}", "rate_burst", "out of range"),
        (
            '{"idle_disconnect_seconds": 1' + "0" * 5000 + ".5}",
            "idle_disconnect_seconds",
            "out of range",
        ),
        # Review 14: bounds that keep a protection on, as at start-up.
        ('{"idle_disconnect_seconds": 1e308}', "idle_disconnect_seconds", "at most 86400 s"),
        ('{"send_queue_max_bytes": 100000000000000000000000}', "send_queue_max_bytes", "at most"),
        ('{"rate_tokens_per_sec": 5e-324}', "rate_tokens_per_sec", "at least 0.001"),
        ('{"send_queue_max_messages": 10.5}', "send_queue_max_messages", "must be an integer"),
        ('{"send_queue_max_messages": false}', "send_queue_max_messages", "must be a number"),
        ('{"send_queue_max_bytes": 0}', "send_queue_max_bytes", "greater than zero"),
        ('{"port": 9000}', "port", "cannot change at run time"),
        ('{"rate_brust": 10}', "rate_brust", "is not a setting"),
        ('{"rate_burst": 10, "rate_burst": 20}', "rate_burst", "appears twice"),
    ],
)
def test_a_bad_key_or_value_is_refused_naming_the_key(body: str, key: str, message: str) -> None:
    error = refused(body)
    assert error.key == key
    assert message in str(error)
    assert "WS_" not in str(error)  # the body's key, not the environment's


def test_one_bad_key_refuses_the_whole_change() -> None:
    assert refused('{"rate_burst": 10, "idle_disconnect_seconds": -1}').key == (
        "idle_disconnect_seconds"
    )


def test_a_hostile_key_is_echoed_in_ascii_and_shortened() -> None:
    error = refused('{"\\ud800' + "x" * 500 + '": 1}')
    text = str(error)
    assert "\\ud800" in text and len(text) < 300
    text.encode("utf-8")  # a lone surrogate would not encode
    assert error.key.startswith("\\ud800x") and len(error.key) <= 70
    error.key.encode("utf-8")


@given(st.dictionaries(st.sampled_from(sorted(RUNTIME_LIMITS)), st.integers(1, 86_400), min_size=1))
def test_any_positive_whole_values_are_accepted_and_applied(values: dict[str, int]) -> None:
    new, changed = parse_changes(json.dumps(values).encode(), CURRENT)
    for key, value in values.items():
        assert getattr(new, key) == value
        if getattr(CURRENT, key) != value:
            assert changed[key] == (getattr(CURRENT, key), getattr(new, key))


@given(st.sampled_from(sorted(RUNTIME_LIMITS)), st.one_of(st.text(), st.booleans(), st.none()))
def test_any_non_number_is_refused_naming_its_key(key: str, value: Any) -> None:
    assert refused(json.dumps({key: value})).key == key


def test_page_defaults_to_the_largest_page_from_the_start() -> None:
    assert parse_page(None, None, 500) == (500, 0)
    assert parse_page("10", "42", 500) == (10, 42)


@pytest.mark.parametrize(
    ("limit", "cursor", "key"),
    [
        ("0", None, "limit"),
        ("501", None, "limit"),
        ("-1", None, "limit"),
        ("ten", None, "limit"),
        ("", None, "limit"),
        ("9" * 40, None, "limit"),
        # Review 14: int() reads these as 1 and 5; only ASCII digits are an integer here.
        ("\u0661", None, "limit"),
        ("\uff15", None, "limit"),
        ("\u00b2", None, "limit"),
        (None, "\u0661\u0662", "cursor"),
        (None, "abc", "cursor"),
        (None, "", "cursor"),
        (None, "1" * 19, "cursor"),
        (None, "-5", "cursor"),
    ],
)
def test_a_bad_page_query_is_refused_naming_the_parameter(
    limit: str | None, cursor: str | None, key: str
) -> None:
    with pytest.raises(LimitsError) as caught:
        parse_page(limit, cursor, 500)
    assert caught.value.key == key


def test_the_body_schema_lists_exactly_the_runtime_limits_with_units() -> None:
    body = schema()
    assert set(body["properties"]) == set(RUNTIME_LIMITS)
    assert body["additionalProperties"] is False
    for key, prop in body["properties"].items():
        assert SETTING_DOCS[key][0] in prop["description"]
