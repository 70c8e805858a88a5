"""The broadcast route, `POST /api/dashboard/websocket/broadcast`: its answer and its short way in.

`answer(server, request, subscription, message_type)` is the route: it checks the Bearer
token, validates and publishes the update (`Server.publish`), and builds the response
(200 with the acknowledgement, 401, 413, 422 or 503, each as the OpenAPI document says).

`DirectPublish` is ASGI middleware that hands a POST to that path straight to `answer`,
past FastAPI's routing and dependency solving. Measured in process on this machine (2
cores, uvicorn's scope, no subscribers), a publish took 220–280 µs through the FastAPI
route, more than three quarters of it routing, dependency solving and middleware, against
about 30 µs in `Server.publish`; the subscribers of every update waited that long before
its fan-out began. This way it takes 125–155 µs. It sits inside `Admission` (body size,
content type, Origin, UTF-8 query) and the CORS middleware, so every check before the
route still applies. It matches with the FastAPI route itself and sets `scope["route"]` as
FastAPI's router does, for whatever reads it. A request it does not take goes on to the
FastAPI route, which answers exactly as before and which the OpenAPI document describes:
another path or method, no `subscription` query (FastAPI's 422), or a request FastAPI's
native OpenTelemetry support is tracing (`fastapi.telemetry.get_telemetry_data()` is set),
whose spans and `http.server.request.duration` are named after the route FastAPI's router
selects.
"""

from __future__ import annotations

from collections.abc import Awaitable

from fastapi.routing import APIRoute
from fastapi.telemetry import get_telemetry_data
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Match
from starlette.types import ASGIApp, Receive, Scope, Send

from . import messages
from .auth import bearer_token, tokens_equal
from .broker.redis import MIN_RETRY_AFTER_SECONDS
from .errors import BrokerUnavailable, PublishError
from .server import Server

__all__ = ["BROADCAST_PATH", "DirectPublish", "answer"]

BROADCAST_PATH = "/api/dashboard/websocket/broadcast"
"""Path of the publish route."""


async def answer(
    server: Server, request: Request, subscription: str, message_type: str | None
) -> JSONResponse:
    """Publish the update `request` carries and answer it (the broadcast route's body).

    Args:
        server: the instance that publishes.
        request: the HTTP request; its body is the update's `data` (JSON, UTF-8), its
            `Authorization` and `X-Correlation-ID` headers are read.
        subscription: the `subscription` query parameter.
        message_type: the `message_type` query parameter, None when absent.

    Returns:
        200 with the acknowledgement (and `X-Correlation-ID`); 401 for a missing or wrong
        Bearer token; 413 or 422 for an update `Server.publish` refuses (`detail`,
        `valid_subscriptions`); 503 with `Retry-After` (seconds) when the broker cannot
        take it. Each refusal is counted in `leanvibe_ws_publishes_refused_total{reason}`.
    """
    settings = server.settings
    expected = settings.admin_token or (settings.auth_token if settings.auth_required else "")
    if expected:
        given = bearer_token(request.headers.get("authorization", ""))
        if not tokens_equal(given, expected):
            server.metrics.publishes_refused.labels("unauthorized").inc()
            return JSONResponse(
                {"detail": "Missing or wrong Bearer token"},
                status_code=401,
                headers={"WWW-Authenticate": "Bearer"},
            )
    try:
        cid = (
            messages.publisher_correlation_id(request.headers.get("x-correlation-id"))
            or server.new_id()
        )
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


class DirectPublish:
    """ASGI middleware answering a publish with `answer` directly (see the module docstring).

    Args:
        app: the app behind it, which gets every request this does not take.
        server: the instance that publishes.
        route: the FastAPI route of `POST BROADCAST_PATH` (whose code is `answer`).
    """

    def __init__(self, app: ASGIApp, *, server: Server, route: APIRoute) -> None:
        self.app = app
        self.server = server
        self.route = route

    def __call__(self, scope: Scope, receive: Receive, send: Send) -> Awaitable[None]:
        # Not a coroutine itself: everything else passes with no frame of this middleware.
        if scope["type"] == "http" and scope["method"] == "POST":
            # The route's own matcher: a root path and the path's encoding are read exactly
            # as the router reads them, and the child scope is the router's.
            match, child_scope = self.route.matches(scope)
            if match is Match.FULL and get_telemetry_data() is None:
                query = messages.decode_query(scope.get("query_string", b""))
                subscription = query.get("subscription")
                if subscription is not None:
                    scope.update(child_scope)  # `route`, `endpoint`, `path_params`
                    return self._publish(
                        scope, receive, send, subscription, query.get("message_type")
                    )
        return self.app(scope, receive, send)

    async def _publish(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        subscription: str,
        message_type: str | None,
    ) -> None:
        response = await answer(self.server, Request(scope, receive), subscription, message_type)
        await response(scope, receive, send)
