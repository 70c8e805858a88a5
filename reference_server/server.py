"""One server instance: its open connections, watchdog, drain, publish and health.

`Server` holds what one instance shares between its connections (settings, broker, hub,
metrics, dashboard state), runs each WebSocket as a `Connection`, closes idle clients and
aborts writes stuck past their timeout (`watchdog`), closes everyone on shutdown (`drain`),
and validates and publishes what the broadcast route hands it (`publish`, which checks the
body with `messages.parse_publish`).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from typing import Any

from fastapi import WebSocket

from . import messages
from .broker.base import Broker
from .connection import Connection
from .dashboard import DashboardState
from .hub import Hub
from .logs import get_logger
from .messages import IdFactory
from .metrics import Metrics
from .settings import Settings
from .transport import abort

__all__ = ["Server"]

# `drain` checks every this many seconds whether every client has gone.
_DRAIN_POLL_SECONDS = 0.02
# `/health` and stats round the uptime to milliseconds.
_UPTIME_DIGITS = 3


class Server:
    """Everything one instance holds: settings, broker, hub, metrics, dashboard state.

    Args:
        settings: the validated settings.
        broker: the broker updates go through (not started yet).
        metrics: where everything is counted (the broker may share it).
        new_id: makes connection and correlation ids.
    """

    def __init__(
        self, settings: Settings, broker: Broker, metrics: Metrics, *, new_id: IdFactory
    ) -> None:
        self.settings = settings
        self.metrics = metrics
        self.dashboard = DashboardState()
        self.hub = Hub(self.metrics, self.dashboard)
        self.broker = broker
        self.new_id = new_id
        self.started = time.monotonic()
        self.log = get_logger()
        # Insertion-ordered, so the watchdog and the drain visit clients oldest first.
        self._open: dict[Connection, None] = {}

    def uptime(self) -> float:
        """Seconds since this instance started, rounded to milliseconds."""
        return round(time.monotonic() - self.started, _UPTIME_DIGITS)

    # -- request_data ------------------------------------------------------------------

    def answer(self, data_type: str, params: Mapping[str, Any]) -> dict[str, Any]:
        """Answer a `request_data` from live state (every session's data source)."""
        return self.dashboard.answer(
            data_type,
            params,
            connections=len(self.hub.connections),
            subscribers=self.hub.counts(),
            broker=self.broker.status(),
            uptime_seconds=time.monotonic() - self.started,
        )

    # -- connections -------------------------------------------------------------------

    async def serve(self, websocket: WebSocket) -> None:
        """Run one WebSocket connection from accept to close."""
        await Connection(
            websocket,
            self.new_id(),
            settings=self.settings,
            hub=self.hub,
            broker=self.broker,
            metrics=self.metrics,
            data_source=self.answer,
            new_id=self.new_id,
            log=self.log,
            open_connections=self._open,
        ).run()

    async def watchdog(self, period: float) -> None:
        """Every `period` seconds: idle closes, stuck writes and the queue-depth gauges."""
        while True:
            await asyncio.sleep(period)
            now, wall = time.monotonic(), time.time()
            deepest = 0
            heaviest = 0
            limit = self.settings.send_timeout_seconds
            for conn in list(self._open):
                client = conn.client
                if client is None:
                    continue
                outbox = client.outbox
                deepest = max(deepest, len(outbox.queue))
                heaviest = max(heaviest, outbox.waiting_bytes())
                started = outbox.send_started
                if started and now - started > limit:
                    self.metrics.send_failures.inc()
                    if not outbox.closing:
                        conn.cut_off("backpressure")
                    else:
                        abort(conn.websocket)
                    continue
                await conn.perform(client.session.tick(now, wall))
            self.metrics.send_queue_depth_max.set(deepest)
            self.metrics.send_queue_bytes_max.set(heaviest)

    async def drain(self) -> None:
        """Close every client with `disconnect_notice server_shutdown` and 1001, bounded."""
        for conn in list(self._open):
            conn.cut_off("server_shutdown")
        deadline = time.monotonic() + self.settings.shutdown_grace_seconds
        while self._open and time.monotonic() < deadline:  # noqa: ASYNC110 (bounded poll)
            await asyncio.sleep(_DRAIN_POLL_SECONDS)
        for conn in list(self._open):
            abort(conn.websocket)

    # -- publish and health ------------------------------------------------------------

    async def publish(
        self, subscription: str, message_type: str | None, body: bytes, correlation_id: str
    ) -> dict[str, Any]:
        """Validate and publish one update; return the acknowledgement.

        Raises:
            PublishError: bad subscription, type or body (its `status`: 413 or 422).
            BrokerUnavailable: the broker refused it (a 503).
        """
        kind, data = messages.parse_publish(
            subscription,
            message_type,
            body,
            self.settings.max_inbound_message_bytes,
            max_depth=self.settings.max_json_depth,
        )
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
            "uptime_seconds": self.uptime(),
        }
