"""Publish validation, strict JSON text and frame sizes, as plain function calls."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings

from reference_server.broker.base import make_update
from reference_server.errors import PayloadTooLarge, PublishError, TextError
from reference_server.messages import (
    decode_json,
    decode_query,
    encode,
    is_ascii_digits,
    is_valid_text,
    parse_publish,
    publisher_correlation_id,
    usable_correlation_id,
    utf8_length,
)
from tests.hostile import expected_refusal, publish_bodies

pytestmark = pytest.mark.unit


def test_a_publish_without_a_type_gets_its_subscriptions_default() -> None:
    assert parse_publish("agents", None, b'{"agent_id": "a"}', 100, max_depth=32) == (
        "agent_update",
        {"agent_id": "a"},
    )


def test_a_body_over_the_limit_is_refused_with_status_413() -> None:
    with pytest.raises(PayloadTooLarge) as caught:
        parse_publish("agents", None, b"{}" + b" " * 10, 5, max_depth=32)
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
        parse_publish(subscription, kind, body, 100, max_depth=32)
    assert caught.value.status == 422
    assert not isinstance(caught.value, PayloadTooLarge)


def test_utf8_length_counts_bytes_and_refuses_text_without_a_utf8_form() -> None:
    assert utf8_length("abc") == 3
    assert utf8_length("é€😀") == 9
    with pytest.raises(UnicodeEncodeError):
        utf8_length("\ud800")


def test_only_short_non_empty_strings_are_usable_correlation_ids() -> None:
    assert usable_correlation_id("abc") == "abc"
    assert usable_correlation_id("") is None
    assert usable_correlation_id("x" * 129) is None
    assert usable_correlation_id(42) is None


@pytest.mark.parametrize(
    ("raw", "code", "where"),
    [
        ('{"x": "\\ud800"}', "invalid_text", "$.x"),
        ('{"x": ["ok", "\\udc00\\ud83d"]}', "invalid_text", "$.x[1]"),
        ('{"\\uDBFF": 1}', "invalid_text", "$ (a key)"),
        ("\ud800", "invalid_text", "text"),
        (b'{"x": "\xed\xa0\x80"}', "invalid_text", "byte 7"),
        (b'{"x": "\xff"}', "invalid_text", "byte 7"),
        (b"\xef\xbb\xbf{}", "invalid_json", "char 0"),
        ('{"x": 1}'.encode("utf-16"), "invalid_text", "byte 0"),
        ('{"x": NaN}', "invalid_json", "text"),
        ('{"x": -Infinity}', "invalid_json", "text"),
        ('{"x": 1e999}', "invalid_json", "text"),
        ('{"x": ' + "9" * 5000 + "}", "invalid_json", "text"),
        ("[" * 33 + "]" * 33, "invalid_json", "$" + "[0]" * 32),
        ('{"a":' * 33 + "1" + "}" * 33, "invalid_json", "$" + ".a" * 32),
        ("[" * 100_000 + "]" * 100_000, "invalid_json", "text"),
        ("{nope", "invalid_json", "char 1"),
    ],
)
def test_decode_json_refuses_what_a_peer_cannot_read_and_says_where(
    raw: str | bytes, code: str, where: str
) -> None:
    with pytest.raises(TextError) as caught:
        decode_json(raw, max_depth=32)
    assert (caught.value.code, caught.value.where) == (code, where)
    assert is_valid_text(str(caught.value)), "the error message itself must be sendable"


def test_decode_json_accepts_every_valid_text_up_to_the_depth_limit() -> None:
    assert decode_json('{"pair": "\\ud83d\\ude00", "é": 1.5}', max_depth=32) == {
        "pair": "😀",
        "é": 1.5,
    }
    assert decode_json("[" * 32 + "]" * 32, max_depth=32) == eval("[" * 32 + "]" * 32)
    assert decode_json('{"s": "[[[[{{{{"}', max_depth=2) == {"s": "[[[[{{{{"}
    assert decode_json(b'{"n": ' + b"9" * 4300 + b"}", max_depth=1)["n"] == int("9" * 4300)


def test_a_refused_frame_still_carries_what_was_decoded_for_its_correlation_id() -> None:
    with pytest.raises(TextError) as caught:
        decode_json('{"correlation_id": "c-1", "x": "\\ud800"}', max_depth=32)
    assert caught.value.decoded == {"correlation_id": "c-1", "x": "\ud800"}


@pytest.mark.parametrize("number", ["NaN", "-Infinity", "1e999", "9" * 5000])
def test_a_frame_refused_for_a_number_still_carries_its_correlation_id(number: str) -> None:
    # Review 11: only a lone surrogate kept what was decoded; a number refused inside the
    # decoder left nothing, so the error could not echo a valid correlation_id.
    with pytest.raises(TextError) as caught:
        decode_json('{"correlation_id": "c-1", "x": ' + number + "}", max_depth=32)
    assert caught.value.code == "invalid_json"
    assert caught.value.decoded == {"correlation_id": "c-1", "x": None}


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (
            b"subscriptions=agents,tasks&resume=agents:3",
            {"subscriptions": "agents,tasks", "resume": "agents:3"},
        ),
        (b"a=%C3%A9&b=\xc3\xa9&c=1+2&c=3&d", {"a": "é", "b": "é", "c": "3", "d": ""}),
    ],
)
def test_a_query_in_utf8_decodes_as_starlette_decodes_it(
    raw: bytes, expected: dict[str, str]
) -> None:
    assert decode_query(raw) == expected


@pytest.mark.parametrize("raw", [b"s=%FF", b"s=%ED%A0%80", b"s=\xff", b"s=%C3", b"%FF=1"])
def test_a_query_that_is_not_utf8_is_never_replaced_but_refusable(raw: bytes) -> None:
    ((name, value),) = decode_query(raw).items()
    assert "\ufffd" not in name + value
    assert not is_valid_text(name + value)


@pytest.mark.parametrize(
    ("text", "digits"),
    [
        ("0", True),
        ("123", True),
        ("", False),
        ("\u0661", False),
        ("\uff15", False),
        ("\u00b2", False),
        ("-1", False),
        (" 1", False),
    ],
)
def test_only_ascii_digits_are_digits(text: str, digits: bool) -> None:
    assert is_ascii_digits(text) is digits


def test_encode_refuses_text_and_numbers_a_peer_cannot_read() -> None:
    assert encode({"a": "é", "n": 1}) == '{"a":"é","n":1}'
    for bad in ({"a": "\ud800"}, {"n": float("nan")}, {"n": float("inf")}):
        with pytest.raises(ValueError):
            encode(bad)


def test_a_publish_with_text_that_is_not_unicode_is_refused_naming_the_field() -> None:
    with pytest.raises(PublishError) as caught:
        parse_publish("agents", None, b'{"x": {"y": "\\ud800"}}', 100, max_depth=32)
    assert caught.value.status == 422
    assert "$.x.y" in str(caught.value) and "not valid Unicode" in str(caught.value)


def test_surrogate_correlation_ids_are_never_echoed() -> None:
    assert usable_correlation_id("\udc00") is None
    assert usable_correlation_id("ok-😀") == "ok-😀"


@pytest.mark.parametrize("header", ["abc\xff", "a\x00b", "x" * 129, "tab\there", ""])
def test_a_publisher_correlation_id_must_be_short_printable_ascii(header: str) -> None:
    with pytest.raises(PublishError, match="X-Correlation-ID"):
        publisher_correlation_id(header)


def test_an_absent_publisher_correlation_id_is_none_and_a_good_one_is_kept() -> None:
    assert publisher_correlation_id(None) is None
    assert publisher_correlation_id("pub-1 x") == "pub-1 x"


@settings(max_examples=400, deadline=None)
@given(publish_bodies())
def test_a_publish_is_refused_for_a_stated_reason_or_delivered_exactly(body: bytes) -> None:
    refusal = expected_refusal(body)
    try:
        kind, data = parse_publish("agents", None, body, 65_536, max_depth=32)
    except PublishError as exc:
        assert is_valid_text(str(exc)) and str(exc).startswith("Body")
        assert refusal or not isinstance(json.loads(body.decode("utf-8")), dict)
        return
    assert not refusal, body
    update = make_update("agents", kind, data, seq=1, correlation_id="c", wall=0.0)
    # What every subscriber receives is the body's data, exactly: read back from the bytes.
    received = json.loads(update.text.encode("utf-8"))["data"]
    assert received == json.loads(body.decode("utf-8"))
