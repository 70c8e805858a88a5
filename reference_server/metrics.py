"""Prometheus metrics of one app, on a registry of its own.

Names are the ones the platform's dashboards already query (`leanvibe_ws_*`). Counters end
in `_total` (prometheus_client adds the suffix); gauges never do. Every value is measured.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

__all__ = ["METRIC_DOCS", "Metrics"]

# The metrics reference page is generated from this table; it is the single place their
# meaning is written.
METRIC_DOCS: dict[str, tuple[str, tuple[str, ...], str]] = {
    "leanvibe_ws_messages_sent": ("counter", (), "Frames written to clients."),
    "leanvibe_ws_messages_send_failures": ("counter", (), "Sends that failed or timed out."),
    "leanvibe_ws_messages_received": ("counter", (), "Frames received from clients."),
    "leanvibe_ws_messages_dropped_rate_limit": (
        "counter",
        (),
        "Inbound frames dropped by the rate limiter.",
    ),
    "leanvibe_ws_errors_sent": ("counter", (), "`error` frames sent to clients."),
    "leanvibe_ws_connections": ("counter", (), "Connections accepted."),
    "leanvibe_ws_disconnections": ("counter", (), "Connections ended, for any reason."),
    "leanvibe_ws_backpressure_disconnects": ("counter", (), "Slow consumers cut off (close 1013)."),
    "leanvibe_ws_rate_limit_disconnects": ("counter", (), "Flooding clients cut off (close 1008)."),
    "leanvibe_ws_auth_denied": (
        "counter",
        (),
        "Connections closed 4401 for a missing or wrong token.",
    ),
    "leanvibe_ws_origin_denied": (
        "counter",
        (),
        "Connections closed 4403 for an Origin not allowed.",
    ),
    "leanvibe_ws_idle_disconnects": ("counter", (), "Connections closed for idleness."),
    "leanvibe_ws_bytes_sent": ("counter", (), "UTF-8 bytes of frames written to clients."),
    "leanvibe_ws_bytes_received": ("counter", (), "Bytes of frames received from clients."),
    "leanvibe_ws_updates_published": (
        "counter",
        ("subscription",),
        "Updates acknowledged to publishers.",
    ),
    "leanvibe_ws_publishes_refused": (
        "counter",
        ("reason",),
        "Publishes refused: invalid, unauthorized, broker_unavailable, too_large (413), "
        "unsupported_media_type (415), forbidden_origin (403).",
    ),
    "leanvibe_ws_publishes_unreplicated": (
        "counter",
        (),
        "Publishes refused (503) because fewer Redis replicas than WS_REDIS_WAIT_REPLICAS "
        "confirmed them within WS_REDIS_WAIT_TIMEOUT_MS; each is also counted in "
        "publishes_refused as broker_unavailable.",
    ),
    "leanvibe_ws_handshakes_refused": (
        "counter",
        ("reason",),
        "HTTP requests and WebSocket handshakes refused before reaching the app: "
        "uri_too_long (414), header_too_large or too_many_headers (431), timeout (408, or "
        "a close when nothing was sent), invalid (400).",
    ),
    "leanvibe_ws_limit_changes": (
        "counter",
        ("setting",),
        "Runtime changes of a limit (PATCH /api/dashboard/websocket/limits), per setting "
        "whose value changed.",
    ),
    "leanvibe_ws_producer_messages": (
        "counter",
        ("outcome",),
        "Producer-channel messages this instance republished: `appended` to their stream, or "
        "`duplicate` (another instance that heard it too had appended it already).",
    ),
    "leanvibe_ws_producer_messages_dropped": (
        "counter",
        ("reason",),
        "Producer-channel messages this instance did not append: `invalid` (not a JSON object, "
        "or over the size limit), `unnamed` (heard before its first marker), `stale` (its "
        "last heartbeat was too old), `redis_failed`. Another instance may have appended them.",
    ),
    "leanvibe_ws_broker_reconnect_attempts": (
        "counter",
        (),
        "Attempts to reconnect to the broker's backing service.",
    ),
    "leanvibe_ws_active_connections": ("gauge", (), "Connections open now."),
    "leanvibe_ws_subscribers": (
        "gauge",
        ("subscription",),
        "Connections subscribed now, per subscription.",
    ),
    "leanvibe_ws_send_queue_depth_max": ("gauge", (), "Deepest outbound queue at the last scrape."),
    "leanvibe_ws_send_queue_bytes_max": (
        "gauge",
        (),
        "Most bytes waiting for one client (its queue and socket write buffer) at the "
        "watchdog's last pass; the byte bound is WS_SEND_QUEUE_MAX_BYTES.",
    ),
    "leanvibe_ws_broker_up": ("gauge", (), "1 while the broker is connected, 0 while it is not."),
    "leanvibe_ws_publish_to_send_seconds": (
        "histogram",
        (),
        "Seconds from publish to the frame's write to the socket, "
        "observed for the oldest frame of each write batch.",
    ),
}
"""Type, labels and meaning of every metric, keyed by name (counters without `_total`)."""

_LATENCY_BUCKETS = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.015,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
)


class Metrics:
    """The app's metrics. Attributes are named after the metric without its prefix."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        p = "leanvibe_ws_"
        self.messages_sent = self._counter(p + "messages_sent")
        self.send_failures = self._counter(p + "messages_send_failures")
        self.messages_received = self._counter(p + "messages_received")
        self.dropped_rate_limit = self._counter(p + "messages_dropped_rate_limit")
        self.errors_sent = self._counter(p + "errors_sent")
        self.connections = self._counter(p + "connections")
        self.disconnections = self._counter(p + "disconnections")
        self.backpressure_disconnects = self._counter(p + "backpressure_disconnects")
        self.rate_limit_disconnects = self._counter(p + "rate_limit_disconnects")
        self.auth_denied = self._counter(p + "auth_denied")
        self.origin_denied = self._counter(p + "origin_denied")
        self.idle_disconnects = self._counter(p + "idle_disconnects")
        self.bytes_sent = self._counter(p + "bytes_sent")
        self.bytes_received = self._counter(p + "bytes_received")
        self.updates_published = self._counter(p + "updates_published")
        self.publishes_refused = self._counter(p + "publishes_refused")
        self.publishes_unreplicated = self._counter(p + "publishes_unreplicated")
        self.broker_reconnect_attempts = self._counter(p + "broker_reconnect_attempts")
        self.handshakes_refused = self._counter(p + "handshakes_refused")
        self.limit_changes = self._counter(p + "limit_changes")
        self.producer_messages = self._counter(p + "producer_messages")
        self.producer_dropped = self._counter(p + "producer_messages_dropped")
        self.active_connections = self._gauge(p + "active_connections")
        self.subscribers = self._gauge(p + "subscribers")
        self.send_queue_depth_max = self._gauge(p + "send_queue_depth_max")
        self.send_queue_bytes_max = self._gauge(p + "send_queue_bytes_max")
        self.broker_up = self._gauge(p + "broker_up")
        _, labels, doc = METRIC_DOCS[p + "publish_to_send_seconds"]
        self.publish_to_send = Histogram(
            p + "publish_to_send_seconds",
            doc,
            labels,
            registry=self.registry,
            buckets=_LATENCY_BUCKETS,
        )
        missing = set(METRIC_DOCS) - {m.name for m in self.registry.collect()}
        assert not missing, f"metrics documented but not made: {missing}"

    def _counter(self, name: str) -> Counter:
        kind, labels, doc = METRIC_DOCS[name]
        assert kind == "counter", name
        return Counter(name, doc, labels, registry=self.registry)

    def _gauge(self, name: str) -> Gauge:
        kind, labels, doc = METRIC_DOCS[name]
        assert kind == "gauge", name
        return Gauge(name, doc, labels, registry=self.registry)

    def exposition(self) -> bytes:
        """The registry in Prometheus text format."""
        return generate_latest(self.registry)
