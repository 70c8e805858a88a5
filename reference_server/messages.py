"""Frames of the dashboard protocol: the schema, builders, encoding and validation.

`schemas/ws_messages.schema.json` is the single definition of every frame. This module loads
it, derives the protocol's names from it (subscriptions, data types, error codes, the
contract version) and compiles validators for client frames. Nothing here does I/O after
import.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import fastjsonschema

from .errors import FrameError, PayloadTooLarge, PublishError

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
    "encode",
    "frame",
    "is_valid_update_type",
    "parse_client_frame",
    "parse_publish",
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

    Lone surrogates (possible in decoded hostile JSON) count as their three bytes instead
    of raising.
    """
    # ASCII-only text (the common case) has as many bytes as characters; checking that is
    # far cheaper than encoding every frame.
    return len(text) if text.isascii() else len(text.encode("utf-8", "surrogatepass"))


def usable_correlation_id(value: object) -> str | None:
    """`value` when it is a correlation id worth echoing (a non-empty string of at most
    `MAX_CORRELATION_ID_CHARS` characters); None otherwise."""
    if isinstance(value, str) and 0 < len(value) <= MAX_CORRELATION_ID_CHARS:
        return value
    return None


def encode(obj: Mapping[str, Any]) -> str:
    """Serialise a frame to the compact JSON text sent on the wire."""
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)


def frame(kind: str, *, correlation_id: str, wall: float, **fields: Any) -> dict[str, Any]:
    """Build a server frame of type `kind` with the fields every server frame carries."""
    return {
        "type": kind,
        "correlation_id": correlation_id,
        "timestamp": utc_timestamp(wall),
        **fields,
    }


def is_valid_update_type(kind: str) -> bool:
    """Whether `kind` may name a published update (pattern and not a control frame type)."""
    try:
        _UPDATE_TYPE_VALIDATOR(kind)
    except fastjsonschema.JsonSchemaException:
        return False
    return True


def parse_client_frame(raw: str) -> dict[str, Any]:
    """Parse and validate one inbound text frame.

    Returns:
        The frame as a dict whose `type` is a known client type and whose fields match the
        schema. `request_data` with an unknown `data_type` string is returned as is: it is
        answered with `data_error`, not refused.

    Raises:
        FrameError: with the code and original message to send in an `error` frame.
    """
    try:
        obj = json.loads(raw)
    except (ValueError, RecursionError):
        # ValueError covers bad JSON and integers past Python's digit limit; RecursionError
        # covers arrays nested thousands deep. Both are hostile input, never a crash.
        raise FrameError("invalid_json", "Invalid JSON message format") from None
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
    subscription: str, message_type: str | None, body: bytes, max_bytes: int
) -> PublishFields:
    """Validate one publish (the broadcast route's query and body).

    Args:
        subscription: the subscription to publish on.
        message_type: the update type; None takes the subscription's default
            (`DEFAULT_MESSAGE_TYPES`).
        body: the request body, the update's data as a JSON object.
        max_bytes: the largest body accepted (`max_inbound_message_bytes`), in bytes.

    Returns:
        The update's type and data.

    Raises:
        PayloadTooLarge: `body` is longer than `max_bytes` (HTTP 413).
        PublishError: unknown subscription, invalid type, or a body that is not a JSON
            object (HTTP 422); the message says which.
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
        data = json.loads(body)
    except (ValueError, RecursionError):
        raise PublishError("Body must be a JSON object (the update's data)") from None
    if not isinstance(data, dict):
        raise PublishError("Body must be a JSON object (the update's data)")
    if kind == "critical_alert" and not isinstance(data.get("alerts"), list):
        raise PublishError("critical_alert data needs an 'alerts' list")
    return kind, data
