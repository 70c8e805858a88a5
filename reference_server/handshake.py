"""The HTTP request head and the WebSocket handshake, below ASGI: size limits and a deadline.

uvicorn parses requests with httptools (llhttp) and hands a WebSocket upgrade to its
`websockets-sansio` protocol. Neither bounds what a client may send before the app sees
a request, and neither answers some refusals:

- httptools has no limit on the URL, a header line, the number of headers or the whole
  head, so one request can grow the server without bound;
- no timer runs until a first response is sent (uvicorn's keep-alive timeout starts only
  then), so a client that connects and sends nothing, or half a request, holds its socket
  forever (slowloris);
- when `websockets` refuses a handshake (a header line over its 8,192-byte limit, more than
  128 headers, a malformed request), it prepares a 414/431/400 answer, but uvicorn's
  protocol writes nothing and never closes: the socket stays open, invisible to `/stats`.

`protocols(settings, metrics)` returns the two protocol classes to give `uvicorn.Config`
(`http=` and `ws=`): the same classes with the limits of `settings` applied at the root,
while the request head arrives, and every refusal answered at once, closed and counted in
`leanvibe_ws_handshakes_refused_total{reason}`.

Refusals, as `(status, reason)`: `(414, uri_too_long)`, `(431, header_too_large)`,
`(431, too_many_headers)`, `(408, timeout)` (or a bare close when nothing was sent),
`(400, invalid)`.
"""

from __future__ import annotations

import asyncio
import http
from typing import Any

import httptools
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.exceptions import HeaderLineTooLong, RequestLineTooLong, TooManyHeaders

from .metrics import Metrics
from .settings import Settings

__all__ = ["REFUSAL_REASONS", "protocols"]

REFUSAL_REASONS = ("uri_too_long", "header_too_large", "too_many_headers", "timeout", "invalid")
"""The `reason` labels of `leanvibe_ws_handshakes_refused_total`."""

# After a refusal the server stops writing (FIN) and discards what the client still sends
# for this long before closing: closing a socket with unread input makes the kernel send
# a reset, which can destroy the answer before the client reads it (RFC 9112 §9.6; nginx
# `lingering_timeout`). Bounded by the request timeout when that is shorter.
_LINGER_SECONDS = 2.0


class _Refused(Exception):
    """A limit was passed while the request head was parsed."""


def _answer(status: int, detail: str) -> bytes:
    """A complete `status` response with a plain-text body, closing the connection."""
    body = f"{detail}\n".encode()
    phrase = http.HTTPStatus(status).phrase
    return (
        f"HTTP/1.1 {status} {phrase}\r\ncontent-type: text/plain; charset=utf-8\r\n"
        f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
    ).encode() + body


def protocols(settings: Settings, metrics: Metrics) -> tuple[type[Any], type[Any]]:
    """The `(http, ws)` protocol classes for `uvicorn.Config`, with `settings`' limits.

    Args:
        settings: `max_url_bytes`, `max_header_line_bytes`, `max_headers`,
            `max_header_bytes` (bytes or counts) and `http_request_timeout_seconds`.
        metrics: where refusals are counted (`handshakes_refused`, by reason).

    Returns:
        Two classes: uvicorn's httptools protocol and its `websockets-sansio` protocol,
        each subclassed with the limits. Pass them as `uvicorn.Config(http=..., ws=...)`.
    """
    refused = metrics.handshakes_refused
    for reason in REFUSAL_REASONS:
        refused.labels(reason)  # exposed at 0 from the start, so a rate can be taken
    timeout = settings.http_request_timeout_seconds
    linger = min(_LINGER_SECONDS, timeout)

    class LimitedHttp(HttpToolsProtocol):
        """uvicorn's httptools protocol with the request head bounded in bytes and time."""

        _deadline: asyncio.TimerHandle | None = None
        _refusal: tuple[int, str, str] | None = None
        _deferred = False  # a refusal waits for the app's answer to the request before
        _head_bytes = 0  # bytes received since the head began (a partial head's memory)
        _head_parsed = 0  # bytes of the head parsed so far (request target and headers)
        _header_count = 0
        _in_head = True
        _receiving = False  # a request began and has not been received whole

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._arm()

        def _arm(self) -> None:
            if self._deadline is None:
                self._deadline = self.loop.call_later(timeout, self._expire)

        def _disarm(self) -> None:
            if self._deadline is not None:
                self._deadline.cancel()
                self._deadline = None

        def _expire(self) -> None:
            self._deadline = None
            cycle = self.cycle
            if self._refusal is not None:  # the linger after a refusal is over
                self.transport.close()
            elif self._receiving or self._head_bytes:
                # Half a request (slowloris, or a body trickled in): 408 when nothing has
                # been answered yet, else only the close.
                answered = cycle is not None and cycle.response_started and self._receiving
                self._refuse(408, "timeout", "request not received in time", answer=not answered)
            elif cycle is None or cycle.response_complete:
                refused.labels("timeout").inc()  # connected and silent
                self.transport.close()
            # else the app is answering a whole request: its time is not ours to cut

        def _refuse(self, status: int, reason: str, detail: str, *, answer: bool = True) -> None:
            if self._refusal is not None:
                return
            self._refusal = (status, reason, detail)
            refused.labels(reason).inc()
            self._disarm()
            cycle = self.cycle
            if (
                answer
                and status != 408
                and cycle is not None
                and not cycle.more_body
                and not cycle.response_complete
            ):
                # Bad bytes after a request received whole that the app is still answering
                # (a pipelined request, or a body longer than its Content-Length): that
                # answer goes first, then this one (RFC 9112 §9.3.2: responses in the order
                # of the requests). Written now, the refusal's end of stream made the app's
                # answer fail, and a publish that was done was answered 400. (A request
                # whose body is still arriving is refused at once: its app waits for more.)
                self._deferred = True
                return
            self._answer_refusal(answer)

        def on_response_complete(self) -> None:
            super().on_response_complete()
            if self._deferred:
                self._deferred = False
                self._answer_refusal(answer=True)

        def _answer_refusal(self, answer: bool) -> None:
            assert self._refusal is not None
            status, _, detail = self._refusal
            transport = self.transport
            if transport.is_closing():
                return
            if answer:
                transport.write(_answer(status, detail))
            if status == 408 or not transport.can_write_eof():
                # A timed-out client gets no linger: it is the slow one.
                transport.close()
                if self.cycle is not None and not self.cycle.response_complete:
                    self.cycle.disconnected = True  # the app's receive() sees a disconnect
                return
            transport.write_eof()
            self._deadline = self.loop.call_later(linger, self._expire)

        def data_received(self, data: bytes) -> None:
            if self._refusal is not None:
                return  # lingering: the rest of a refused request is read and dropped
            if self.cycle is None or self.cycle.response_complete:
                # Between requests: bytes that begin no request (llhttp skips stray CRLFs)
                # would otherwise cancel uvicorn's keep-alive timer and arm nothing.
                self._arm()
            if self._in_head:
                self._head_bytes += len(data)
            # uvicorn's own `data_received`, minus its log line per bad request (a client
            # could flood the log with them).
            self._unset_keepalive_if_required()
            try:
                self.parser.feed_data(data)
            except httptools.HttpParserUpgrade:
                # Another upgrade (`curl --http2` asks for h2c) is ignored: the request was
                # dispatched as plain HTTP/1.1, as uvicorn does.
                if self._should_upgrade():
                    self.handle_websocket_upgrade()
                return
            except httptools.HttpParserError:
                # Also what an exception raised in a parser callback (`_Refused`) becomes.
                self._refuse(400, "invalid", "invalid HTTP request")
                return
            if self._refusal is not None:
                return
            # Still inside the head after this chunk: the whole chunk was head. At most one
            # chunk (asyncio reads up to 256 KiB) passes the bound before this check.
            if self._in_head and self._head_bytes > settings.max_header_bytes:
                self._refuse(
                    431, "header_too_large", f"request head over {settings.max_header_bytes} bytes"
                )

        def on_message_begin(self) -> None:
            super().on_message_begin()
            self._in_head = True
            self._receiving = True
            self._header_count = 0
            self._head_parsed = 0
            self._arm()

        def _count_head(self, size: int) -> None:
            # A head received in one chunk is parsed whole before `data_received` can look,
            # so the parsed size is checked too.
            self._head_parsed += size
            if self._head_parsed > settings.max_header_bytes:
                self._refuse(
                    431, "header_too_large", f"request head over {settings.max_header_bytes} bytes"
                )
                raise _Refused

        def on_url(self, url: bytes) -> None:
            super().on_url(url)
            if len(self.url) > settings.max_url_bytes:
                self._refuse(414, "uri_too_long", f"URL over {settings.max_url_bytes} bytes")
                raise _Refused
            self._count_head(len(url))

        def on_header(self, name: bytes, value: bytes) -> None:
            self._header_count += 1
            if self._header_count > settings.max_headers:
                self._refuse(
                    431, "too_many_headers", f"more than {settings.max_headers} header fields"
                )
                raise _Refused
            # name + ": " + value, as the line arrives (RFC 9112 §5).
            if len(name) + len(value) + 2 > settings.max_header_line_bytes:
                self._refuse(
                    431,
                    "header_too_large",
                    f"header line over {settings.max_header_line_bytes} bytes",
                )
                raise _Refused
            self._count_head(len(name) + len(value) + 4)  # ": " and CRLF
            super().on_header(name, value)

        def on_headers_complete(self) -> None:
            self._in_head = False
            self._head_bytes = 0
            super().on_headers_complete()

        def on_message_complete(self) -> None:
            super().on_message_complete()
            self._receiving = False
            self._in_head = True
            self._disarm()  # a whole request arrived; answering it is the app's time

        def handle_websocket_upgrade(self) -> None:
            self._disarm()  # the handshake is complete; the WebSocket has its own timers
            super().handle_websocket_upgrade()

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            super().connection_lost(exc)

    class Handshake(WebSocketsSansIOProtocol):
        """uvicorn's `websockets-sansio` protocol, answering the handshakes it refuses."""

        _answered = False

        def data_received(self, data: bytes) -> None:
            super().data_received(data)
            exc = self.conn.handshake_exc
            if exc is None or self.handshake_initiated or self._answered:
                return
            # websockets refused the request and queued its answer (or only an EOF for a
            # malformed request); uvicorn would write neither and keep the socket open.
            self._answered = True
            if isinstance(exc, RequestLineTooLong):
                reason = "uri_too_long"
            elif isinstance(exc, TooManyHeaders):
                reason = "too_many_headers"
            elif isinstance(exc, HeaderLineTooLong):
                reason = "header_too_large"
            else:
                reason = "invalid"
            refused.labels(reason).inc()
            output = b"".join(self.conn.data_to_send())
            self.transport.write(output or _answer(400, "invalid WebSocket handshake"))
            self.transport.close()

    return LimitedHttp, Handshake
