"""Which HTTP requests reach the routes: body size, content type and Origin of writes, HEAD.

`Admission` is ASGI middleware in front of every route:

- **Body size, while it is read.** A `Content-Length` over `max_request_body_bytes` gets
  413 before a byte of the body is read; a body without one (chunked) is counted as it
  arrives and gets 413 as soon as it passes the limit, so at most the limit plus one read
  is ever held. Before, a 200 MB POST grew the server by about 350 MB before its 413.
- **Writes only as `application/json`** (415 otherwise, a missing type included). A web
  page can POST `text/plain`, a form type, or a typeless body to any server without a
  CORS preflight (a "simple request"); only JSON needs one, which the CORS policy then
  refuses. Without this, in open mode any page could publish a fake `critical_alert`.
- **Writes from another Origin** are refused (403) when `allowed_origins` is set, as the
  WebSocket is; a request without `Origin` (a script, curl) is not a browser's.
- **Query parameters are valid UTF-8** (400 naming the parameter in `key` otherwise).
  Starlette decodes `%FF` or an encoded surrogate (`%ED%A0%80`) to U+FFFD, which a route
  would then read as a wrong value (an unknown subscription, an unknown cursor); the raw
  `query_string` bytes are decoded strictly here, on every route.
- **HEAD is GET without a body** on every route (FastAPI answers 405 to HEAD on a GET
  route, which health checkers read as "down"; RFC 9110 §9.3.2).
- **A client that leaves before its body has arrived** is logged as one `request_abandoned`
  line (info, with the path): nothing was done with the partial body and nobody is left to
  answer. Before, Starlette's `ClientDisconnect` reached uvicorn, which logged it as an
  error with a traceback, on any route that reads a body.

Refused writes are counted in `leanvibe_ws_publishes_refused_total{reason}`
(`too_large`, `unsupported_media_type`, `forbidden_origin`, and `invalid` for a query that
is not UTF-8).
"""

from __future__ import annotations

from collections.abc import Awaitable

from starlette.datastructures import Headers
from starlette.requests import ClientDisconnect
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .logs import get_logger
from .messages import decode_query, is_ascii_digits, is_valid_text
from .metrics import Metrics
from .settings import Settings

__all__ = ["Admission"]

# Methods that never change state; everything else is a write (RFC 9110 §9.2.1).
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})
_JSON = "application/json"


class _TooLarge(Exception):
    """The body passed the limit while it was read."""


class Admission:
    """ASGI middleware admitting HTTP requests (see the module docstring).

    Args:
        app: the app behind it.
        settings: `max_request_body_bytes` and `allowed_origins`.
        metrics: where refused writes are counted.
    """

    def __init__(self, app: ASGIApp, *, settings: Settings, metrics: Metrics) -> None:
        self.app = app
        self.limit = settings.max_request_body_bytes
        self.origins = frozenset(settings.allowed_origins)
        self.refused = metrics.publishes_refused
        self.log = get_logger()

    def __call__(self, scope: Scope, receive: Receive, send: Send) -> Awaitable[None]:
        # Not a coroutine itself: a WebSocket goes straight to the app, with no frame of
        # this middleware kept alive for the connection's whole life (memory per client).
        if scope["type"] != "http":
            return self.app(scope, receive, send)
        return self._http(scope, receive, send)

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        method = scope["method"]
        if method == "HEAD":
            # A copy: uvicorn keeps its own scope (it too sends no body to a HEAD).
            await self.app({**scope, "method": "GET"}, receive, _bodiless(send))
            return
        for name, value in decode_query(scope.get("query_string", b"")).items():
            if not (is_valid_text(name) and is_valid_text(value)):
                if method not in _SAFE_METHODS:
                    self.refused.labels("invalid").inc()
                shown = name if is_valid_text(name) else ascii(name)
                response = JSONResponse(
                    {"detail": f"The {shown} query is not valid UTF-8", "key": shown},
                    status_code=400,
                )
                await response(scope, receive, send)
                return
        headers = Headers(scope=scope)
        refusal = self._refusal(method, headers)
        if refusal is not None:
            reason, status, detail = refusal
            self.refused.labels(reason).inc()
            await JSONResponse({"detail": detail}, status_code=status)(scope, receive, send)
            return
        await self._counted(scope, receive, send)

    def _refusal(self, method: str, headers: Headers) -> tuple[str, int, str] | None:
        """`(reason, status, detail)` to refuse the request with before reading it, or None."""
        length = headers.get("content-length", "")
        # ASCII digits only: a Latin-1 header "\u00b2" passes isdigit() and int() raises.
        if is_ascii_digits(length) and int(length) > self.limit:
            return "too_large", 413, f"Request body over {self.limit} bytes"
        if method in _SAFE_METHODS:
            return None
        origin = headers.get("origin")
        if self.origins and origin is not None and origin not in self.origins:
            return "forbidden_origin", 403, f"Origin {origin!r} is not allowed"
        media_type = headers.get("content-type", "").partition(";")[0].strip().lower()
        if media_type != _JSON:
            return (
                "unsupported_media_type",
                415,
                f"Content-Type must be {_JSON}, got {media_type or 'none'!r}",
            )
        return None

    async def _counted(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Run the app with the body counted as it is read; 413 once it passes the limit."""
        received = 0
        started = False

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    raise _TooLarge  # the chunk that passed the limit goes no further
            return message

        async def watching_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counting_receive, watching_send)
        except ClientDisconnect:
            self.log.info("request_abandoned", path=scope["path"], body_bytes=received)
        except _TooLarge:
            self.refused.labels("too_large").inc()
            if started:  # pragma: no cover (our routes read the body before answering)
                return
            response = JSONResponse(
                {"detail": f"Request body over {self.limit} bytes"}, status_code=413
            )
            await response(scope, receive, send)


def _bodiless(send: Send) -> Send:
    """`send` with every response body emptied (the headers, Content-Length included, stay)."""

    async def bodiless(message: Message) -> None:
        if message["type"] == "http.response.body":
            message = {**message, "body": b""}
        await send(message)

    return bodiless
