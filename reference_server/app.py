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
from collections.abc import AsyncIterator, Awaitable
from typing import Any

from fastapi import Depends, FastAPI, Path, Query, Request, WebSocket
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse, Response
from fastapi.routing import APIRoute
from fastapi.security import HTTPBearer
from prometheus_client import CONTENT_TYPE_LATEST
from pydantic import BaseModel, Field
from starlette.routing import WebSocketRoute
from starlette.types import ASGIApp, Receive, Scope, Send

from . import limits as runtime
from . import messages, publishing
from .admission import Admission
from .auth import admin_refusal, bearer_token, tokens_equal
from .broker.base import Broker
from .broker.memory import MemoryBroker
from .broker.redis import RedisBroker
from .demo import run_demo
from .errors import DataRequestError, LimitsError
from .messages import IdFactory
from .metrics import Metrics
from .publishing import BROADCAST_PATH, DirectPublish
from .server import Server
from .settings import Settings
from .transport import TransportAbort

__all__ = [
    "WS_PATH",
    "ConnectionEntry",
    "ConnectionsPage",
    "LimitChange",
    "LimitsChanged",
    "create_app",
    "new_uuid",
]

WS_PATH = "/api/dashboard/ws/dashboard"
"""Path of the dashboard WebSocket endpoint."""

# The instance id in Redis: this many hex digits of a UUID4 (64 bits, no collisions).
_INSTANCE_ID_HEX_DIGITS = 16
# The deprecation policy's promise, in months: a contract version stays supported at least
# this long after its successor is announced on /api/dashboard/websocket/contract.
_MINIMUM_SUPPORT_MONTHS = 6


# Declares the admin routes' Bearer scheme in the OpenAPI document; the check itself is
# `auth.admin_refusal`, which tells a client token (403) from a missing or wrong one (401).
_ADMIN_BEARER = HTTPBearer(
    auto_error=False, scheme_name="adminToken", description="The admin token (WS_ADMIN_TOKEN)."
)
_ADMIN_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {"description": "No Bearer token, or one that is not the admin token."},
    403: {"description": "The client token (WS_AUTH_TOKEN), or no WS_ADMIN_TOKEN is set."},
}


class LimitChange(BaseModel):
    """One setting's value before and after a runtime change."""

    old: int | float = Field(
        description="The value in force before, in the setting's unit and of its type "
        "(an integer setting's is an integer)."
    )
    new: int | float = Field(description="The value in force now, of the same type.")


class LimitsChanged(BaseModel):
    """The answer to a limits PATCH on one instance."""

    changed: dict[str, LimitChange] = Field(
        description="Each setting whose value changed (one set to its current value is left out)."
    )
    connections: int = Field(description="Live connections of this instance now under them.")
    cut_off: int = Field(
        description="Connections cut off at once (backpressure, 1013) because their backlog "
        "already passed a lowered queue bound."
    )
    limits: dict[str, Any] = Field(
        description="Every limit in force now, as GET /api/dashboard/websocket/limits shows it."
    )


class ConnectionEntry(BaseModel):
    """One admitted connection of this instance; nothing secret (no token, no address)."""

    connection_id: str = Field(description="The id sent in its connection_established.")
    subscriptions: list[str] = Field(description="Its subscriptions, sorted.")
    tokens_left: float = Field(description="Rate-limit tokens it has now (a frame costs one).")
    backlog_frames: int = Field(description="Frames queued for it, not yet written.")
    backlog_bytes: int = Field(description="Bytes waiting for it: queue and socket buffer.")
    idle_seconds: float = Field(description="Seconds since its last valid frame (or accept).")


class ConnectionsPage(BaseModel):
    """One page of the connections listing, in accept order."""

    connections: list[ConnectionEntry] = Field(
        description="Up to `limit` connections, after the cursor's."
    )
    next_cursor: str | None = Field(
        description="Pass as `cursor` for the next page; null on the last page."
    )
    total: int = Field(description="Admitted connections on this instance now.")


def new_uuid() -> str:
    """A fresh random UUID4 as a string: the id factory the server uses by default."""
    return str(uuid.uuid4())


def _make_broker(settings: Settings, metrics: Metrics, new_id: IdFactory) -> Broker:
    if settings.redis_enabled:
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

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await server.broker.start(server.hub.deliver)
        tasks = [asyncio.create_task(server.watchdog())]
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
        f"`{WS_PATH}` is described by the protocol reference. Every GET endpoint also "
        "answers HEAD (same status and headers, no body); writes take only "
        "`application/json`.",
        lifespan=lifespan,
    )
    app.state.server = server
    _routes(app, server)
    # Innermost: past the routing, behind every check below.
    app.add_middleware(DirectPublish, server=server, route=_route(app, BROADCAST_PATH, "POST"))
    app.add_middleware(TransportAbort)
    app.add_middleware(Admission, settings=settings, metrics=metrics)  # size, type, Origin, HEAD
    if settings.cors_allowed_origins:
        # The docs site's live console reads the limits from another origin (the docs
        # server's port). Only GET, only the listed origins, never credentials.
        app.add_middleware(_HttpCors, allow_origins=list(settings.cors_allowed_origins))
    return app


def _route(app: FastAPI, path: str, method: str) -> APIRoute:
    """The app's FastAPI route of `method path`."""
    for route in app.routes:
        if isinstance(route, APIRoute) and route.path == path and method in (route.methods or ()):
            return route
    raise LookupError(f"no route {method} {path}")  # pragma: no cover (a wiring mistake)


class _HttpCors:
    """CORS for HTTP requests only (GET, never credentials); WebSockets pass straight by.

    CORS means nothing to a WebSocket; passing it by keeps no frame of the CORS middleware
    alive for each connection's whole life (memory every idle client pays for).
    """

    def __init__(self, app: ASGIApp, *, allow_origins: list[str]) -> None:
        self.app = app
        self.cors = CORSMiddleware(app, allow_origins=allow_origins, allow_methods=["GET"])

    def __call__(self, scope: Scope, receive: Receive, send: Send) -> Awaitable[None]:
        if scope["type"] == "http":
            return self.cors(scope, receive, send)
        return self.app(scope, receive, send)


def _routes(app: FastAPI, server: Server) -> None:
    async def dashboard_ws(websocket: WebSocket) -> None:
        await server.serve(websocket)

    # A plain Starlette route, not `@app.websocket`: FastAPI's wraps the endpoint in its
    # dependency machinery (an exit stack and three coroutine frames), which every open
    # connection would keep alive for its whole life, about 2.5 KB each (bench/memory.py).
    app.router.routes.append(WebSocketRoute(WS_PATH, dashboard_ws))

    @app.get("/health", summary="Health of the server and its broker")
    async def health() -> JSONResponse:
        return JSONResponse(server.health())

    def limits_in_force() -> dict[str, Any]:
        return {**server.settings.public_limits(), "contract_version": messages.CONTRACT_VERSION}

    def admin_refused(request: Request) -> JSONResponse | None:
        settings = server.settings
        status = admin_refusal(
            request.headers.get("authorization", ""),
            admin_token=settings.admin_token,
            client_token=settings.auth_token,
        )
        if status is None:
            return None
        server.log.info("admin_refused", path=request.url.path, status=status)
        if status == 401:
            return JSONResponse(
                {"detail": "Missing or wrong Bearer token: this route needs WS_ADMIN_TOKEN"},
                status_code=401,
                headers={"WWW-Authenticate": "Bearer"},
            )
        detail = (
            "The client token cannot use admin routes; use WS_ADMIN_TOKEN"
            if settings.admin_token
            else "Admin routes are off: set WS_ADMIN_TOKEN to use them"
        )
        return JSONResponse({"detail": detail}, status_code=403)

    @app.get("/api/dashboard/websocket/limits", summary="Every limit in force")
    async def limits() -> dict[str, Any]:
        return limits_in_force()

    @app.patch(
        "/api/dashboard/websocket/limits",
        summary="Change limits of this running instance",
        description="Changes, on this instance only, any of "
        + ", ".join(f"`{key}`" for key in runtime.RUNTIME_LIMITS)
        + ". Values are checked as at start-up; live connections take them at once (token "
        "buckets, idle timeouts, queue bounds), and a connection whose backlog already passes "
        "a lowered queue bound is cut off at once (`disconnect_notice backpressure`, 1013). "
        "Not kept across a restart: set the `WS_*` settings too. Logged as one "
        "`limits_changed` line and counted in `leanvibe_ws_limit_changes_total{setting}`; "
        "a PATCH that changes no value is logged as `limits_unchanged` and not counted.",
        response_model=LimitsChanged,
        dependencies=[Depends(_ADMIN_BEARER)],
        openapi_extra={
            "requestBody": {
                "required": True,
                "description": "The limits to change, in their settings' units.",
                "content": {
                    "application/json": {
                        "schema": runtime.schema(),
                        "example": {"rate_burst": 10, "idle_disconnect_seconds": 300},
                    }
                },
            }
        },
        responses={
            400: {
                "description": "An empty body, not a JSON object, an unknown key, a wrong type "
                "or an out-of-range value; `key` names the bad key. Nothing changed.",
                "content": {
                    "application/json": {
                        "example": {
                            "detail": "rate_burst must be a number, got 'ten'",
                            "key": "rate_burst",
                        }
                    }
                },
            },
            **_ADMIN_RESPONSES,
            413: {"description": "The body is larger than max_request_body_bytes."},
            415: {"description": "A Content-Type other than application/json (or none)."},
        },
    )
    async def change_limits(request: Request) -> Any:
        refused = admin_refused(request)
        if refused is not None:
            return refused
        try:
            new, changed = runtime.parse_changes(await request.body(), server.settings)
        except LimitsError as exc:
            server.log.info("limits_refused", key=exc.key, detail=str(exc))
            return JSONResponse({"detail": str(exc), "key": exc.key}, status_code=400)
        peer = f"{request.client.host}:{request.client.port}" if request.client else ""
        outcome = server.change_limits(new, changed, peer=peer)
        return {
            "changed": {key: {"old": old, "new": now} for key, (old, now) in changed.items()},
            **outcome,
            "limits": limits_in_force(),
        }

    @app.get(
        "/api/dashboard/websocket/connections",
        summary="The connections of this instance, one page at a time",
        description="Each admitted connection of this instance, in accept order: id, "
        "subscriptions, tokens left, backlog and idle time. Nothing secret. Pages are "
        "bounded by `connections_page_max`; follow `next_cursor` until it is null. A cursor "
        "rather than an offset: clients leaving between two pages make an offset skip "
        "some, never a cursor.",
        response_model=ConnectionsPage,
        dependencies=[Depends(_ADMIN_BEARER)],
        openapi_extra={
            "parameters": [
                {
                    "name": "limit",
                    "in": "query",
                    "required": False,
                    "description": "Connections per page, 1 to connections_page_max (its default).",
                    "schema": {"type": "integer", "minimum": 1},
                },
                {
                    "name": "cursor",
                    "in": "query",
                    "required": False,
                    "description": "The next_cursor of the previous page; absent for the first.",
                    "schema": {"type": "string"},
                },
            ]
        },
        responses={
            400: {
                "description": "A `limit` or `cursor` out of range or not ASCII digits, or "
                "not valid UTF-8; `key` names it."
            },
            **_ADMIN_RESPONSES,
        },
    )
    async def connections(request: Request) -> Any:
        refused = admin_refused(request)
        if refused is not None:
            return refused
        query = request.query_params
        try:
            limit, after = runtime.parse_page(
                query.get("limit"), query.get("cursor"), server.settings.connections_page_max
            )
        except LimitsError as exc:
            return JSONResponse({"detail": str(exc), "key": exc.key}, status_code=400)
        return server.connections_page(limit, after)

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

    @app.get(
        "/api/dashboard/data/{data_type}",
        summary="A snapshot of server state with its stream positions",
        description="The REST twin of `request_data`: the same `data` a `data_response` "
        "carries, and its `positions` (subscription -> the `seq` of the last update the data "
        "reflects), taken together. Subscribe with `resume` set to `positions` to receive "
        "exactly the updates after the snapshot, on this instance or another one sharing its "
        "Redis. Needs `Authorization: Bearer <WS_AUTH_TOKEN>` when auth is required (the "
        "admin token works too).",
        responses={
            200: {
                "description": "The snapshot and its positions.",
                "content": {
                    "application/json": {
                        "example": {
                            "data_type": "agent_status",
                            "data": {"agents": [], "count": 0, "total": 0, "truncated": False},
                            "positions": {"agents": 42},
                        }
                    }
                },
            },
            401: {"description": "Auth is required and the Bearer token is missing or wrong."},
            404: {"description": "Unknown data type, or unknown `agent_id`; `detail` says which."},
            422: {"description": "A parameter of the wrong shape; `detail` names it."},
        },
    )
    async def data(
        request: Request,
        data_type: str = Path(
            description="`agent_status`, `coordination_metrics` or `system_health`.",
            examples=["agent_status"],
        ),
        agent_id: str | None = Query(
            None, description="`agent_status` only: this one agent.", examples=["agent-7"]
        ),
        after: str | None = Query(
            None,
            description="`agent_status` only: the page after this agent_id (`next_after`).",
            examples=["agent-7"],
        ),
    ) -> JSONResponse:
        settings = server.settings
        if settings.auth_required:
            given = bearer_token(request.headers.get("authorization", ""))
            if not any(
                tokens_equal(given, token)
                for token in (settings.auth_token, settings.admin_token)
                if token
            ):
                return JSONResponse(
                    {"detail": "Missing or wrong Bearer token"},
                    status_code=401,
                    headers={"WWW-Authenticate": "Bearer"},
                )
        params = {k: v for k, v in (("agent_id", agent_id), ("after", after)) if v is not None}
        try:
            answer, positions = server.answer(data_type, params)
        except DataRequestError as exc:
            status = 404 if data_type not in messages.DATA_TYPES or "agent_id" in params else 422
            return JSONResponse({"detail": str(exc)}, status_code=status)
        return JSONResponse({"data_type": data_type, "data": answer, "positions": positions})

    @app.post(
        BROADCAST_PATH,
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
            400: {
                "description": "A query parameter that is not valid UTF-8 (`%FF`); `key` "
                "names it. Every route refuses one so."
            },
            401: {"description": "Missing or wrong Bearer token."},
            403: {"description": "An `Origin` not in `allowed_origins` (when that is set)."},
            413: {
                "description": "The body is larger than max_inbound_message_bytes, or than "
                "max_request_body_bytes (then refused while it is read)."
            },
            415: {"description": "A Content-Type other than application/json (or none)."},
            422: {
                "description": "Unknown subscription, invalid message_type, an "
                "X-Correlation-ID that is not 1-128 printable ASCII characters, or a body "
                "that is not a JSON object in UTF-8 with valid Unicode text (no lone "
                "surrogates, NaN or nesting deeper than max_json_depth); `detail` says "
                "which and where, `valid_subscriptions` lists the names.",
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
        return await publishing.answer(server, request, subscription, message_type)
