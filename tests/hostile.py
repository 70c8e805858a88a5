"""Hypothesis strategies for hostile input, and an oracle that judges it independently.

The strategies put what other servers' bug reports were made of into every field of every
client frame and every publish: lone and reversed surrogates, bytes that are not UTF-8,
BOMs, NaN and Infinity, integers past Python's 4,300-digit limit, nesting deeper than any
limit, and values of the wrong type. `expected_refusal` decides, without the server's code
(principle 16: it shares no parser or regex with `messages.decode_json`), whether a text
must be refused and with which code.
"""

from __future__ import annotations

import json
import math
from typing import Any

from hypothesis import strategies as st

__all__ = [
    "CLIENT_TYPES",
    "FIELDS",
    "client_frames",
    "expected_refusal",
    "hostile_json",
    "hostile_strings",
    "publish_bodies",
]

CLIENT_TYPES = ("ping", "subscribe", "unsubscribe", "request_data")
FIELDS = ("type", "correlation_id", "subscriptions", "resume", "data_type", "params", "pad")
DEPTH = 32  # the default max_json_depth; the strategies go past it on purpose

surrogates = st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF)
hostile_strings = st.one_of(
    st.text(max_size=12),
    st.sampled_from(["agents", "tasks", "system_health", "agent_status", "", "x" * 200]),
    # a lone surrogate among ordinary characters, or a reversed pair
    st.lists(st.one_of(surrogates, st.characters()), min_size=1, max_size=6).map("".join),
    st.sampled_from(["\ud800", "\udc00\ud83d", "a\udfffb", "\ud83d\ude00"]),
)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(),  # NaN and ±Infinity included: json.dumps writes them, JSON has none
    hostile_strings,
)
hostile_json = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(hostile_strings, inner, max_size=3)
    ),
    max_leaves=12,
)


def _nest(depth: int) -> str:
    return "[" * depth + "1" + "]" * depth


def _field_value(kind: str) -> st.SearchStrategy[Any]:
    """Mostly the right shape for `kind`, often the wrong one, sometimes hostile text in it."""
    right: dict[str, st.SearchStrategy[Any]] = {
        "subscriptions": st.lists(hostile_strings, max_size=4),
        "resume": st.dictionaries(hostile_strings, st.integers(0, 2**63), max_size=3),
        "params": st.dictionaries(hostile_strings, hostile_json, max_size=3),
    }
    return st.one_of(right.get(kind, hostile_strings), hostile_json)


@st.composite
def client_frames(draw: st.DrawFn) -> str:
    """The text of one client frame: any type, any fields, hostile anywhere.

    Surrogates are written as JSON escapes (`ensure_ascii`), as a hostile client must to get
    them through a WebSocket text frame; big integers and deep nesting are spliced in as
    text, since `json.dumps` could not write them.
    """
    frame: dict[str, Any] = {
        "type": draw(st.one_of(st.sampled_from(CLIENT_TYPES), hostile_strings))
    }
    for field in draw(st.sets(st.sampled_from(FIELDS[1:]), max_size=4)):
        frame[field] = draw(_field_value(field))
    text = json.dumps(frame, ensure_ascii=True)
    splice = draw(st.sampled_from(["", "", "", "huge", "deep", "bom", "wide"]))
    if splice == "huge":
        text = text[:-1] + ', "n": ' + "9" * draw(st.integers(4000, 4400)) + "}"
    elif splice == "deep":
        text = text[:-1] + ', "n": ' + _nest(draw(st.integers(DEPTH - 2, DEPTH + 2))) + "}"
    elif splice == "bom":
        text = "\ufeff" + text
    elif splice == "wide":
        text = text[:-1] + ', "n": ' + _nest(DEPTH * 40) + "}"
    return text


@st.composite
def publish_bodies(draw: st.DrawFn) -> bytes:
    """One publish body: JSON objects with hostile values, or bytes that are barely JSON."""
    data = draw(st.dictionaries(hostile_strings, hostile_json, max_size=4))
    text = json.dumps(data, ensure_ascii=draw(st.booleans()))
    return draw(
        st.one_of(
            st.just(text.encode("utf-8", "surrogatepass")),  # CESU-8 bytes for surrogates
            st.just(text.encode("utf-16", "surrogatepass")),
            st.just(b"\xef\xbb\xbf" + text.encode("utf-8", "surrogatepass")),
            st.binary(max_size=40),
            st.just(b'{"n": ' + b"9" * draw(st.integers(4290, 4310)) + b"}"),
            st.just(('{"n": ' + _nest(draw(st.integers(DEPTH - 2, DEPTH + 1))) + "}").encode()),
        )
    )


def _has_surrogate(value: Any) -> bool:
    """Whether a decoded value holds text with no UTF-8 form (checked by encoding it)."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                return True
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


def _depth(value: Any) -> int:
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict | list):
            deepest = max(deepest, level)
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, level + 1) for child in children)
    return deepest


def _has_non_finite(value: Any) -> bool:
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, float) and not math.isfinite(item):
            return True
        if isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


def expected_refusal(raw: str | bytes, max_depth: int = DEPTH) -> frozenset[str]:
    """The error codes a server may answer `raw` with; empty when it is valid JSON text.

    `invalid_text` for bytes that are not UTF-8 or any string or key without a UTF-8 form;
    `invalid_json` for anything Python's permissive `json` reads that JSON does not allow
    (NaN, Infinity, a BOM), integers over 4,300 digits, and nesting past `max_depth`. A text
    with problems of both kinds may get either code: which is found first is not promised.
    """
    if isinstance(raw, bytes):
        try:
            raw = raw.decode("utf-8")  # strict: refuses encoded surrogates too
        except UnicodeDecodeError:
            return frozenset({"invalid_text"})
    try:
        raw.encode("utf-8")
    except UnicodeEncodeError:
        return frozenset({"invalid_text"})
    try:
        value = json.loads(raw)
    except (ValueError, RecursionError):
        return frozenset({"invalid_json"})
    codes = set()
    if _has_surrogate(value):
        codes.add("invalid_text")
    if _has_non_finite(value) or _depth(value) > max_depth:
        codes.add("invalid_json")
    return frozenset(codes)
