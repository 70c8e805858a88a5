"""Below ASGI: the two things uvicorn's protocol object can do that ASGI cannot.

ASGI can neither abort a connection nor write a frame without a task switch and three
wrapper layers. `TransportAbort`, the outermost middleware, reaches for uvicorn's protocol
object (the owner of the `send` callable) and offers, through `scope["extensions"]`:

- `hive.abort`: drop the TCP connection at once (a stalled reader never drains a close);
- `hive.send_batch` / `hive.write_now`: write text frames straight to the transport
  (`transport_writers`). Measured in bench/ at 1,000 subscribers, they took ours from about
  0.4x to about 2x the bare FastAPI endpoint's throughput;
- `hive.buffered`: the bytes in the transport's write buffer, which the outbox counts
  against its byte bound beside its own queue.

Under any other server or WebSocket implementation the extensions are absent and the app
keeps to plain ASGI sends; only the cut-off of a stalled reader then waits for it to read.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.types import ASGIApp, Receive, Scope, Send
from starlette.websockets import WebSocket
from websockets.frames import Frame, Opcode

__all__ = ["SendBatch", "TransportAbort", "WriteNow", "abort", "transport_writers"]

SendBatch = Callable[[list[str]], Awaitable[None]]
"""Writes several text frames with one write; raises when the client is gone."""
WriteNow = Callable[[str], bool]
"""Writes one text frame at once if the transport has room; False (nothing written) if not."""


_last: list[Any] = [None, b""]


def _frame_bytes(text: str) -> bytes:
    """The unmasked text frame (RFC 6455 §5.2) carrying `text`, as sent by a server.

    Fan-out hands every recipient the same `str` object in a row, so remembering the last
    one makes this one encoding per update instead of one per recipient.

    Raises:
        UnicodeEncodeError: `text` has no UTF-8 form; nothing is remembered then, so the
            next call with it raises again instead of sending the previous frame's bytes.
    """
    if _last[0] is not text:
        # Encode first, remember after: an exception must leave the old pair intact.
        frame = Frame(Opcode.TEXT, text.encode()).serialize(mask=False)
        _last[0], _last[1] = text, frame
        return frame
    cached: bytes = _last[1]
    return cached


def transport_writers(protocol: object) -> tuple[SendBatch, WriteNow] | None:
    """`(send_batch, write_now)` writing straight to uvicorn's `websockets-sansio` protocol.

    They do what that protocol's own ASGI `send` does for a text frame (frame it with the
    protocol's `websockets` state machine, write the bytes to the transport, respect its
    flow control), minus the per-frame layers. None when `protocol` is anything else (another
    server or WebSocket implementation): the caller then keeps to plain ASGI sends.
    """
    conn: Any = getattr(protocol, "conn", None)
    transport: Any = getattr(protocol, "transport", None)
    writable = getattr(protocol, "writable", None)
    if (
        not hasattr(conn, "send_text")
        or not hasattr(conn, "data_to_send")
        or not isinstance(writable, asyncio.Event)
        or not hasattr(transport, "write")
        or not hasattr(protocol, "disconnected")
        or not hasattr(protocol, "close_sent")
    ):
        return None
    attrs: Any = protocol

    def gone() -> bool:
        return bool(attrs.disconnected or attrs.close_sent or transport.is_closing())

    if getattr(conn, "extensions", None):
        # permessage-deflate: each connection compresses with its own context.
        def frames(texts: list[str]) -> bytes:
            for text in texts:
                conn.send_text(text.encode())
            return b"".join(conn.data_to_send())

    else:
        # No extension: a server frame is unmasked, so its bytes are the same for every
        # recipient, and `_frame_bytes` builds them once per update.
        def frames(texts: list[str]) -> bytes:
            return b"".join(map(_frame_bytes, texts))

    async def send_batch(texts: list[str]) -> None:
        await writable.wait()  # paused while the transport's buffer is over its high mark
        if gone():
            raise ConnectionError("the client is gone")
        transport.write(frames(texts))

    def write_now(text: str) -> bool:
        if not writable.is_set() or gone():
            return False
        transport.write(frames([text]))
        return True

    return send_batch, write_now


class TransportAbort:
    """ASGI middleware adding `hive.abort`, `hive.buffered`, `hive.send_batch` and
    `hive.write_now` to `scope["extensions"]` of every WebSocket connection served by uvicorn.

    Under uvicorn the `send` callable handed to the app is a method of the protocol object,
    which holds the asyncio transport; this middleware, the outermost, is the one place
    that reaches for it. Under another server nothing is added.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            protocol = getattr(send, "__self__", None)
            transport = getattr(protocol, "transport", None)
            if transport is not None:
                # The scope is this connection's own: extend it in place rather than copy it
                # (a copy per connection is memory every idle client pays for).
                extensions = scope.setdefault("extensions", {})
                extensions["hive.abort"] = transport.abort
                extensions["hive.buffered"] = transport.get_write_buffer_size
                writers = transport_writers(protocol)
                if writers is not None:
                    extensions["hive.send_batch"], extensions["hive.write_now"] = writers
        await self.app(scope, receive, send)


def abort(websocket: WebSocket) -> bool:
    """Drop `websocket`'s TCP connection at once, unsent bytes included, if the server can."""
    drop = (websocket.scope.get("extensions") or {}).get("hive.abort")
    if drop is None:
        return False
    drop()
    return True
