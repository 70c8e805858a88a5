"""The platform's producer channels, and how their messages become updates.

Other services of the platform PUBLISH JSON on plain Redis pub/sub channels. The Redis
broker listens to them and republishes each message into the stream of its subscription,
so producer messages get a `seq`, a place in the history and the same delivery as updates
published over HTTP. Mapping (the original platform's routing):

| channel | subscription | update type |
| --- | --- | --- |
| `system_events` | `system` | `system_event` |
| `agent_events:<agent id>` | `agents` | `agent_event` |
| `project_index:websocket_events` | `project_index` | `project_index_event` |

`project_index:websocket_events` messages carry `{"event": {...}, "subscribers": [...]}`;
the update's data is the `event`. Its `subscribers` named connection ids of the original
server; ids are chosen per instance here, so the list is ignored and every `project_index`
subscriber receives the event.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..errors import TextError
from ..messages import ECHO_CHARS, decode_json, is_valid_text, usable_correlation_id, utf8_length

__all__ = ["PRODUCER_CHANNELS", "PRODUCER_PATTERNS", "ProducerMessage", "route"]

PRODUCER_CHANNELS: tuple[str, ...] = ("system_events", "project_index:websocket_events")
"""Producer channels with exact names (subscribed with SUBSCRIBE)."""
PRODUCER_PATTERNS: tuple[str, ...] = ("agent_events:*",)
"""Producer channel patterns (subscribed with PSUBSCRIBE)."""


@dataclass(frozen=True, slots=True)
class ProducerMessage:
    """A producer message, routed.

    Attributes:
        subscription: where it is republished.
        type: the update type.
        data: the update's data.
        correlation_id: the event's own `correlation_id` when it carries a usable one.
    """

    subscription: str
    type: str
    data: dict[str, Any]
    correlation_id: str | None


def route(channel: str, payload: str, max_bytes: int, *, max_depth: int) -> ProducerMessage:
    """Turn one producer message into the update to republish.

    Args:
        channel: the channel it was published on.
        payload: its text, as the Redis link decodes it: bytes that are not UTF-8 arrive
            as lone surrogates (`surrogateescape`), and are refused here.
        max_bytes: largest payload accepted (the publish size limit), in UTF-8 bytes.
        max_depth: the deepest JSON nesting accepted (`max_json_depth`).

    Raises:
        ValueError: the channel is not a producer channel, or the payload is too large,
            not UTF-8, not valid JSON text (see `messages.decode_json`) or not a JSON
            object; the message says which.
    """
    if channel == "system_events":
        subscription, kind = "system", "system_event"
    elif channel.startswith("agent_events:"):
        subscription, kind = "agents", "agent_event"
    elif channel == "project_index:websocket_events":
        subscription, kind = "project_index", "project_index_event"
    else:
        raise ValueError(f"{channel[:ECHO_CHARS]!r} is not a producer channel")
    if not is_valid_text(payload):
        raise ValueError(f"message on {channel[:ECHO_CHARS]!r} is not UTF-8 or not Unicode")
    if utf8_length(payload) > max_bytes:
        raise ValueError(f"message on {channel[:ECHO_CHARS]!r} is larger than {max_bytes} bytes")
    try:
        data = decode_json(payload, max_depth=max_depth)
    except TextError as exc:
        raise ValueError(f"message on {channel[:ECHO_CHARS]!r}: {exc}") from None
    if not isinstance(data, dict):
        raise ValueError(f"message on {channel[:ECHO_CHARS]!r} is not a JSON object")
    if subscription == "project_index" and isinstance(data.get("event"), dict):
        data = data["event"]
    return ProducerMessage(
        subscription, kind, data, usable_correlation_id(data.get("correlation_id"))
    )
