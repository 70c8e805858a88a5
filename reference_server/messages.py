"""Frames of the dashboard protocol: the schema, builders, encoding and validation.

`schemas/ws_messages.schema.json` is the single definition of every frame. This module loads
it, derives the protocol's names from it (subscriptions, data types, error codes, the
contract version) and compiles validators for client frames. Nothing here does I/O after
import.
"""

from __future__ import annotations

import json
import math
import re
import sys
import urllib.parse
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import fastjsonschema

from .errors import FrameError, PayloadTooLarge, PublishError, TextError

__all__ = [
    "CONTRACT_VERSION",
    "CONTROL_TYPES",
    "DATA_TYPES",
    "DEFAULT_MESSAGE_TYPES",
    "DEFAULT_SUBSCRIPTIONS",
    "DISCONNECT_REASONS",
    "ECHO_CHARS",
    "ERROR_CODES",
    "MAX_CORRELATION_ID_CHARS",
    "SCHEMA",
    "SCHEMA_PATH",
    "SUBSCRIPTIONS",
    "SUPPORTED_CONTRACT_VERSIONS",
    "IdFactory",
    "PublishFields",
    "decode_json",
    "decode_query",
    "encode",
    "frame",
    "is_ascii_digits",
    "is_valid_text",
    "is_valid_update_type",
    "parse_client_frame",
    "parse_publish",
    "publisher_correlation_id",
    "usable_correlation_id",
    "utc_timestamp",
    "utf8_length",
]

SCHEMA_PATH = Path(__file__).resolve().parent / "ws_messages.schema.json"
"""Where the frame schema, the single definition of every frame, lives: inside the package,
so a wheel carries it (`schemas/ws_messages.schema.json` in the repository links here)."""
SCHEMA: dict[str, Any] = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
"""The frame schema, loaded (JSON Schema draft-07)."""
_DEFS: dict[str, Any] = SCHEMA["definitions"]

CONTRACT_VERSION: str = SCHEMA["x-contract-version"]
"""The contract version this server speaks, from the schema's `x-contract-version`."""
SUPPORTED_CONTRACT_VERSIONS: tuple[str, ...] = tuple(SCHEMA["x-supported-contract-versions"])
"""Every contract version a client may rely on (the PWA checks for `1.0.0`)."""
SUBSCRIPTIONS: tuple[str, ...] = tuple(_DEFS["SubscriptionName"]["enum"])
"""The subscription names a client may use."""
DEFAULT_SUBSCRIPTIONS: tuple[str, ...] = ("agents", "coordination", "system", "tasks")
"""The set a connection starts with when its URL names none (the original platform's default)."""
DATA_TYPES: tuple[str, ...] = tuple(_DEFS["RequestData"]["properties"]["data_type"]["enum"])
"""The `data_type` values `request_data` answers."""
ERROR_CODES: tuple[str, ...] = tuple(_DEFS["ErrorCode"]["enum"])
"""Every `code` an `error` frame may carry."""
DISCONNECT_REASONS: tuple[str, ...] = tuple(_DEFS["DisconnectReason"]["enum"])
"""Every `reason` a `disconnect_notice` may carry."""
CONTROL_TYPES: frozenset[str] = frozenset(_DEFS["UpdateType"]["not"]["enum"])
"""Frame types that are not updates; a publisher may not use them as `message_type`."""
DEFAULT_MESSAGE_TYPES: dict[str, str] = {
    "agents": "agent_update",
    "coordination": "coordination_update",
    "tasks": "task_update",
    "system": "system_update",
    "alerts": "critical_alert",
    "project_index": "project_index_event",
}
"""The update type a publish gets when it names none."""

ECHO_CHARS = 64
"""Client text quoted back in an error message is cut to this many characters, so a
hostile megabyte never travels back in an error frame or a log line."""
MAX_CORRELATION_ID_CHARS = 128
"""The longest correlation id kept from a client or publisher (the schema's `maxLength`)."""

# U+D800-U+DFFF are UTF-16 surrogates, not characters. JSON's grammar lets "\ud800" through
# (RFC 8259 §8.2 calls the result unpredictable; I-JSON, RFC 7493 §2.1, forbids it), and
# Python decodes it to a str that cannot be encoded as UTF-8, so one such string raises
# wherever a frame holding it is sent. Raw bytes that are not UTF-8, decoded with
# `surrogateescape` (the Redis link does), become these code points too.
_SURROGATE = re.compile("[\ud800-\udfff]")
# A decoded string can hold a surrogate only when the raw text escapes one (the raw text
# itself is checked first), so strings are walked only when this matches somewhere.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")
# Printable ASCII: what a correlation id from an HTTP header may hold. Starlette decodes
# header bytes as Latin-1 (RFC 9110 §5.5 obs-text), so any other byte would come back to
# subscribers as mojibake.
_HEADER_ID = re.compile(r"[\x20-\x7e]+")

IdFactory = Callable[[], str]
"""Makes a fresh id (connection and correlation ids); the app passes a UUID4 maker."""

_CLIENT_TYPES = {
    "ping": "Ping",
    "subscribe": "Subscribe",
    "unsubscribe": "Unsubscribe",
    "request_data": "RequestData",
}


def _compile(definition: str) -> Any:
    return fastjsonschema.compile(
        {"$ref": f"#/definitions/{definition}", "definitions": _DEFS},
        use_formats=False,
    )


_CLIENT_VALIDATORS = {t: _compile(name) for t, name in _CLIENT_TYPES.items()}
_UPDATE_TYPE_VALIDATOR = _compile("UpdateType")


def utc_timestamp(wall: float) -> str:
    """Format `wall` (seconds since the epoch) as UTC ISO 8601 with microseconds and `Z`."""
    return datetime.fromtimestamp(wall, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def utf8_length(text: str) -> int:
    """The length of `text` in UTF-8 bytes (what it costs on the wire and against limits).

    Raises:
        UnicodeEncodeError: `text` holds a lone surrogate, so it has no UTF-8 form. Text is
            validated where it enters (`decode_json`), so no frame of ours holds one.
    """
    # ASCII-only text (the common case) has as many bytes as characters; `isascii` reads a
    # flag CPython keeps on every str, far cheaper than encoding every frame.
    return len(text) if text.isascii() else len(text.encode("utf-8"))


def is_valid_text(text: str) -> bool:
    """Whether `text` is valid Unicode: it holds no lone surrogate, so it has a UTF-8 form."""
    return text.isascii() or _SURROGATE.search(text) is None


def is_ascii_digits(text: str) -> bool:
    """Whether `text` is one or more ASCII digits `0`-`9`, the only integer a query, header
    or cursor may hold. `str.isdigit` and `int()` also take `"\u0661"` (Arabic-Indic one),
    fullwidth `"\uff15"` and, for `isdigit` only, `"\u00b2"`."""
    return text.isascii() and text.isdigit()


def decode_query(raw: bytes) -> dict[str, str]:
    """Decode a request's query string (the ASGI scope's `query_string` bytes) strictly.

    Starlette decodes percent-escapes that are not UTF-8 (`%FF`, an encoded surrogate
    `%ED%A0%80`) to U+FFFD, which then reads as a wrong value. Here every byte that is not
    UTF-8, raw or percent-encoded, becomes a lone surrogate instead (`surrogateescape`), so
    `is_valid_text` refuses the parameter and the caller can name it. `+` is a space; the
    last of repeated names wins, as in Starlette's `query_params`.

    Returns:
        Each parameter's value, by name; the caller refuses a name or value that is not
        `is_valid_text`.
    """
    text = raw.decode("utf-8", "surrogateescape")
    query: dict[str, str] = {}
    for name, value in urllib.parse.parse_qsl(
        text, keep_blank_values=True, encoding="utf-8", errors="surrogateescape"
    ):
        query[name] = value
    return query


def _check_text(text: str, where: str) -> None:
    found = None if text.isascii() else _SURROGATE.search(text)
    if found is not None:
        raise TextError(
            "invalid_text",
            where,
            f"is not valid Unicode (lone surrogate U+{ord(found.group()):04X} at character "
            f"{found.start()})",
        )


def usable_correlation_id(value: object) -> str | None:
    """`value` when it is a correlation id worth echoing (a non-empty string of at most
    `MAX_CORRELATION_ID_CHARS` characters, valid Unicode); None otherwise."""
    if isinstance(value, str) and 0 < len(value) <= MAX_CORRELATION_ID_CHARS:
        return value if is_valid_text(value) else None
    return None


def publisher_correlation_id(header: str | None) -> str | None:
    """The correlation id a publisher sent in `X-Correlation-ID`; None when absent.

    Raises:
        PublishError: it is empty, longer than `MAX_CORRELATION_ID_CHARS` or holds anything
            but printable ASCII (HTTP 422); the message names the header.
    """
    if header is None:
        return None
    if len(header) > MAX_CORRELATION_ID_CHARS or not _HEADER_ID.fullmatch(header):
        raise PublishError(
            f"X-Correlation-ID must be 1 to {MAX_CORRELATION_ID_CHARS} printable ASCII characters"
        )
    return header


def _refuse_constant(name: str) -> Any:
    # json.loads accepts NaN, Infinity and -Infinity, which are not JSON (RFC 8259 §6): a
    # browser's JSON.parse throws on the whole frame they would end up in.
    raise TextError("invalid_json", "text", f"holds {name}, which is not a JSON number")


def _finite_float(literal: str) -> float:
    value = float(literal)
    if not math.isfinite(value):  # 1e999 parses as inf, and would go out as Infinity
        raise TextError("invalid_json", "text", f"holds {literal[:ECHO_CHARS]}, out of range")
    return value


_CONTAINERS = (dict, list)  # a tuple: isinstance checks it faster than `dict | list`
# One decoder for every call: json.loads with hooks would build a new one each time.
_DECODER = json.JSONDecoder(parse_constant=_refuse_constant, parse_float=_finite_float)


def _where(path: str) -> str:
    return path if len(path) <= 2 * ECHO_CHARS else path[: 2 * ECHO_CHARS] + "…"


def _walk(value: object, max_depth: int) -> None:
    """Check every string and key of a decoded value, and its depth, without recursion."""
    stack: list[tuple[object, int, str]] = [(value, 1, "$")]
    while stack:
        item, depth, path = stack.pop()
        if isinstance(item, str):
            _check_text(item, _where(path))
            continue
        if not isinstance(item, dict | list):
            continue
        if depth > max_depth:
            raise TextError("invalid_json", _where(path), f"is nested deeper than {max_depth}")
        if isinstance(item, list):
            stack.extend((v, depth + 1, f"{path}[{i}]") for i, v in enumerate(item))
            continue
        for key, child in item.items():
            _check_text(key, _where(f"{path} (a key)"))
            # A key goes into a path only once checked, so an error message never holds one.
            stack.append((child, depth + 1, f"{path}.{key[:ECHO_CHARS]}"))


def decode_json(raw: str | bytes, *, max_depth: int) -> Any:
    """Decode JSON text from outside strictly: the one check of every edge.

    Refuses what `json.loads` lets through but a peer cannot read or this server cannot
    send: bytes that are not UTF-8 (no BOM, no UTF-16 guessing; RFC 8259 §8.1), lone
    surrogates in the text or in any decoded string or key (`"\\ud800"`), arrays and
    objects nested deeper than `max_depth`, and NaN, Infinity or numbers out of float
    range (`1e999`), which are not JSON. Integers longer than Python's digit limit (4300
    by default, CPython's guard against quadratic conversion) are refused too.

    Args:
        raw: the text, or its bytes (which must be UTF-8).
        max_depth: the deepest nesting accepted (`max_json_depth`); the top level is 1.

    Returns:
        The decoded value, of any JSON type (callers check that it is an object).

    Raises:
        TextError: `code` is `invalid_text` (not UTF-8 or not valid Unicode) or
            `invalid_json` (syntax, depth or number); `where` says where, as a JSON path
            (`$.data.name`), `byte N` or `text`. `decoded` holds the decoded value when
            only a check after decoding failed (None otherwise).
    """
    if isinstance(raw, bytes):
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise TextError("invalid_text", f"byte {exc.start}", "is not valid UTF-8") from None
    else:
        text = raw
        _check_text(text, "text")
    try:
        value = _DECODER.decode(text)
    except TextError as exc:
        exc.decoded = _decode_leniently(text)
        raise
    except json.JSONDecodeError as exc:
        raise TextError("invalid_json", f"char {exc.pos}", f"is not JSON ({exc.msg})") from None
    except ValueError:
        limit = sys.get_int_max_str_digits()
        error = TextError("invalid_json", "text", f"holds an integer over {limit} digits")
        error.decoded = _decode_leniently(text)
        raise error from None
    except RecursionError:
        raise TextError("invalid_json", "text", f"is nested deeper than {max_depth}") from None
    # Each check is skipped when it cannot find anything: nesting needs at least as many
    # brackets as levels, and a surrogate in a decoded string needs an escape in the text.
    # Both run at C speed where they can; only a value that fails one is walked in Python,
    # to say where.
    deep = text.count("[") + text.count("{") > max_depth and _deeper_than(value, max_depth)
    if deep or (_SURROGATE_ESCAPE.search(text) and not _text_is_valid(value)):
        try:
            _walk(value, max_depth)
        except TextError as exc:
            exc.decoded = value
            raise
    return value


def _deeper_than(value: object, max_depth: int) -> bool:
    """Whether `value` nests arrays and objects deeper than `max_depth`, level by level."""
    level: list[Any] = [value] if isinstance(value, _CONTAINERS) else []
    depth = 0
    while level:
        depth += 1
        if depth > max_depth:
            return True
        children: list[Any] = []
        for item in level:
            values = item.values() if type(item) is dict else item
            children.extend([v for v in values if isinstance(v, _CONTAINERS)])
        level = children
    return False


def _text_is_valid(value: object) -> bool:
    """Whether every string and key in `value` is valid Unicode (json.dumps visits them all)."""
    try:
        return is_valid_text(json.dumps(value, ensure_ascii=False, check_circular=False))
    except RecursionError:
        return False  # the walk that follows says what is wrong


def encode(obj: Mapping[str, Any]) -> str:
    """Serialise a frame to the compact JSON text sent on the wire.

    Raises:
        ValueError: the frame holds NaN or Infinity, or text that is not valid Unicode.
            Every edge validates text (`decode_json`), so this means a bug, and it raises
            before anything is queued or cached for any recipient.
    """
    text = json.dumps(obj, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    if not is_valid_text(text):
        raise ValueError("a frame holds text that is not valid Unicode (a lone surrogate)")
    return text


def frame(kind: str, *, correlation_id: str, wall: float, **fields: Any) -> dict[str, Any]:
    """Build a server frame of type `kind` with the fields every server frame carries."""
    return {
        "type": kind,
        "correlation_id": correlation_id,
        "timestamp": utc_timestamp(wall),
        **fields,
    }


# Reads what the strict decoder refuses only in its numbers (NaN, 1e999, an integer over
# Python's digit limit), each as None, so that an edge can still echo the correlation id.
_LENIENT = json.JSONDecoder(
    parse_constant=lambda _: None, parse_float=lambda _: None, parse_int=lambda _: None
)


def _decode_leniently(text: str) -> object:
    """`text` decoded with every number as None; None when even that fails."""
    try:
        return _LENIENT.decode(text)
    except (ValueError, RecursionError):
        return None


def is_valid_update_type(kind: str) -> bool:
    """Whether `kind` may name a published update (pattern and not a control frame type)."""
    try:
        _UPDATE_TYPE_VALIDATOR(kind)
    except fastjsonschema.JsonSchemaException:
        return False
    return True


def parse_client_frame(raw: str, *, max_depth: int) -> dict[str, Any]:
    """Parse and validate one inbound text frame.

    Args:
        raw: the frame's text.
        max_depth: the deepest JSON nesting accepted (`max_json_depth`).

    Returns:
        The frame as a dict whose `type` is a known client type and whose fields match the
        schema, every string in it valid Unicode. `request_data` with an unknown
        `data_type` string is returned as is: it is answered with `data_error`, not refused.

    Raises:
        FrameError: with the code and original message to send in an `error` frame.
    """
    try:
        obj = decode_json(raw, max_depth=max_depth)
    except TextError as exc:
        decoded = exc.decoded
        cid = (
            usable_correlation_id(decoded.get("correlation_id"))
            if isinstance(decoded, dict)
            else None
        )
        if exc.code == "invalid_text":
            raise FrameError("invalid_text", f"Invalid text: {exc}", cid) from None
        # Bad syntax, nesting too deep, NaN, huge integers: hostile input, never a crash.
        raise FrameError("invalid_json", "Invalid JSON message format", cid) from None
    if not isinstance(obj, dict):
        raise FrameError("not_an_object", "Invalid JSON message format")
    cid = usable_correlation_id(obj.get("correlation_id"))
    kind = obj.get("type")
    if not isinstance(kind, str):
        raise FrameError("invalid_field", "Invalid message: type must be a string", cid)
    validator = _CLIENT_VALIDATORS.get(kind)
    if validator is None:
        raise FrameError("unknown_message_type", f"Unknown message type: {kind[:ECHO_CHARS]}", cid)
    if kind == "request_data" and isinstance(obj.get("data_type"), str):
        # An unknown data type is a data_error (answered), not a malformed frame.
        checked = {**obj, "data_type": DATA_TYPES[0]}
    else:
        checked = obj
    try:
        validator(checked)
    except fastjsonschema.JsonSchemaException as exc:
        detail = str(exc).removeprefix("data.")
        raise FrameError("invalid_field", f"Invalid {kind} message: {detail}", cid) from None
    return obj


PublishFields = tuple[str, dict[str, Any]]
"""What a valid publish becomes: the update's type and its data."""


def parse_publish(
    subscription: str, message_type: str | None, body: bytes, max_bytes: int, *, max_depth: int
) -> PublishFields:
    """Validate one publish (the broadcast route's query and body).

    Args:
        subscription: the subscription to publish on.
        message_type: the update type; None takes the subscription's default
            (`DEFAULT_MESSAGE_TYPES`).
        body: the request body, the update's data as a JSON object.
        max_bytes: the largest body accepted (`max_inbound_message_bytes`), in bytes.
        max_depth: the deepest JSON nesting accepted (`max_json_depth`).

    Returns:
        The update's type and data.

    Raises:
        PayloadTooLarge: `body` is longer than `max_bytes` (HTTP 413).
        PublishError: unknown subscription, invalid type, or a body that is not a JSON
            object in UTF-8 with valid Unicode text (HTTP 422); the message says which
            and where (`Body: $.name is not valid Unicode ...`).
    """
    if subscription not in SUBSCRIPTIONS:
        raise PublishError(
            f"Unknown subscription {subscription[:ECHO_CHARS]!r}; valid: "
            + ", ".join(SUBSCRIPTIONS)
        )
    kind = message_type or DEFAULT_MESSAGE_TYPES[subscription]
    if kind == "critical_alert":
        if subscription != "alerts":
            raise PublishError("critical_alert is published on the alerts subscription")
    elif not is_valid_update_type(kind):
        raise PublishError(
            f"Invalid message_type {kind[:ECHO_CHARS]!r}: lower-case letters, digits "
            "and underscores, not a control frame type"
        )
    if len(body) > max_bytes:
        raise PayloadTooLarge("Message too large")
    try:
        data = decode_json(body, max_depth=max_depth)
    except TextError as exc:
        raise PublishError(f"Body: {exc}") from None
    if not isinstance(data, dict):
        raise PublishError("Body must be a JSON object (the update's data)")
    if kind == "critical_alert" and not isinstance(data.get("alerts"), list):
        raise PublishError("critical_alert data needs an 'alerts' list")
    return kind, data
