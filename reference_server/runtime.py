"""One app instance's live state and the life of each WebSocket connection.

`Runtime` feeds every connection's `Session` and carries out the actions it returns; the
broker's deliveries go through the `Hub` into per-connection outboxes; a watchdog closes
idle clients and aborts writes stuck past their timeout; `drain` closes everyone on
shutdown. This is the one place that awaits sockets.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import random
import time
import uuid
from collections.abc import Mapping
from typing import Any

from fastapi import WebSocket

from . import messages
from .broker import Broker, History, MemoryBroker
from .errors import PublishError
from .hub import Connection, Hub
from .logs import get_logger
from .metrics import Metrics
from .outbox import Outbox
from .session import Action, Close, Dropped, Send, Session, SubscriptionsChanged
from .settings import Settings
from .state import DashboardState
from .transport import abort

__all__ = ["DEFAULT_MESSAGE_TYPES", "Runtime", "tokens_equal"]

DEFAULT_MESSAGE_TYPES: dict[str, str] = {
    "agents": "agent_update",
    "coordination": "coordination_update",
    "tasks": "task_update",
    "system": "system_update",
    "alerts": "critical_alert",
    "project_index": "project_index_event",
}
"""The update type a publish gets when it names none."""

_CLOSE_METRICS = {
    "rate_limited": "rate_limit_disconnects",
    "backpressure": "backpressure_disconnects",
    "idle_timeout": "idle_disconnects",
    "unauthorized": "auth_denied",
    "forbidden_origin": "origin_denied",
}


def tokens_equal(given: str, expected: str) -> bool:
    """Compare a presented token with the expected one in constant time.

    Constant time, so that response timing does not reveal how much of a token matched.
    """
    return hmac.compare_digest(given.encode(), expected.encode())


class Runtime:
    """Everything one app instance holds: settings, broker, hub, metrics, state.

    Args:
        settings: the validated settings.
        broker: the broker; None builds the one `settings` names.
        rng: random source for the demo producer.
    """

    def __init__(self, settings: Settings, broker: Broker | None, rng: random.Random) -> None:
        self.settings = settings
        self.metrics = Metrics()
        self.state = DashboardState()
        self.hub = Hub(self.metrics, self.state)
        self.broker = broker if broker is not None else self._make_broker()
        self.rng = rng
        self.started = time.monotonic()
        self.log = get_logger()
        self._websockets: dict[Connection, WebSocket] = {}

    def _make_broker(self) -> Broker:
        s = self.settings
        if s.redis_url:
            # Imported here: a single instance with the in-process broker never loads redis.
            from .redis_broker import RedisBroker

            return RedisBroker(s, self.metrics)
        return MemoryBroker(
            history_max_messages=s.history_max_messages,
            history_max_age_seconds=s.history_max_age_seconds,
        )

    # -- request_data ------------------------------------------------------------------

    def answer(self, data_type: str, params: Mapping[str, Any]) -> dict[str, Any]:
        """Answer a `request_data` from live state (the session's data source)."""
        return self.state.answer(
            data_type,
            params,
            connections=len(self.hub.connections),
            subscribers=self.hub.counts(),
            broker=self.broker.status(),
            uptime_seconds=time.monotonic() - self.started,
        )

    # -- actions -----------------------------------------------------------------------

    def close(self, conn: Connection, close: Close) -> None:
        """Carry out a `Close`: stop routing, queue the notice and the close frame."""
        self.hub.remove(conn)
        metric = _CLOSE_METRICS.get(close.reason)
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

    def cut_off(self, conn: Connection, reason: str) -> None:
        """Close `conn` for a reason the server decided (backpressure, shutdown)."""
        for action in conn.session.close(reason, time.time()):
            if isinstance(action, Close):
                self.close(conn, action)

    async def perform(self, conn: Connection, actions: list[Action]) -> None:
        """Carry out a session's actions, in order."""
        for action in actions:
            if isinstance(action, Send):
                if action.kind == "error":
                    self.metrics.errors_sent.inc()
                    self.log.info(
                        "frame_refused",
                        connection_id=conn.session.connection_id,
                        correlation_id=action.correlation_id,
                        type="error",
                        code=action.detail,
                    )
                if not conn.outbox.put(action.text) and not conn.outbox.closing:
                    self.cut_off(conn, "backpressure")
            elif isinstance(action, SubscriptionsChanged):
                await self._change(conn, action)
            elif isinstance(action, Close):
                self.close(conn, action)
            elif isinstance(action, Dropped):
                self.metrics.dropped_rate_limit.inc()

    async def _change(self, conn: Connection, change: SubscriptionsChanged) -> None:
        self.log.info(
            "subscriptions_changed",
            connection_id=conn.session.connection_id,
            subscription=sorted(conn.session.subscriptions),
            added=sorted(change.added),
            removed=sorted(change.removed),
            resume=dict(change.resume),
        )
        for sub in change.resume:
            conn.resuming[sub] = []  # hold live updates from now until the replay is sent
        self.hub.change(conn, change.added, change.removed)
        for sub, last_seq in change.resume.items():
            try:
                history = await self.broker.history(sub, last_seq)
            except Exception:
                # The broker cannot say what was missed: the client is told to resync
                # (oldest_seq = latest_seq = 0 means "unknown"), never left with a gap.
                self.log.warning("history_unavailable", subscription=sub, exc_info=True)
                history = History([], oldest_seq=0, latest_seq=0)
            buffered = conn.resuming.pop(sub, None)
            if buffered is None:  # unsubscribed or closed while history was fetched
                continue
            frames = conn.session.finish_resume(sub, last_seq, history, buffered, time.time())
            await self.perform(conn, frames)

    # -- background work ---------------------------------------------------------------

    async def watchdog(self, period: float) -> None:
        """Every `period` seconds: idle closes, stuck writes and the queue-depth gauge."""
        while True:
            await asyncio.sleep(period)
            now, wall = time.monotonic(), time.time()
            deepest = 0
            limit = self.settings.send_timeout_seconds
            for conn, websocket in list(self._websockets.items()):
                deepest = max(deepest, len(conn.outbox.queue))
                started = conn.outbox.send_started
                if started and now - started > limit:
                    self.metrics.send_failures.inc()
                    if not conn.outbox.closing:
                        self.cut_off(conn, "backpressure")
                    else:
                        abort(websocket)
                    continue
                await self.perform(conn, conn.session.tick(now, wall))
            self.metrics.send_queue_depth_max.set(deepest)

    async def drain(self) -> None:
        """Close every client with `disconnect_notice server_shutdown` and 1001, bounded."""
        for conn in list(self._websockets):
            self.cut_off(conn, "server_shutdown")
        deadline = time.monotonic() + self.settings.shutdown_grace_seconds
        while self._websockets and time.monotonic() < deadline:  # noqa: ASYNC110 (bounded poll)
            await asyncio.sleep(0.02)
        for websocket in list(self._websockets.values()):
            abort(websocket)

    # -- one WebSocket -----------------------------------------------------------------

    def _refusal(self, websocket: WebSocket) -> str | None:
        s = self.settings
        if s.allowed_origins and websocket.headers.get("origin") not in s.allowed_origins:
            return "forbidden_origin"
        if s.auth_required:
            header = websocket.headers.get("authorization", "")
            token = header[7:] if header[:7].lower() == "bearer " else ""
            token = token or websocket.query_params.get("access_token", "")
            if not tokens_equal(token, s.auth_token):
                return "unauthorized"
        return None

    async def serve(self, websocket: WebSocket) -> None:
        """Run one WebSocket connection from accept to close."""
        await websocket.accept()
        self.metrics.connections.inc()
        connection_id = str(uuid.uuid4())
        session = Session(connection_id, self.settings, self.answer, time.monotonic())
        send = websocket.send

        async def send_text(text: str) -> None:
            await send({"type": "websocket.send", "text": text})

        async def close_with(code: int) -> None:
            await send({"type": "websocket.close", "code": code})

        def sends_keep_failing() -> None:
            abort(websocket)

        extensions = websocket.scope.get("extensions") or {}

        conn = Connection(
            session,
            Outbox(
                send_text,
                close_with,
                capacity=self.settings.send_queue_max_messages,
                failure_threshold=self.settings.backpressure_disconnect_threshold,
                metrics=self.metrics,
                on_failures=sends_keep_failing,
                send_batch=extensions.get("hive.send_batch"),
                write_now=extensions.get("hive.write_now"),
            ),
            lambda reason: self.cut_off(conn, reason),
        )
        self._websockets[conn] = websocket
        try:
            refusal = self._refusal(websocket)
            if refusal is not None:
                self.log.info("refused", connection_id=connection_id, reason=refusal)
                await self.perform(conn, session.close(refusal, time.time()))
            else:
                self.hub.add(conn)
                self.log.info(
                    "connected", connection_id=connection_id, origin=websocket.headers.get("origin")
                )
                query = websocket.query_params
                await self.perform(
                    conn,
                    session.start(query.get("subscriptions"), query.get("resume"), time.time()),
                )
            await self._read(websocket, conn)
        finally:
            self.hub.remove(conn)
            self._websockets.pop(conn, None)
            try:
                await conn.outbox.finish(grace=1.0)  # a pending notice and close go out first
            except Exception:
                self.log.exception("writer_failed", connection_id=connection_id)
            self.metrics.disconnections.inc()
            self.log.info("disconnected", connection_id=connection_id)

    async def _read(self, websocket: WebSocket, conn: Connection) -> None:
        receive = websocket.receive
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
                await self.perform(conn, actions)

    # -- publish -----------------------------------------------------------------------

    async def publish(
        self, subscription: str, message_type: str | None, body: bytes, correlation_id: str
    ) -> dict[str, Any]:
        """Validate and publish one update; return the acknowledgement.

        Raises:
            PublishError: bad subscription, type or body (a 4xx).
            BrokerUnavailable: the broker refused it (a 503).
        """
        if subscription not in messages.SUBSCRIPTIONS:
            raise PublishError(
                f"Unknown subscription {subscription[:64]!r}; valid: "
                + ", ".join(messages.SUBSCRIPTIONS)
            )
        kind = message_type or DEFAULT_MESSAGE_TYPES[subscription]
        if kind == "critical_alert":
            if subscription != "alerts":
                raise PublishError("critical_alert is published on the alerts subscription")
        elif not messages.is_valid_update_type(kind):
            raise PublishError(
                f"Invalid message_type {kind[:64]!r}: lower-case letters, digits "
                "and underscores, not a control frame type"
            )
        if len(body) > self.settings.max_inbound_message_bytes:
            raise PublishError("Message too large")
        try:
            data = json.loads(body)
        except (ValueError, RecursionError):
            raise PublishError("Body must be a JSON object (the update's data)") from None
        if not isinstance(data, dict):
            raise PublishError("Body must be a JSON object (the update's data)")
        if kind == "critical_alert" and not isinstance(data.get("alerts"), list):
            raise PublishError("critical_alert data needs an 'alerts' list")
        update = await self.broker.publish(subscription, kind, data, correlation_id)
        self.metrics.updates_published.labels(subscription).inc()
        self.log.debug(
            "published",
            correlation_id=correlation_id,
            type=kind,
            subscription=subscription,
            seq=update.seq,
        )
        return {
            "status": "published",
            "subscription": subscription,
            "message_type": kind,
            "seq": update.seq,
            "correlation_id": correlation_id,
        }

    def health(self) -> dict[str, Any]:
        """The body of `GET /health`."""
        status = self.broker.status()
        self.metrics.broker_up.set(1 if status.connected else 0)
        return {
            "status": "healthy" if status.connected else "degraded",
            "contract_version": messages.CONTRACT_VERSION,
            "ws_contract_version": messages.CONTRACT_VERSION,
            "components": {
                "broker": {"kind": status.kind, "connected": status.connected, **status.details}
            },
            "connections": len(self.hub.connections),
            "uptime_seconds": round(time.monotonic() - self.started, 3),
        }
