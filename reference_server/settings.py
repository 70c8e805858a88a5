"""Every limit and switch of the reference server, in one frozen object.

Each field is a named setting with a safe default and a unit. `Settings.from_env` reads the
`WS_*` environment names (and `REDIS_URL`); the constructor validates every value and raises
`SettingsError` with a sentence that names the bad key, so a bad deployment fails at start-up,
not at the first client.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

import websockets.http11

from .errors import SettingsError

__all__ = ["SETTING_DOCS", "SETTING_MAXIMA", "Settings"]

SETTING_DOCS: dict[str, tuple[str, str]] = {
    "host": ("", "Interface the server listens on."),
    "port": ("", "TCP port the server listens on (8000 is the port the PWA uses in development)."),
    "auth_required": ("", "Require a token on every WebSocket connection."),
    "auth_token": ("", "The token clients present (Bearer header or `access_token` query)."),
    "admin_token": (
        "",
        "Token for the broadcast endpoint (when unset, `auth_token` is used) and for the "
        "admin routes (limit changes, the connections listing; off while unset).",
    ),
    "allowed_origins": ("", "Exact `Origin` values allowed to connect; empty allows any."),
    "cors_allowed_origins": (
        "",
        "Origins whose pages may read the REST endpoints with GET (CORS); the default is the "
        "docs site's live console on port 8001. Empty sends no CORS headers.",
    ),
    "rate_tokens_per_sec": ("tokens/s", "Inbound token-bucket refill rate per connection."),
    "rate_burst": ("tokens", "Inbound token-bucket capacity per connection."),
    "rate_notify_cooldown_seconds": ("s", "At most one `Rate limit exceeded` error per window."),
    "flood_drop_threshold": ("frames", "Dropped frames within the flood window that close 1008."),
    "flood_window_seconds": ("s", "Window over which dropped frames are counted."),
    "max_inbound_message_bytes": ("bytes", "Largest raw inbound frame that is processed."),
    "max_frame_bytes": ("bytes", "Frames above this are refused by the transport (close 1009)."),
    "max_subscriptions_per_connection": ("subscriptions", "Cap on one connection's set."),
    "max_request_body_bytes": (
        "bytes",
        "Largest HTTP request body read; a larger one gets 413 once this much (plus at most "
        "one read) has arrived, with or without `Content-Length`.",
    ),
    "max_url_bytes": ("bytes", "Longest request target (path and query); longer gets 414."),
    "max_header_line_bytes": (
        "bytes",
        "Longest header line (name, colon, space, value); longer gets 431. At most 8190, the "
        "WebSocket handshake parser's own line limit.",
    ),
    "max_headers": ("headers", "Most header fields in one request; more gets 431. At most 128."),
    "max_header_bytes": (
        "bytes",
        "Largest request head (request line and every header), counted as it arrives; larger "
        "gets 431.",
    ),
    "http_request_timeout_seconds": (
        "s",
        "Longest a client may take to send a whole HTTP request or WebSocket handshake, "
        "counted from connecting (or from its first byte after a response); past it 408 and "
        "the socket is closed.",
    ),
    "max_json_depth": (
        "levels",
        "Deepest nesting of arrays and objects accepted in a client frame, a publish body or "
        "a producer message (the top level is 1); deeper is refused as invalid JSON. "
        "Instances sharing one Redis must use the same value.",
    ),
    "connections_page_max": (
        "connections",
        "Most connections one page of `GET /api/dashboard/websocket/connections` lists (its "
        "`limit` and default).",
    ),
    "dashboard_state_max_bytes": (
        "bytes",
        "Agent state kept for `request_data` `agent_status` answers; past it the least "
        "recently updated agents are forgotten.",
    ),
    "send_queue_max_messages": ("messages", "Per-connection outbound queue cap."),
    "send_queue_max_bytes": (
        "bytes",
        "Per-connection bound on the bytes waiting for a client, outbound queue and socket "
        "write buffer together; a frame that would pass it closes the client 1013 "
        "(`backpressure`). One frame always passes when nothing waits.",
    ),
    "backpressure_disconnect_threshold": ("failures", "Consecutive send failures that close 1013."),
    "write_delay_seconds": (
        "s",
        "How long frames due to a connection wait to be written together, one write for all "
        "of them; 0 writes at the end of the current event-loop turn. Longer trades latency "
        "for fewer system calls.",
    ),
    "write_coalesce_window_seconds": (
        "s",
        "With no write delay, the shortest time between two flushes under a sustained rate: "
        "when two flushes in a row are due less than this after the one before, frames wait "
        "for it to pass, so under a high publish rate "
        "each connection gets the frames of several publishes in one write, while an "
        "instance flushing less often than this adds no latency. 0 writes at the end of "
        "every event-loop turn.",
    ),
    "send_timeout_seconds": ("s", "A single send blocked longer than this counts as failed."),
    "idle_disconnect_seconds": ("s", "Close 1000 after this long with no valid inbound frame."),
    "shutdown_grace_seconds": ("s", "Time clients get to receive their close on SIGTERM."),
    "per_message_deflate": ("", "Offer permessage-deflate (costs about 4x CPU per delivery)."),
    "redis_url": ("", "Redis URL for fan-out across instances; empty uses the in-process broker."),
    "history_max_messages": ("messages", "Updates kept per subscription for resume."),
    "history_max_age_seconds": ("s", "Oldest update kept for resume."),
    "resume_wait_seconds": (
        "s",
        "Longest a resume from a position this instance has not reached yet waits for it "
        "(with Redis, another instance may be a few milliseconds ahead); then "
        "`resync_required`. Live updates of that subscription are held meanwhile, at most "
        "`send_queue_max_bytes` of them (past it the client is cut off, 1013).",
    ),
    "redis_backoff_cap_seconds": ("s", "Cap of the full-jitter reconnect backoff to Redis."),
    "redis_backoff_base_seconds": (
        "s",
        "Ceiling of the first reconnect delay; it doubles per attempt.",
    ),
    "redis_timeout_seconds": (
        "s",
        "Redis connect and command timeout; past it Redis counts as down.",
    ),
    "redis_heartbeat_seconds": (
        "s",
        "How often an instance renews its liveness in Redis; 3 missed renewals drop it.",
    ),
    "redis_ack_timeout_seconds": (
        "s",
        "Longest a publish waits for every live instance to take it before a 503.",
    ),
    "redis_max_connections": ("connections", "Redis connections one instance may open."),
    "redis_producer_dedupe_seconds": (
        "s",
        "How long Redis remembers a republished producer message, so that the other instances "
        "that heard it do not append it again; an instance without a heartbeat for half of it "
        "rebuilds its link. Must exceed 6 heartbeats.",
    ),
    "redis_key_prefix": ("", "Prefix of every Redis key and channel the broker owns."),
    "redis_sentinels": (
        "",
        "Redis Sentinel addresses, `host:port,host:port,...`, used instead of `REDIS_URL`: "
        "every connection asks them for the current primary of `WS_REDIS_SENTINEL_MASTER`. "
        "List them all; any one that answers is enough.",
    ),
    "redis_sentinel_master": (
        "",
        "The master name the Sentinels monitor (`sentinel monitor <name> ...`); required "
        "with `WS_REDIS_SENTINELS`.",
    ),
    "redis_wait_replicas": (
        "replicas",
        "Replicas that must confirm an update (Redis `WAIT`) before its publish is "
        "acknowledged; fewer in time refuses it (503). Empty: it follows the topology, 1 with "
        "`WS_REDIS_SENTINELS`, and with `REDIS_URL` 1 from the first time the primary is "
        "seen with a replica (`ROLE`, read when the link opens and at every heartbeat; it "
        "stays 1 if the replica goes), else 0. 0 acknowledges what the primary alone holds, "
        "which a failover can lose.",
    ),
    "redis_wait_timeout_ms": (
        "ms",
        "Longest a publish waits for `WS_REDIS_WAIT_REPLICAS` replicas to confirm it (the "
        "`WAIT` timeout). Unless `WS_REDIS_WAIT_REPLICAS` is 0, it plus 200 ms must be at most "
        "`WS_REDIS_TIMEOUT_SECONDS`: Redis ends a WAIT only at its next tick (100 ms apart).",
    ),
    "redis_wait_max_publishes": (
        "publishes",
        "Publishes of one instance that may wait for replicas (`WAIT`) at once, each on a "
        "connection of their own pool (apart from `WS_REDIS_MAX_CONNECTIONS`, so heartbeats "
        "and reads never wait for them); the next waits for a turn at most "
        "`WS_REDIS_WAIT_TIMEOUT_MS`, then is refused unpublished (503).",
    ),
    "redis_password": (
        "",
        "Password of the Redis nodes behind `WS_REDIS_SENTINELS` (`requirepass`, or the "
        "`default` user's); with `REDIS_URL`, put it in the URL instead.",
    ),
    "redis_sentinel_password": (
        "",
        "Password of the Sentinels themselves (their `requirepass`); empty: none.",
    ),
    "demo": ("", "Run the demo producer (realistic agent, task and system updates)."),
    "demo_interval_seconds": ("s", "Pause between two demo updates."),
    "log_level": ("", "Lowest log level written (debug, info, warning, error)."),
    "log_repeat_window_seconds": (
        "s",
        "Library log records of one kind (uvicorn, websockets, asyncio), and one "
        "connection's frame_refused lines, are written at most once per window; the next "
        "says how many were suppressed.",
    ),
}
"""Unit and meaning of every setting, keyed by field name; the configuration reference is
generated from it, so a setting without a line here fails the tests."""

_DAY_SECONDS = 86_400.0
_GIB = 1_073_741_824

SETTING_MAXIMA: dict[str, float] = {
    # Python's own recursion limit is 1000: deeper nesting could never be decoded anyway.
    "max_json_depth": 1_000,
    # A rate or burst past a million frames a second is no rate limit at all.
    "rate_tokens_per_sec": 1_000_000,
    "rate_burst": 1_000_000,
    # A byte bound of more than 1 GiB per request or client bounds no memory.
    "max_inbound_message_bytes": _GIB,
    "max_frame_bytes": _GIB,
    "max_request_body_bytes": _GIB,
    "max_header_bytes": _GIB,
    "dashboard_state_max_bytes": _GIB,
    "send_queue_max_bytes": _GIB,
    # Redis refuses WAIT for more replicas than it can have in any sane deployment.
    "redis_wait_replicas": 100,
    # A replica that takes over a minute to confirm a write is gone.
    "redis_wait_timeout_ms": 60_000,
    # Each waiting publish holds a connection: more than this is a connection flood.
    "redis_wait_max_publishes": 10_000,
    # Every wait and window: longer than a day is a hang or a limit that never acts.
    **{name: _DAY_SECONDS for name in SETTING_DOCS if name.endswith("_seconds")},
    # A resume held longer than a minute holds its live updates in memory as long.
    "resume_wait_seconds": 60.0,
    # Beyond a second every dashboard update would look late; the bound is the latency.
    "write_delay_seconds": 1.0,
    "write_coalesce_window_seconds": 1.0,
}
"""The largest value of each setting that has one, keyed by field name, in its unit: above
it the setting would disable the protection it exists for. Checked at start-up and on a
runtime change alike."""

RATE_MIN_TOKENS_PER_SEC = 0.001
"""The slowest refill accepted (one frame per 1000 s): below it a client could never send."""

_LOG_LEVELS = ("debug", "info", "warning", "error")
# `websockets` parses the handshake with these limits (its http11.MAX_LINE_LENGTH and
# MAX_NUM_HEADERS); a head limit above them would let a handshake through to a refusal.
_HANDSHAKE_MAX_LINE = websockets.http11.MAX_LINE_LENGTH
_HANDSHAKE_MAX_HEADERS = websockets.http11.MAX_NUM_HEADERS
# "GET " + URL + " HTTP/1.1" + CRLF: the request line around the URL.
_REQUEST_LINE_OVERHEAD = len("GET  HTTP/1.1\r\n")


def _shown(value: float) -> str:
    """`value` for a sentence: whole numbers in full (1073741824), others shortest (1e+308)."""
    if float(value).is_integer() and abs(value) < 1e16:
        return str(int(value))
    return f"{value:g}"


def _is_utf8_text(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


_MS_PER_SECOND = 1000
_WAIT_MARGIN_MS = 200
"""Room between `redis_wait_timeout_ms` and `redis_timeout_seconds`, in ms: Redis ends a
WAIT that timed out at its next cron tick (100 ms apart at the default `hz 10`), so the
answer can come that much late, plus a loaded machine's delay."""


def sentinel_address(text: str) -> tuple[str, int]:
    """`host:port` (IPv6 as `[addr]:port`) as a (host, port) pair.

    Raises:
        SettingsError: `text` is not `host:port` with a port from 1 to 65535.
    """
    host, sep, port = text.rpartition(":")
    host = host.removeprefix("[").removesuffix("]")
    if (
        not sep
        or not host
        or not port.isascii()
        or not port.isdigit()
        or not 0 < int(port) < 65_536
    ):
        raise SettingsError(
            f"WS_REDIS_SENTINELS entries must be host:port with a port from 1 to 65535, "
            f"got {text[:80]!r}"
        )
    return host, int(port)


_MISSED_HEARTBEATS = 3
"""Heartbeats an instance may miss before the others stop counting it live (the Redis
broker's liveness TTL is this many `redis_heartbeat_seconds`)."""


def _parse_bool(key: str, raw: str) -> bool:
    lowered = raw.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off", ""):
        return False
    raise SettingsError(
        f"{key} must be a boolean: true/false, 1/0, yes/no or on/off (or empty for false), "
        f"got {raw!r}"
    )


@dataclass(frozen=True)
class Settings:
    """The server's configuration. Build it with `Settings.from_env` or keyword arguments.

    Every field is a named setting with a safe default and a unit, read from `WS_` plus its
    upper-cased name (`REDIS_URL` for `redis_url`). The configuration reference page
    (`docs/reference/configuration.md`, generated from `SETTING_DOCS`) lists every field
    with its environment name, unit and default.

    Attributes:
        host/port: where the server listens: the interface, and the TCP port.
        auth_*/admin_token: who may connect (`auth_required`, `auth_token`) and who may
            publish on the broadcast route and use the admin routes (`admin_token`).
        *origins: the `Origin` values allowed to connect, and the web pages that may read
            the REST endpoints (CORS).
        rate_*/flood_*: the per-connection rate limit (tokens per second, a burst in
            tokens, one notice per cooldown in seconds) and flood protection (dropped frames
            per window in seconds).
        max_*: size limits in bytes (inbound message, frame, HTTP request body, URL, header
            line, request head), header fields per request, subscriptions per
            connection, and JSON nesting in levels.
        http_request_timeout_seconds: the time a client has to send a whole request.
        connections_page_max: the largest page of the admin connections listing.
        dashboard_state_max_bytes: the agent state kept for `agent_status` answers, in bytes.
        send_*/backpressure_*: the bounded outbound queue (messages, and bytes counting
            the socket's write buffer too), how long one send may block (seconds), and the
            consecutive send failures that close the connection.
        write_delay_seconds: how long frames wait to leave together in one write (0: the
            end of the current event-loop turn).
        write_coalesce_window_seconds: with no write delay, the shortest time between two
            flushes in seconds; frames due sooner wait for it (0: every turn's end).
        idle_*/shutdown_*: the idle timeout and the shutdown grace, in seconds.
        per_message_deflate: whether to offer compression.
        redis_*: the Redis broker: `redis_url` or `redis_sentinels` with
            `redis_sentinel_master` (neither: the in-process broker, one instance), its
            timeouts and backoff in seconds, connections, key prefix, and the replicas that
            confirm a publish (`redis_wait_replicas`, within `redis_wait_timeout_ms`).
        history_*: what each subscription keeps for resumes (messages, seconds).
        resume_wait_seconds: how long a resume from a position not reached yet waits.
        demo*: the demo producer, and its pause between updates in seconds.
        log_level/log_repeat_window_seconds: the lowest level logged, and the window in
            seconds within which a library's log record of one kind is written once.

    Raises:
        SettingsError: a value is out of range; the message names the key.
    """

    host: str = "127.0.0.1"
    port: int = 8000
    auth_required: bool = False
    auth_token: str = ""
    admin_token: str = ""
    allowed_origins: tuple[str, ...] = ()
    cors_allowed_origins: tuple[str, ...] = ("http://127.0.0.1:8001", "http://localhost:8001")
    rate_tokens_per_sec: float = 20.0
    rate_burst: float = 40.0
    rate_notify_cooldown_seconds: float = 5.0
    flood_drop_threshold: int = 200
    flood_window_seconds: float = 10.0
    max_inbound_message_bytes: int = 65_536
    max_frame_bytes: int = 262_144
    max_subscriptions_per_connection: int = 6
    max_request_body_bytes: int = 65_536
    # Below `websockets`' own handshake limits (8,192-byte lines, 128 headers), so every
    # head this server accepts is one the WebSocket handshake parser accepts too.
    max_url_bytes: int = 8_000
    max_header_line_bytes: int = 8_000
    max_headers: int = 100
    max_header_bytes: int = 32_768
    http_request_timeout_seconds: float = 10.0
    max_json_depth: int = 32
    # A page of 500 entries is about 100 KB of JSON: one response, never the whole instance.
    connections_page_max: int = 500
    # 4 MiB: a thousand agents at 4 KiB each, while a publisher inventing an agent id per
    # update (64 KiB bodies) cannot make the instance hold more.
    dashboard_state_max_bytes: int = 4_194_304
    send_queue_max_messages: int = 1_024
    # 1 MiB, as Centrifugo's client_queue_max_size: a dashboard frame is a few KiB, so a
    # client that reads at all never comes near it.
    send_queue_max_bytes: int = 1_048_576
    backpressure_disconnect_threshold: int = 5
    write_delay_seconds: float = 0.0
    # 10 ms: at 10 updates/s flushes are 100 ms apart and never wait. Flat out at 1,000
    # subscribers (bench/, 2026-11-29) one publish came every 8-10 ms: windows of 1 and 2 ms
    # joined none (CPU per delivery 1.19x and 0.94x bare websockets), 5 ms gave 0.42x and
    # 10 ms 0.25x (3.8x the deliveries/s), the added latency at most the window.
    write_coalesce_window_seconds: float = 0.01
    send_timeout_seconds: float = 10.0
    idle_disconnect_seconds: float = 600.0
    shutdown_grace_seconds: float = 5.0
    per_message_deflate: bool = False
    redis_url: str = ""
    history_max_messages: int = 1_000
    history_max_age_seconds: float = 300.0
    # Instances read one Redis stream within milliseconds of each other; a second covers a
    # loaded machine, and holds a bogus position's live updates no longer than that.
    resume_wait_seconds: float = 1.0
    redis_backoff_cap_seconds: float = 5.0
    redis_backoff_base_seconds: float = 0.1
    redis_timeout_seconds: float = 2.0
    redis_heartbeat_seconds: float = 1.0
    redis_ack_timeout_seconds: float = 5.0
    redis_max_connections: int = 32
    redis_producer_dedupe_seconds: float = 30.0
    redis_key_prefix: str = "hive:ws:"
    redis_sentinels: tuple[str, ...] = ()
    redis_sentinel_master: str = ""
    redis_wait_replicas: int | None = None
    redis_wait_timeout_ms: int = 500
    redis_wait_max_publishes: int = 16
    redis_password: str = dataclasses.field(default="", repr=False)
    redis_sentinel_password: str = dataclasses.field(default="", repr=False)
    demo: bool = False
    demo_interval_seconds: float = 0.5
    log_level: str = "info"
    log_repeat_window_seconds: float = 10.0

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            texts = value if isinstance(value, tuple) else (value,)
            if any(isinstance(t, str) and not _is_utf8_text(t) for t in texts):
                # os.environ decodes bytes that are not UTF-8 with surrogateescape; such a
                # token or origin would raise wherever it is encoded, on every connection.
                raise SettingsError(f"{self.env_name(f.name)} must be valid UTF-8 text")
            if isinstance(value, float) and not math.isfinite(value):
                raise SettingsError(f"{self.env_name(f.name)} must be a finite number, got {value}")
            if isinstance(value, int | float) and not isinstance(value, bool) and value < 0:
                raise SettingsError(f"{self.env_name(f.name)} must not be negative, got {value}")
        positive = (
            "rate_tokens_per_sec",
            "rate_burst",
            "flood_drop_threshold",
            "flood_window_seconds",
            "max_inbound_message_bytes",
            "max_subscriptions_per_connection",
            "max_request_body_bytes",
            "max_url_bytes",
            "max_header_line_bytes",
            "max_headers",
            "max_header_bytes",
            "http_request_timeout_seconds",
            "max_json_depth",
            "connections_page_max",
            "dashboard_state_max_bytes",
            "send_queue_max_messages",
            "send_queue_max_bytes",
            "backpressure_disconnect_threshold",
            "send_timeout_seconds",
            "idle_disconnect_seconds",
            "history_max_messages",
            "history_max_age_seconds",
            "resume_wait_seconds",
            "redis_backoff_cap_seconds",
            "redis_backoff_base_seconds",
            "redis_timeout_seconds",
            "redis_heartbeat_seconds",
            "redis_ack_timeout_seconds",
            "redis_max_connections",
            "redis_producer_dedupe_seconds",
            "redis_wait_timeout_ms",
            "redis_wait_max_publishes",
            "demo_interval_seconds",
            "log_repeat_window_seconds",
        )
        for name in positive:
            if getattr(self, name) <= 0:
                raise SettingsError(f"{self.env_name(name)} must be greater than zero")
        for name, most in SETTING_MAXIMA.items():
            if getattr(self, name) is not None and getattr(self, name) > most:
                raise SettingsError(
                    f"{self.env_name(name)} must be at most {_shown(most)} "
                    f"{SETTING_DOCS[name][0]}, got {_shown(getattr(self, name))}"
                )
        if self.rate_tokens_per_sec < RATE_MIN_TOKENS_PER_SEC:
            raise SettingsError(
                f"WS_RATE_TOKENS_PER_SEC must be at least {RATE_MIN_TOKENS_PER_SEC:g} "
                f"tokens/s, got {_shown(self.rate_tokens_per_sec)}"
            )
        if self.rate_burst < 1:
            raise SettingsError("WS_RATE_BURST must be at least 1 so that one frame can pass")
        if not 0 < self.port < 65_536:
            raise SettingsError(f"WS_PORT must be between 1 and 65535, got {self.port}")
        if self.max_frame_bytes < self.max_inbound_message_bytes:
            raise SettingsError(
                "WS_MAX_FRAME_BYTES must be at least WS_MAX_INBOUND_MESSAGE_BYTES, "
                f"got {self.max_frame_bytes} < {self.max_inbound_message_bytes}"
            )
        if self.max_header_line_bytes > _HANDSHAKE_MAX_LINE - 2:
            raise SettingsError(
                f"WS_MAX_HEADER_LINE_BYTES must be at most {_HANDSHAKE_MAX_LINE - 2}, the "
                "WebSocket handshake parser's line limit"
            )
        if self.max_url_bytes > _HANDSHAKE_MAX_LINE - _REQUEST_LINE_OVERHEAD:
            raise SettingsError(
                f"WS_MAX_URL_BYTES must be at most {_HANDSHAKE_MAX_LINE - _REQUEST_LINE_OVERHEAD}"
                ", so the request line fits the WebSocket handshake parser's line limit"
            )
        if self.max_headers > _HANDSHAKE_MAX_HEADERS:
            raise SettingsError(
                f"WS_MAX_HEADERS must be at most {_HANDSHAKE_MAX_HEADERS}, the WebSocket "
                "handshake parser's limit"
            )
        if self.auth_required and not self.auth_token:
            raise SettingsError("WS_AUTH_TOKEN must be set when WS_AUTH_REQUIRED is true")
        if self.log_level not in _LOG_LEVELS:
            raise SettingsError(f"WS_LOG_LEVEL must be one of {', '.join(_LOG_LEVELS)}")
        # An instance republishes for up to half the dedupe memory after its last heartbeat
        # (the other half covers its listener's lag); that half must outlast the liveness
        # TTL, or an instance that merely missed a beat or two would rebuild its link.
        liveness = self.redis_liveness_seconds
        if self.redis_producer_dedupe_seconds <= 2 * liveness:
            raise SettingsError(
                "WS_REDIS_PRODUCER_DEDUPE_SECONDS must be greater than 6 x "
                f"WS_REDIS_HEARTBEAT_SECONDS ({2 * liveness:g} s), got "
                f"{self.redis_producer_dedupe_seconds:g}"
            )
        if self.redis_url and not self.redis_url.startswith(("redis://", "rediss://", "unix://")):
            raise SettingsError("REDIS_URL must start with redis://, rediss:// or unix://")
        self._check_sentinels()

    def _check_sentinels(self) -> None:
        if self.redis_sentinels and self.redis_url:
            raise SettingsError("set either REDIS_URL or WS_REDIS_SENTINELS, not both")
        if bool(self.redis_sentinels) != bool(self.redis_sentinel_master):
            raise SettingsError(
                "WS_REDIS_SENTINELS and WS_REDIS_SENTINEL_MASTER must be set together"
            )
        for address in self.redis_sentinels:
            sentinel_address(address)  # raises naming the bad entry
        if self.redis_password and not self.redis_sentinels:
            raise SettingsError(
                "WS_REDIS_PASSWORD is for the nodes behind WS_REDIS_SENTINELS; with REDIS_URL "
                "put the password in the URL (redis://:PASSWORD@host:port)"
            )
        if self.redis_sentinel_password and not self.redis_sentinels:
            raise SettingsError("WS_REDIS_SENTINEL_PASSWORD needs WS_REDIS_SENTINELS")
        # WAIT blocks its connection; the connection's own timeout must not fire first, and
        # Redis ends a timed-out WAIT only at its next cron tick (every 100 ms at the
        # default `hz 10`), so the socket needs a margin past the WAIT timeout. Checked
        # whenever replicas may have to confirm (with REDIS_URL, once one is seen).
        margin = _WAIT_MARGIN_MS
        if (
            self.redis_enabled
            and self.redis_wait_replicas != 0
            and self.redis_wait_timeout_ms + margin > self.redis_timeout_seconds * _MS_PER_SECOND
        ):
            raise SettingsError(
                f"WS_REDIS_WAIT_TIMEOUT_MS + {margin} ms must be at most "
                f"WS_REDIS_TIMEOUT_SECONDS ({_shown(self.redis_timeout_seconds * _MS_PER_SECOND)}"
                f" ms): Redis ends a WAIT only at its next tick, got {self.redis_wait_timeout_ms}"
            )

    @property
    def redis_enabled(self) -> bool:
        """Whether the Redis broker is configured (`REDIS_URL` or Sentinels)."""
        return bool(self.redis_url or self.redis_sentinels)

    def redis_replicas_to_confirm(self, *, replica_seen: bool = False) -> int:
        """`redis_wait_replicas`, or its default: 1 with Sentinels or once the primary has
        been seen with a replica (`replica_seen`, sticky: see the broker), else 0."""
        if self.redis_wait_replicas is not None:
            return self.redis_wait_replicas
        return 1 if self.redis_sentinels or replica_seen else 0

    @property
    def redis_liveness_seconds(self) -> float:
        """Seconds an instance stays live in Redis after its last heartbeat (3 heartbeats)."""
        return _MISSED_HEARTBEATS * self.redis_heartbeat_seconds

    @staticmethod
    def env_name(name: str) -> str:
        """The environment variable that sets field `name` (`REDIS_URL` or `WS_<NAME>`)."""
        if name == "redis_url":
            return "REDIS_URL"
        if name == "rate_tokens_per_sec":
            return "WS_RATE_TOKENS_PER_SEC"  # the original platform's spelling
        return "WS_" + name.upper()

    @classmethod
    def from_env(cls, environ: Mapping[str, str], **overrides: Any) -> Settings:
        """Build settings from `environ` (pass `os.environ`), then apply `overrides`.

        Unknown `WS_*` names are refused, so a typo cannot silently leave a default in force.

        Raises:
            SettingsError: a value does not parse or is out of range; the message names the key.
        """
        known = {cls.env_name(f.name): f for f in fields(cls)}
        values: dict[str, Any] = {}
        for key, raw in environ.items():
            if key not in known:
                if key.startswith("WS_"):
                    raise SettingsError(
                        f"{key} is not a setting; known: {', '.join(sorted(known))}"
                    )
                continue
            f = known[key]
            values[f.name] = _convert(key, f.type, raw)
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)

    def replace(self, **changes: Any) -> Settings:
        """A copy with `changes` applied and validated again."""
        return dataclasses.replace(self, **changes)

    def public_limits(self) -> dict[str, Any]:
        """The limits a client may read, under the original platform's field names."""
        return {
            "rate_limit_tokens_per_second": self.rate_tokens_per_sec,
            "rate_limit_burst_capacity": self.rate_burst,
            "rate_limit_notify_cooldown_seconds": self.rate_notify_cooldown_seconds,
            "flood_drop_threshold": self.flood_drop_threshold,
            "flood_window_seconds": self.flood_window_seconds,
            "max_inbound_message_bytes": self.max_inbound_message_bytes,
            "max_frame_bytes": self.max_frame_bytes,
            "max_subscriptions_per_connection": self.max_subscriptions_per_connection,
            "max_json_depth": self.max_json_depth,
            "backpressure_disconnect_threshold": self.backpressure_disconnect_threshold,
            "send_queue_max_messages": self.send_queue_max_messages,
            "send_queue_max_bytes": self.send_queue_max_bytes,
            "idle_disconnect_seconds": self.idle_disconnect_seconds,
            "history_max_messages": self.history_max_messages,
            "history_max_age_seconds": self.history_max_age_seconds,
        }


def _convert(key: str, annotation: Any, raw: str) -> Any:
    kind = str(annotation)
    if kind == "int | None":
        if raw.strip() == "":
            return None
        kind = "int"
    if kind == "bool":
        return _parse_bool(key, raw)
    if kind in ("int", "float"):
        # ASCII only: int() and float() also read "\u0661" and fullwidth digits.
        text = raw.strip()
        try:
            if not text.isascii():
                raise ValueError(text)
            return int(text.replace("_", "")) if kind == "int" else float(text)
        except ValueError:
            noun = "an integer" if kind == "int" else "a number"
            raise SettingsError(f"{key} must be {noun} in ASCII digits, got {raw!r}") from None
    if kind == "tuple[str, ...]":
        return split_list(raw)
    return raw


def split_list(raw: str | None) -> tuple[str, ...] | None:
    """A comma-separated list (`a, b,,c` is `("a", "b", "c")`); None stays None."""
    if raw is None:
        return None
    return tuple(part.strip() for part in raw.split(",") if part.strip())
