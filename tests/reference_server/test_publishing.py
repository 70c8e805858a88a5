"""The broadcast route's short way in (`DirectPublish`) answers exactly as the FastAPI route.

Every case is sent twice to the same app: once through the whole app, where `DirectPublish`
takes it, and once to what lies behind `DirectPublish` (FastAPI's exception handling and
router), where only the FastAPI route can answer it.
The two answers are compared field by field (status, body, the headers a client reads),
with nothing shared with the code under test but the app itself.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest
from fastapi.routing import APIRoute
from starlette.types import Receive, Scope, Send

from reference_server.app import create_app
from reference_server.publishing import BROADCAST_PATH, DirectPublish
from reference_server.settings import Settings

pytestmark = pytest.mark.unit

URL = "http://testserver/api/dashboard/websocket/broadcast"
DATA = b'{"agent_id": "agent-7", "status": "busy"}'
# Headers a publisher reads; the rest (date, server) are the HTTP server's, not the route's.
READ_HEADERS = ("content-type", "x-correlation-id", "www-authenticate", "retry-after")

# (expected status, case, query, headers, body)
CASES: list[tuple[int, str, Any, dict[str, str], bytes]] = [
    (200, "published", {"subscription": "agents"}, {}, DATA),
    (200, "with_type", {"subscription": "agents", "message_type": "agent_update"}, {}, DATA),
    (200, "alert", {"subscription": "alerts"}, {}, b'{"alerts": [{"id": "a"}]}'),
    (422, "alert_without_list", {"subscription": "alerts"}, {}, DATA),
    (200, "own_correlation_id", {"subscription": "agents"}, {"X-Correlation-ID": "pub-1"}, DATA),
    (422, "bad_correlation_id", {"subscription": "agents"}, {"X-Correlation-ID": "a b\x7f"}, DATA),
    (422, "long_correlation_id", {"subscription": "agents"}, {"X-Correlation-ID": "x" * 129}, DATA),
    (422, "unknown_subscription", {"subscription": "weather"}, {}, DATA),
    (422, "empty_subscription", {"subscription": ""}, {}, DATA),
    (200, "empty_type", {"subscription": "agents", "message_type": ""}, {}, DATA),
    (422, "bad_type", {"subscription": "agents", "message_type": "no such"}, {}, DATA),
    (422, "not_json", {"subscription": "agents"}, {}, b"{nope"),
    (422, "not_an_object", {"subscription": "agents"}, {}, b"[1, 2]"),
    (422, "lone_surrogate", {"subscription": "agents"}, {}, b'{"text": "\\ud800"}'),
    (422, "nan", {"subscription": "agents"}, {}, b'{"x": NaN}'),
    (422, "not_utf8", {"subscription": "agents"}, {}, b'{"x": "\xff"}'),
    (422, "empty_body", {"subscription": "agents"}, {}, b""),
    (413, "too_large", {"subscription": "agents"}, {}, b'{"x": "' + b"a" * 2_000 + b'"}'),
    (422, "deep", {"subscription": "agents"}, {}, b'{"x": ' + b"[" * 200 + b"]" * 200 + b"}"),
    (200, "repeated_name", [("subscription", "weather"), ("subscription", "agents")], {}, DATA),
    (200, "extra_query", {"subscription": "agents", "other": "1"}, {}, DATA),
]
AUTH_CASES = [
    ("no_token", {}),
    ("wrong_token", {"Authorization": "Bearer nope"}),
    ("client_token", {"Authorization": "Bearer client-secret"}),
    ("admin_token", {"Authorization": "Bearer admin-secret"}),
    ("basic_scheme", {"Authorization": "Basic admin-secret"}),
]


Exchange = tuple[int, Any, dict[str, str]]


def _both(
    requests: list[tuple[Any, dict[str, str], bytes]], settings: Settings | None = None
) -> list[tuple[Exchange, Exchange]]:
    """Each request sent to the whole app, then to its router: the two answers, in order."""

    async def run() -> list[tuple[Exchange, Exchange]]:
        app = create_app(settings or Settings())
        layer = app.build_middleware_stack()
        while not isinstance(layer, DirectPublish):
            layer = layer.app
        routed = layer.app  # FastAPI's exception handling and router, then the route
        async with app.router.lifespan_context(app):
            return [
                (await _post(app, *request), await _post(routed, *request)) for request in requests
            ]

    return asyncio.run(run())


async def _post(
    app: Any, params: Any, headers: dict[str, str], body: bytes
) -> tuple[int, Any, dict[str, str]]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app)) as client:
        response = await client.post(
            URL,
            params=params,
            content=body,
            headers={"Content-Type": "application/json", **headers},
        )
    shown = {name: response.headers[name] for name in READ_HEADERS if name in response.headers}
    return response.status_code, response.json(), shown


def _same(direct: tuple[int, Any, dict[str, str]], routed: tuple[int, Any, dict[str, str]]) -> None:
    (status, body, headers), (status2, body2, headers2) = direct, routed
    assert status == status2
    assert headers.keys() == headers2.keys()
    if status == 200:
        # Two publishes: two seqs, two new correlation ids unless the publisher gave one.
        assert body.pop("seq") < body2.pop("seq")
        if body["correlation_id"] != body2["correlation_id"]:
            assert headers.pop("x-correlation-id") == body.pop("correlation_id")
            assert headers2.pop("x-correlation-id") == body2.pop("correlation_id")
    assert body == body2
    assert headers == headers2


@pytest.mark.parametrize(
    ("expected", "case", "params", "headers", "body"), CASES, ids=[c[1] for c in CASES]
)
def test_the_direct_path_answers_as_the_fastapi_route(
    expected: int, case: str, params: Any, headers: dict[str, str], body: bytes
) -> None:
    # Under the request body limit (Admission's), over the update's: the route's own 413.
    [(direct, routed)] = _both([(params, headers, body)], Settings(max_inbound_message_bytes=1_024))
    _same(direct, routed)
    assert direct[0] == expected


def test_the_direct_path_checks_the_token_as_the_route_does() -> None:
    settings = Settings(auth_required=True, auth_token="client-secret", admin_token="admin-secret")
    answers = _both(
        [({"subscription": "agents"}, headers, DATA) for _, headers in AUTH_CASES], settings
    )
    for (case, _), (direct, routed) in zip(AUTH_CASES, answers, strict=True):
        _same(direct, routed)
        assert direct[0] == (200 if case == "admin_token" else 401), case


def test_a_publish_without_a_subscription_gets_fastapis_answer() -> None:
    [(direct, routed)] = _both([({"message_type": "agent_update"}, {}, DATA)])
    assert direct == routed
    assert direct[0] == 422
    assert direct[1]["detail"][0]["loc"] == ["query", "subscription"]


class _Behind:
    """The app behind the middleware: records what reached it and answers 599."""

    def __init__(self) -> None:
        self.reached: list[tuple[str, str]] = []
        self.scopes: list[dict[str, Any]] = []  # every request's scope, after the middleware

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.reached.append((scope["method"], scope["path"]))
        await send({"type": "http.response.start", "status": 599, "headers": []})
        await send({"type": "http.response.body", "body": b""})


def _through(behind: _Behind, method: str, path: str, query: bytes, root_path: str = "") -> int:
    return asyncio.run(_through_async(behind, method, path, query, root_path))


async def _through_async(
    behind: _Behind, method: str, path: str, query: bytes, root_path: str
) -> int:
    app = create_app()
    server = app.state.server
    [route] = [r for r in app.routes if isinstance(r, APIRoute) and r.path == BROADCAST_PATH]
    middleware = DirectPublish(behind, server=server, route=route)
    body = [{"type": "http.request", "body": DATA, "more_body": False}]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return body.pop(0) if body else {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": root_path + path,
        "raw_path": (root_path + path).encode(),
        "root_path": root_path,
        "query_string": query,
        "headers": [(b"content-type", b"application/json")],
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 2),
    }
    await server.broker.start(server.hub.deliver)
    try:
        await asyncio.wait_for(middleware(scope, receive, send), timeout=10)
    finally:
        await server.broker.close()
    behind.scopes.append(scope)
    return int(sent[0]["status"])


def test_a_publish_never_reaches_the_app_behind() -> None:
    behind = _Behind()
    path = "/api/dashboard/websocket/broadcast"
    assert _through(behind, "POST", path, b"subscription=agents") == 200
    assert _through(behind, "POST", path, b"subscription=nope") == 422
    assert _through(behind, "POST", path, b"subscription=agents", "/hive") == 200
    assert behind.reached == []
    # As FastAPI's router leaves it, for whatever reads the route (tracing, logging).
    for scope in behind.scopes:
        assert scope["route"].path == path and scope["path_params"] == {}


@pytest.mark.parametrize(
    ("method", "path", "query"),
    [
        ("POST", "/api/dashboard/websocket/broadcast", b""),  # FastAPI's 422 names the query
        ("POST", "/api/dashboard/websocket/broadcast", b"subscriptions=agents"),
        ("GET", "/api/dashboard/websocket/broadcast", b"subscription=agents"),  # its 405
        ("PUT", "/api/dashboard/websocket/broadcast", b"subscription=agents"),
        ("POST", "/api/dashboard/websocket/broadcast/", b"subscription=agents"),  # its redirect
        ("POST", "/api/dashboard/websocket/broadcastx", b"subscription=agents"),
        ("POST", "/api/dashboard/websocket/limits", b"subscription=agents"),
    ],
)
def test_every_other_request_goes_on_to_the_app(method: str, path: str, query: bytes) -> None:
    behind = _Behind()
    assert _through(behind, method, path, query) == 599
    assert behind.reached == [(method, path)]


def test_the_openapi_document_still_describes_the_route() -> None:
    operation = create_app().openapi()["paths"]["/api/dashboard/websocket/broadcast"]["post"]
    names = {p["name"]: p["required"] for p in operation["parameters"]}
    assert names == {"subscription": True, "message_type": False}
    assert {"200", "401", "413", "415", "422", "503"} <= operation["responses"].keys()
    assert json.loads(json.dumps(operation))  # plain JSON, as the reference generator reads it
