"""One WebSocket's life: accept, refuse or admit, feed its `Session`, carry out its actions.

`Connection.run` accepts the socket, refuses it (bad origin or token) or registers it with
the hub, then reads frames into the session until the client leaves, and carries out every
action the session returns: frames into the outbox, subscription changes (with the resume
history fetched from the broker), closes. This module and `server` are the ones that await
sockets.
"""

from __future__ import annotations

import time

from fastapi import WebSocket
from structlog.typing import FilteringBoundLogger

from .auth import bearer_token, tokens_equal
from .broker.base import Broker, History
from .flusher import Flusher
from .hub import Client, Hub
from .messages import IdFactory, decode_query
from .metrics import Metrics
from .outbox import Outbox
from .session import Action, Close, DataSource, Dropped, Send, Session, SubscriptionsChanged
from .settings import Settings
from .transport import abort

__all__ = ["CLOSE_METRICS", "Connection"]

CLOSE_METRICS = {
    "rate_limited": "rate_limit_disconnects",
    "backpressure": "backpressure_disconnects",
    "idle_timeout": "idle_disconnects",
    "unauthorized": "auth_denied",
    "forbidden_origin": "origin_denied",
}
"""The counter in `Metrics` that a close for each reason increments."""

# Seconds a pending notice and close frame get to go out after the client's last frame.
_FINISH_GRACE_SECONDS = 1.0


class Connection:
    """One WebSocket from accept to close.

    Args:
        websocket: the accepted-to-be socket.
        connection_id: the id the server gives it (sent in `connection_established`).
        settings: the limits in force.
        hub: where it is registered while admitted.
        broker: answers resume history.
        metrics: where its frames, bytes and closes are counted.
        data_source: answers `request_data`.
        new_id: makes correlation ids for frames that answer no client frame.
        log: where its life is logged.
        open_connections: the server's open connections (keys); it is in it from accept
            until its last frame is read.
        serial: its accept number on this instance (1 up), the connections listing's order.
        flusher: writes its frames at the end of each event-loop turn, with every other
            connection's (None: a writer task per batch, as under a server without
            `hive.write_many`).
    """

    # Slots, not a __dict__: every open connection holds one of these.
    __slots__ = (
        "_data_source",
        "_flusher",
        "_new_id",
        "_open",
        "_refusal_logged_at",
        "_refusals_unlogged",
        "broker",
        "client",
        "connection_id",
        "hub",
        "log",
        "metrics",
        "serial",
        "settings",
        "websocket",
    )

    def __init__(
        self,
        websocket: WebSocket,
        connection_id: str,
        *,
        settings: Settings,
        hub: Hub,
        broker: Broker,
        metrics: Metrics,
        data_source: DataSource,
        new_id: IdFactory,
        log: FilteringBoundLogger,
        open_connections: dict[Connection, None],
        serial: int = 0,
        flusher: Flusher | None = None,
    ) -> None:
        self.websocket = websocket
        self._flusher = flusher
        self.connection_id = connection_id
        self.serial = serial
        self.settings = settings
        self.hub = hub
        self.broker = broker
        self.metrics = metrics
        self.log = log
        self._open = open_connections
        self._data_source = data_source
        self._new_id = new_id
        self.client: Client | None = None
        """The session and outbox; set once the socket is accepted."""
        self._refusal_logged_at = -float("inf")  # monotonic time of the last frame_refused line
        self._refusals_unlogged = 0

    # -- actions -----------------------------------------------------------------------

    def close(self, conn: Client, close: Close) -> None:
        """Carry out a `Close`: stop routing, queue the notice and the close frame."""
        self.hub.remove(conn)
        metric = CLOSE_METRICS.get(close.reason)
        if metric:
            getattr(self.metrics, metric).inc()
        self.log.info(
            "closing",
            connection_id=conn.session.connection_id,
            reason=close.reason,
            code=close.code,
        )
        conn.outbox.close_after(
            close.notice, close.code, discard_pending=close.reason == "backpressure"
        )

    def cut_off(self, reason: str) -> None:
        """Close this client for a reason the server decided (backpressure, shutdown)."""
        conn = self.client
        if conn is None:
            return
        for action in conn.session.close(reason, time.time()):
            if isinstance(action, Close):
                self.close(conn, action)

    async def perform(self, actions: list[Action]) -> None:
        """Carry out a session's actions, in order."""
        conn = self.client
        if conn is None:
            return
        for action in actions:
            if isinstance(action, Send):
                if action.kind == "error":
                    self.metrics.errors_sent.inc()
                    self._log_refusal(conn, action)
                if not conn.outbox.put(action.text) and not conn.outbox.closing:
                    self.cut_off("backpressure")
            elif isinstance(action, SubscriptionsChanged):
                await self._change(conn, action)
            elif isinstance(action, Close):
                self.close(conn, action)
            elif isinstance(action, Dropped):
                self.metrics.dropped_rate_limit.inc()

    def _log_refusal(self, conn: Client, error: Send) -> None:
        # One line per window per connection, the next one counting the others: a client
        # refused at its full rate limit must not be able to flood the logs (the metric
        # `errors_sent` still counts every one).
        now = time.monotonic()
        if now - self._refusal_logged_at < self.settings.log_repeat_window_seconds:
            self._refusals_unlogged += 1
            return
        self.log.info(
            "frame_refused",
            connection_id=conn.session.connection_id,
            correlation_id=error.correlation_id,
            type="error",
            code=error.detail,
            **({"suppressed": self._refusals_unlogged} if self._refusals_unlogged else {}),
        )
        self._refusal_logged_at, self._refusals_unlogged = now, 0

    async def _change(self, conn: Client, change: SubscriptionsChanged) -> None:
        self.log.info(
            "subscriptions_changed",
            connection_id=conn.session.connection_id,
            subscription=sorted(conn.session.subscriptions),
            added=sorted(change.added),
            removed=sorted(change.removed),
            resume=dict(change.resume),
        )
        if change.resume:
            # Hold live updates from now until the replay is sent.
            self.hub.hold(conn, change.resume)
        self.hub.change(conn, change.added, change.removed)
        for sub, last_seq in change.resume.items():
            try:
                history = await self.broker.history(sub, last_seq)
            except Exception:
                # The broker cannot say what was missed: the client is told to resync
                # (oldest_seq = latest_seq = 0 means "unknown"), never left with a gap.
                self.log.warning("history_unavailable", subscription=sub, exc_info=True)
                history = History([], oldest_seq=0, latest_seq=0)
            buffered = self.hub.release(conn, sub)
            if buffered is None:  # unsubscribed or closed while history was fetched
                continue
            frames = conn.session.finish_resume(
                sub, last_seq, history, buffered, time.time(), room=conn.outbox.room()
            )
            await self.perform(frames)

    # -- the socket --------------------------------------------------------------------

    def refusal(self) -> str | None:
        """The reason to refuse this socket (`forbidden_origin`, `unauthorized`), or None."""
        s = self.settings
        headers = self.websocket.headers
        if s.allowed_origins and headers.get("origin") not in s.allowed_origins:
            return "forbidden_origin"
        if s.auth_required:
            token = bearer_token(headers.get("authorization", ""))
            query = decode_query(self.websocket.scope.get("query_string", b""))
            token = token or query.get("access_token", "")
            if not tokens_equal(token, s.auth_token):
                return "unauthorized"
        return None

    async def _send_text(self, text: str) -> None:
        await self.websocket.send({"type": "websocket.send", "text": text})

    async def _close_with(self, code: int) -> None:
        await self.websocket.send({"type": "websocket.close", "code": code})

    def _sends_keep_failing(self) -> None:
        abort(self.websocket)

    async def run(self) -> None:
        """Run the connection from accept to close."""
        websocket = self.websocket
        connection_id = self.connection_id
        await websocket.accept()
        self.metrics.connections.inc()
        session = Session(
            connection_id, self.settings, self._data_source, time.monotonic(), new_id=self._new_id
        )
        extensions = websocket.scope.get("extensions") or {}

        conn = Client(
            session,
            # Bound methods, not closures: each closure is a function object and its cells
            # that every idle connection would pay for.
            Outbox(
                self._send_text,
                self._close_with,
                capacity=self.settings.send_queue_max_messages,
                max_bytes=self.settings.send_queue_max_bytes,
                failure_threshold=self.settings.backpressure_disconnect_threshold,
                metrics=self.metrics,
                on_failures=self._sends_keep_failing,
                send_batch=extensions.get("hive.send_batch"),
                write_many=extensions.get("hive.write_many"),
                flusher=self._flusher,
                buffered=extensions.get("hive.buffered"),
                write_direct=extensions.get("hive.write_direct"),
            ),
            self.cut_off,
        )
        self.client = conn
        self._open[self] = None
        try:
            refusal = self.refusal()
            if refusal is not None:
                self.log.info("refused", connection_id=connection_id, reason=refusal)
                await self.perform(session.close(refusal, time.time()))
            else:
                self.hub.add(conn)
                self.log.info(
                    "connected", connection_id=connection_id, origin=websocket.headers.get("origin")
                )
                # Strictly decoded: Starlette's query_params turn bytes that are not UTF-8
                # into U+FFFD, which the session would take for a subscription name.
                query = decode_query(websocket.scope.get("query_string", b""))
                await self.perform(
                    session.start(query.get("subscriptions"), query.get("resume"), time.time())
                )
            await self._read(conn)
        finally:
            self.hub.remove(conn)
            self._open.pop(self, None)
            try:
                # A pending notice and close go out first.
                await conn.outbox.finish(grace=_FINISH_GRACE_SECONDS)
            except Exception:
                self.log.exception("writer_failed", connection_id=connection_id)
            self.metrics.disconnections.inc()
            self.log.info("disconnected", connection_id=connection_id)

    async def _read(self, conn: Client) -> None:
        receive = self.websocket.receive
        session = conn.session
        received = self.metrics.messages_received
        size = self.metrics.bytes_received
        while True:
            message = await receive()
            if message["type"] == "websocket.disconnect":
                return
            raw: str | bytes | None = message.get("text")
            if raw is None:
                raw = message.get("bytes") or b""
            received.inc()
            size.inc(len(raw))
            actions = session.receive(raw, time.monotonic(), time.time())
            if actions:
                await self.perform(actions)
