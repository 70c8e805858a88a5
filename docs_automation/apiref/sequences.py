"""Mermaid sequence diagrams of the protocol's main exchanges.

The order of frames follows `reference_server.session` (for example `subscription_updated`
before a resume's replay); every number, frame field, close code and environment name is read
from the settings, the schema and `CLOSE_CODES`, so a changed default or code changes the
diagrams with it. Mermaid treats `;` and `#` specially in messages, so neither is used.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from reference_server import WS_PATH, Settings

__all__ = ["sequences"]

_HEAD = (
    "sequenceDiagram\n    participant C as Client (PWA)\n    participant S as Reference server\n"
)


def _num(value: float) -> str:
    return f"{value:g}"


def _fields(defs: Mapping[str, Any], name: str) -> str:
    """The frame's own required fields (those every frame carries left out), for a message."""
    common = {"type", "correlation_id", "timestamp"}
    return ", ".join(f for f in defs[name]["required"] if f not in common)


def sequences(
    schema: Mapping[str, Any], settings: Settings, close_codes: Mapping[str, int]
) -> dict[str, str]:
    """Title to Mermaid source of each diagram, in reading order.

    Args:
        schema: the frame schema (field names come from its definitions).
        settings: the settings whose defaults the diagrams quote.
        close_codes: disconnect reason to WebSocket close code.
    """
    defs = schema["definitions"]
    s, env = settings, Settings.env_name
    upgrade = f"C->>S: GET {WS_PATH}?subscriptions=agents,alerts (Upgrade: websocket)\n"
    connect = (
        f"    {upgrade}"
        "    S-->>C: 101 Switching Protocols\n"
        f"    S->>C: connection_established {{{_fields(defs, 'ConnectionEstablished')}}}\n"
        "    Note over C,S: always the first frame on a connection\n"
        '    C->>S: ping {correlation_id: "c-1"}\n'
        '    S->>C: pong {correlation_id: "c-1"}\n'
    )
    subscribe = (
        '    C->>S: subscribe {subscriptions: ["alerts", "bogus"], correlation_id: "c-2"}\n'
        "    S->>C: error {code: invalid_subscription, "
        'message: "Invalid subscription(s): bogus"}\n'
        f"    S->>C: subscription_updated {{{_fields(defs, 'SubscriptionUpdated')}}}\n"
        "    Note over S: a publisher broadcasts on alerts\n"
        f"    S->>C: critical_alert {{{_fields(defs, 'CriticalAlert')}}}\n"
    )
    resume = (
        "    Note over C: reconnects after a drop, last seq seen on agents was 41\n"
        "    C->>S: subscribe {subscriptions: [agents], resume: {agents: 41}}\n"
        "    S->>C: subscription_updated\n"
        f"    alt seq 41 is still in history ({s.history_max_messages} updates, "
        f"{_num(s.history_max_age_seconds)} s)\n"
        "        S->>C: agent_update seq 42, 43, ... replayed in order\n"
        "    else older updates are gone\n"
        f"        S->>C: resync_required {{{_fields(defs, 'ResyncRequired')}}}\n"
        "        S->>C: what history still holds, in order\n"
        "        C->>S: request_data to refetch state\n"
        "    end\n"
        "    S->>C: live updates continue, seq without gaps\n"
    )
    rate = (
        f"    loop faster than {_num(s.rate_tokens_per_sec)} frames/s "
        f"after a burst of {_num(s.rate_burst)}\n"
        "        C->>S: any frame (invalid ones cost a token too)\n"
        "    end\n"
        "    Note over S: frames without a token are dropped\n"
        '    S->>C: error {code: rate_limited, message: "Rate limit exceeded"}\n'
        f"    Note over C,S: at most one such error per {_num(s.rate_notify_cooldown_seconds)} s\n"
        f"    opt more than {s.flood_drop_threshold} frames dropped within "
        f"{_num(s.flood_window_seconds)} s\n"
        "        S->>C: disconnect_notice {reason: rate_limited}\n"
        f"        S-->>C: close {close_codes['rate_limited']}\n"
        "    end\n"
    )
    backpressure = (
        "    Note over C: stops reading (a frozen tab, a dead network)\n"
        f"    S->>C: updates queue up, at most {s.send_queue_max_messages} frames and "
        f"{s.send_queue_max_bytes:,} bytes (queue and socket buffer) per connection\n"
        "    Note over S: the broadcaster never waits for this client\n"
        f"    Note over S: a bound passed, or {s.backpressure_disconnect_threshold} sends in a row "
        f"failed or blocked past {_num(s.send_timeout_seconds)} s\n"
        "    S->>C: disconnect_notice {reason: backpressure}\n"
        f"    S-->>C: close {close_codes['backpressure']}\n"
    )
    auth = (
        f"    Note over S: {env('auth_required')}=true\n"
        f"    C->>S: GET {WS_PATH}?access_token=wrong (Upgrade: websocket)\n"
        "    S-->>C: 101 Switching Protocols\n"
        "    Note over C,S: accepted first, because a browser cannot read a refused handshake\n"
        "    S->>C: disconnect_notice {reason: unauthorized}\n"
        f"    S-->>C: close {close_codes['unauthorized']}\n"
        f"    Note over C,S: an Origin outside {env('allowed_origins')} closes "
        f"{close_codes['forbidden_origin']} the same way\n"
    )
    bodies = {
        "Connect": connect,
        "Subscribe": subscribe,
        "Resume": resume,
        "Rate limit": rate,
        "Backpressure": backpressure,
        "Auth rejection": auth,
    }
    return {title: _HEAD + body for title, body in bodies.items()}
