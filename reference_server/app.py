"""The FastAPI app: routes and wiring.

`create_app(settings)` builds the broker and the `Server` (hub, metrics, dashboard state),
starts the broker, the watchdog and the optional demo producer in the lifespan, and exposes
the WebSocket endpoint plus the REST endpoints: health, limits, the contract, stats,
metrics and the publish route. It is one of the edges where ids and randomness are made:
everything inside receives them.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import uuid
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI, Query, Request, WebSocket
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST

from . import messages
from .auth import bearer_token, tokens_equal
from .broker.base import Broker
from .broker.memory import MemoryBroker
from .broker.redis import MIN_RETRY_AFTER_SECONDS, RedisBroker
from .demo import run_demo
from .errors import BrokerUnavailable, PublishError
from .messages import IdFactory
from .metrics import Metrics
from .server import Server
from .settings import Settings
from .transport import TransportAbort

__all__ = ["WS_PATH", "create_app", "new_uuid"]

WS_PATH = "/api/dashboard/ws/dashboard"
"""Path of the dashboard WebSocket endpoint."""

# The watchdog runs at least once a second, and four times per idle timeout, so an idle
# client is closed at most a quarter of the timeout late.
_WATCHDOG_MAX_PERIOD_SECONDS = 1.0
_WATCHDOG_CHECKS_PER_IDLE_TIMEOUT = 4
# The instance id in Redis: this many hex digits of a UUID4 (64 bits, no collisions).
_INSTANCE_ID_HEX_DIGITS = 16
# The deprecation policy's promise, in months: a contract version stays supported at least
# this long after its successor is announced on /api/dashboard/websocket/contract.
_MINIMUM_SUPPORT_MONTHS = 6


def new_uuid() -> str:
    """A fresh random UUID4 as a string: the id factory the server uses by default."""
    return str(uuid.uuid4())


def _make_broker(settings: Settings, metrics: Metrics, new_id: IdFactory) -> Broker:
    if settings.redis_url:
        return RedisBroker(
            settings,
            metrics,
            instance_id=uuid.uuid4().hex[:_INSTANCE_ID_HEX_DIGITS],
            rng=random.Random(),
            new_id=new_id,
        )
    return MemoryBroker(
        history_max_messages=settings.history_max_messages,
        history_max_age_seconds=settings.history_max_age_seconds,
    )


def create_app(
    settings: Settings | None = None,
    *,
    broker: Broker | None = None,
    rng: random.Random | None = None,
    new_id: IdFactory | None = None,
) -> FastAPI:
    """Build the reference server's ASGI app.

    Args:
        settings: validated settings; None reads nothing and uses the defaults.
        broker: a broker to use instead of the one `settings` names.
        rng: random source for the demo producer (seed it for a repeatable demo).
        new_id: makes connection and correlation ids; `new_uuid` by default.

    Returns:
        The FastAPI app; its `state.server` is the `Server`.
    """
    settings = settings or Settings()
    rng = rng or random.Random()
    new_id = new_id or new_uuid
    metrics = Metrics()
    if broker is None:
        broker = _make_broker(settings, metrics, new_id)
    server = Server(settings, broker, metrics, new_id=new_id)
    watchdog_period = min(
        _WATCHDOG_MAX_PERIOD_SECONDS,
        settings.idle_disconnect_seconds / _WATCHDOG_CHECKS_PER_IDLE_TIMEOUT,
    )

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await server.broker.start(server.hub.deliver)
        tasks = [asyncio.create_task(server.watchdog(watchdog_period))]
        if settings.demo:
            tasks.append(
                asyncio.create_task(run_demo(server.broker, settings.demo_interval_seconds, rng))
            )
        server.log.info("started", broker=server.broker.status().kind)
        try:
            yield
        finally:
            await server.drain()
            for task in tasks:
                task.cancel()
            # Bounded: a task whose cancellation is swallowed inside a Redis call (CPython
            # gh-86296, Python 3.11) must not hold the shutdown; the broker closes it below.
            await asyncio.wait(tasks, timeout=settings.shutdown_grace_seconds)
            await server.broker.close()

    app = FastAPI(
        title="Agent Hive dashboard reference server",
        version=messages.CONTRACT_VERSION,
        description="REST side of the dashboard protocol. The WebSocket endpoint "
        f"`{WS_PATH}` is described by the protocol reference.",
        lifespan=lifespan,
    )
    app.state.server = server
    app.add_middleware(TransportAbort)
    if settings.cors_allowed_origins:
        # The docs site's live console reads the limits from another origin (the docs
        # server's port). Only GET, only the listed origins, never credentials.
        app.add_middleware(
            CORSMiddleware, allow_origins=list(settings.cors_allowed_origins), allow_methods=["GET"]
        )
    _routes(app, server)
    return app


def _routes(app: FastAPI, server: Server) -> None:
    @app.websocket(WS_PATH)
    async def dashboard_ws(websocket: WebSocket) -> None:
        await server.serve(websocket)

    @app.get("/health", summary="Health of the server and its broker")
    async def health() -> JSONResponse:
        return JSONResponse(server.health())

    @app.get("/api/dashboard/websocket/limits", summary="Every limit in force")
    async def limits() -> dict[str, Any]:
        return {**server.settings.public_limits(), "contract_version": messages.CONTRACT_VERSION}

    @app.get("/api/dashboard/websocket/contract", summary="Contract versions this server speaks")
    async def contract() -> dict[str, Any]:
        return {
            "current_version": messages.CONTRACT_VERSION,
            "supported_versions": list(messages.SUPPORTED_CONTRACT_VERSIONS),
            "deprecation_policy": {
                "minimum_support_months": _MINIMUM_SUPPORT_MONTHS,
                "announcement": "A version leaves supported_versions no sooner than "
                f"{_MINIMUM_SUPPORT_MONTHS} months after its successor appears here.",
                "breaking_changes": "only in a new major version",
            },
        }

    @app.get(
        "/api/dashboard/metrics/websockets",
        summary="Prometheus metrics (text format)",
        response_class=Response,
    )
    async def metrics() -> Response:
        server.health()  # refreshes the broker gauge
        return Response(server.metrics.exposition(), media_type=CONTENT_TYPE_LATEST)

    @app.get("/api/dashboard/websocket/stats", summary="Connection and subscription counts")
    async def stats() -> dict[str, Any]:
        return {
            "connections": len(server.hub.connections),
            "subscriptions": server.hub.counts(),
            "uptime_seconds": server.uptime(),
        }

    @app.post(
        "/api/dashboard/websocket/broadcast",
        summary="Publish an update to subscribers",
        description="The JSON body is the update's `data`. Every subscriber of `subscription` on "
        "every instance receives it once, with the next `seq` and the `X-Correlation-ID` sent "
        "here (or a new one). Needs `Authorization: Bearer <token>` when `WS_ADMIN_TOKEN`, or "
        "`WS_AUTH_TOKEN` with auth required, is set.",
        openapi_extra={
            "requestBody": {
                "required": True,
                "description": "The update's data: any JSON object (at most "
                "max_inbound_message_bytes). `critical_alert` needs an `alerts` list.",
                "content": {
                    "application/json": {
                        "schema": {"type": "object"},
                        "example": {"agent_id": "agent-7", "status": "busy"},
                    }
                },
            }
        },
        responses={
            200: {
                "description": "Published: acknowledged, and it will be delivered.",
                "content": {
                    "application/json": {
                        "example": {
                            "status": "published",
                            "subscription": "agents",
                            "message_type": "agent_update",
                            "seq": 42,
                            "correlation_id": "pub-1",
                        }
                    }
                },
            },
            401: {"description": "Missing or wrong Bearer token."},
            413: {"description": "The body is larger than max_inbound_message_bytes."},
            422: {
                "description": "Unknown subscription, invalid message_type or a body that is "
                "not a JSON object; `valid_subscriptions` lists the names.",
                "content": {
                    "application/json": {
                        "example": {
                            "detail": "Unknown subscription 'weather'; valid: "
                            + ", ".join(messages.SUBSCRIPTIONS),
                            "valid_subscriptions": list(messages.SUBSCRIPTIONS),
                        }
                    }
                },
            },
            503: {
                "description": "The broker cannot take the update now (Redis down); nothing "
                "was published. Retry after the `Retry-After` seconds."
            },
        },
    )
    async def broadcast(
        request: Request,
        subscription: str = Query(description="Subscription to publish on.", examples=["agents"]),
        message_type: str | None = Query(
            None,
            description="Update type; defaults per subscription (agents: agent_update, "
            "alerts: critical_alert, ...).",
            examples=["agent_update"],
        ),
    ) -> JSONResponse:
        expected = server.settings.admin_token or (
            server.settings.auth_token if server.settings.auth_required else ""
        )
        if expected:
            given = bearer_token(request.headers.get("authorization", ""))
            if not tokens_equal(given, expected):
                server.metrics.publishes_refused.labels("unauthorized").inc()
                return JSONResponse(
                    {"detail": "Missing or wrong Bearer token"},
                    status_code=401,
                    headers={"WWW-Authenticate": "Bearer"},
                )
        cid = (
            request.headers.get("x-correlation-id", "")[: messages.MAX_CORRELATION_ID_CHARS]
            or server.new_id()
        )
        try:
            ack = await server.publish(subscription, message_type, await request.body(), cid)
        except PublishError as exc:
            server.metrics.publishes_refused.labels("invalid").inc()
            return JSONResponse(
                {"detail": str(exc), "valid_subscriptions": list(messages.SUBSCRIPTIONS)},
                status_code=exc.status,
            )
        except BrokerUnavailable as exc:
            server.metrics.publishes_refused.labels("broker_unavailable").inc()
            return JSONResponse(
                {"detail": str(exc)},
                status_code=503,
                headers={"Retry-After": str(max(MIN_RETRY_AFTER_SECONDS, round(exc.retry_after)))},
            )
        return JSONResponse(ack, headers={"X-Correlation-ID": cid})
