"""One server instance: its open connections, watchdog, drain, publish and health.

`Server` holds what one instance shares between its connections (settings, broker, hub,
metrics, dashboard state), runs each WebSocket as a `Connection`, closes idle clients and
aborts writes stuck past their timeout (`watchdog`), closes everyone on shutdown (`drain`),
and validates and publishes what the broadcast route hands it (`publish`, which checks the
body with `messages.parse_publish`).
"""

from __future__ import annotations

import asyncio
import heapq
import time
from collections.abc import Coroutine, Mapping
from typing import Any

from fastapi import WebSocket

from . import messages
from .broker.base import Broker
from .connection import Connection
from .dashboard import Answer, DashboardState
from .flusher import Flusher
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
# The watchdog runs at least once a second, and four times per idle timeout, so an idle
# client is closed at most a quarter of the timeout late (the timeout may change at run time).
_WATCHDOG_MAX_PERIOD_SECONDS = 1.0
_WATCHDOG_CHECKS_PER_IDLE_TIMEOUT = 4
# The connections listing rounds tokens and seconds to milliseconds.
_LISTING_DIGITS = 3


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
        self.dashboard = DashboardState(
            max_bytes=settings.dashboard_state_max_bytes,
            # The frame around the listing (type, ids, timestamp) fits in the last KiB.
            answer_bytes=max(1, settings.max_frame_bytes - 1_024),
        )
        self.flusher = Flusher(
            self.metrics, settings.write_delay_seconds, settings.write_coalesce_window_seconds
        )
        self.hub = Hub(self.metrics, self.dashboard, self.flusher)
        self.broker = broker
        self.new_id = new_id
        self.started = time.monotonic()
        self.log = get_logger()
        # Insertion-ordered, so the watchdog and the drain visit clients oldest first.
        self._open: dict[Connection, None] = {}
        # Accept numbers, 1 up: the connections listing pages by them (its cursor).
        self._accepted = 0

    def uptime(self) -> float:
        """Seconds since this instance started, rounded to milliseconds."""
        return round(time.monotonic() - self.started, _UPTIME_DIGITS)

    # -- request_data ------------------------------------------------------------------

    def answer(self, data_type: str, params: Mapping[str, Any]) -> Answer:
        """Answer a `request_data` from live state (every session's data source).

        Returns:
            `(data, positions)`, taken together with no await in between (`DashboardState`).

        Raises:
            DataRequestError: unknown data type or parameter value.
        """
        return self.dashboard.answer(
            data_type,
            params,
            connections=len(self.hub.connections),
            subscribers=self.hub.counts(),
            broker=self.broker.status(),
            uptime_seconds=time.monotonic() - self.started,
            position=self.broker.position,
        )

    # -- connections -------------------------------------------------------------------

    def serve(self, websocket: WebSocket) -> Coroutine[Any, Any, None]:
        """Run one WebSocket connection from accept to close (await what this returns).

        Not a coroutine itself: it hands back the connection's own, so no frame of this
        method stays alive for the connection's whole life.
        """
        self._accepted += 1
        return Connection(
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
            serial=self._accepted,
            flusher=self.flusher,
        ).run()

    def watchdog_period(self) -> float:
        """Seconds between two watchdog passes under the idle timeout in force."""
        return min(
            _WATCHDOG_MAX_PERIOD_SECONDS,
            self.settings.idle_disconnect_seconds / _WATCHDOG_CHECKS_PER_IDLE_TIMEOUT,
        )

    async def watchdog(self) -> None:
        """Every `watchdog_period()` seconds: idle closes, stuck writes, queue-depth gauges."""
        while True:
            await asyncio.sleep(self.watchdog_period())
            now, wall = time.monotonic(), time.time()
            deepest = 0
            heaviest = 0
            limit = self.settings.send_timeout_seconds
            for conn in list(self._open):
                client = conn.client
                if client is None:
                    continue
                outbox = client.outbox
                held_frames, held_bytes = self.hub.held(client)
                deepest = max(deepest, len(outbox.queue) + held_frames)
                heaviest = max(heaviest, outbox.waiting_bytes() + held_bytes)
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

    # -- runtime limits ----------------------------------------------------------------

    def change_limits(
        self,
        settings: Settings,
        changed: Mapping[str, tuple[float | int, float | int]],
        *,
        peer: str,
    ) -> dict[str, int]:
        """Put `settings` in force now, for new connections and live ones; audit and count it.

        Each live connection's token bucket takes the new rate and burst (keeping the tokens
        it has, down to the new burst), its idle timeout the new one (checked at the next
        watchdog pass), its outbox the new bounds. A connection whose backlog already passes
        a lowered bound is cut off at once: `disconnect_notice backpressure`, close 1013.

        Args:
            settings: the validated new settings (`limits.parse_changes`).
            changed: each setting whose value changed: (old, new); when empty the audit
                line is `limits_unchanged`, not `limits_changed`.
            peer: the admin's address, for the audit line.

        Returns:
            `{"connections": live connections retuned, "cut_off": those cut off}`.
        """
        self.settings = settings
        now = time.monotonic()
        live = cut = 0
        for conn in list(self._open):
            conn.settings = settings
            client = conn.client
            if client is None or client not in self.hub.connections:
                continue  # refused or closing: it takes nothing more
            live += 1
            client.session.apply(settings, now)
            outbox = client.outbox
            over = outbox.retune(settings.send_queue_max_messages, settings.send_queue_max_bytes)
            if over and not outbox.closing:
                conn.cut_off("backpressure")
                cut += 1
        for key in changed:
            self.metrics.limit_changes.labels(key).inc()
        # A PATCH that changes no value is audited too, but never as a change.
        self.log.info(
            "limits_changed" if changed else "limits_unchanged",
            who="admin",
            peer=peer,
            changed={key: {"old": old, "new": new} for key, (old, new) in changed.items()},
            connections=live,
            cut_off=cut,
        )
        return {"connections": live, "cut_off": cut}

    def connections_page(self, limit: int, after: int) -> dict[str, Any]:
        """One page of the admitted connections, in accept order, after accept number `after`.

        Returns:
            `{"connections": [...], "next_cursor": str | None, "total": int}`: each entry's
            `connection_id`, `subscriptions` (sorted), `tokens_left` (tokens),
            `backlog_frames`, `backlog_bytes` (queue and socket buffer) and `idle_seconds`;
            `next_cursor` is None on the last page; `total` counts every admitted connection.
        """
        now = time.monotonic()
        admitted = self.hub.connections
        later = [c for c in self._open if c.serial > after and c.client in admitted]
        page = heapq.nsmallest(limit + 1, later, key=lambda c: c.serial)
        entries = []
        for conn in page[:limit]:
            client = conn.client
            assert client is not None  # admitted, so accepted
            session, outbox = client.session, client.outbox
            # Updates the hub holds for the flush wait for the client as queued frames do.
            held_frames, held_bytes = self.hub.held(client)
            entries.append(
                {
                    "connection_id": conn.connection_id,
                    "subscriptions": sorted(session.subscriptions),
                    "tokens_left": round(session.tokens_left(now), _LISTING_DIGITS),
                    "backlog_frames": len(outbox.queue) + held_frames,
                    "backlog_bytes": outbox.waiting_bytes() + held_bytes,
                    "idle_seconds": round(session.idle_seconds(now), _LISTING_DIGITS),
                }
            )
        more = len(page) > limit
        return {
            "connections": entries,
            "next_cursor": str(page[limit - 1].serial) if more else None,
            "total": len(admitted),
        }

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
        if self.flusher.due_this_turn():
            # Delivered in-process and due at the end of this turn: let the fan-out's writes
            # go before the acknowledgement is built and sent (as bare `websockets` answers
            # after its broadcast), so subscribers' latency does not include the HTTP
            # response. Under a sustained rate the window holds the flush instead, and the
            # acknowledgement does not wait for it.
            await asyncio.sleep(0)
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
            "status": "healthy" if status.healthy else "degraded",
            "contract_version": messages.CONTRACT_VERSION,
            "ws_contract_version": messages.CONTRACT_VERSION,
            "components": {
                "broker": {
                    "kind": status.kind,
                    "connected": status.connected,
                    **status.details,
                    **({"degraded": status.degraded} if status.degraded else {}),
                }
            },
            "connections": len(self.hub.connections),
            "uptime_seconds": self.uptime(),
        }
