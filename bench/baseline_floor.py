"""The floor: the least CPU any Python server on uvloop can spend per delivery.

No framework, no ASGI, no queue, no limit: an `asyncio.Protocol` per socket, the handshake
answered by hand (RFC 6455 §4.2.2), and each update's frame built once (the `websockets`
frame serializer, unmasked) and written to every subscriber's transport. Two modes:

- by default, one `transport.write` per frame per subscriber, as `websockets.broadcast`
  and uvicorn's `send` do;
- `--per-turn`: every frame due to a subscriber within one event-loop turn in one write,
  joined once for all subscribers (with a burst of K updates, K frames per write).

What is left of a delivery here is the write system call and uvloop's bookkeeping: no
server doing more per update can be cheaper. Subscribers connect to any path; a publisher
connects to `/publish` and sends one text message (the update's data) per update, which is
acknowledged with its seq, like the bare `websockets` baseline. `GET /stats` answers the
subscriber count.

Run: `python -m bench.baseline_floor --port P [--per-turn]`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from typing import Any

import uvloop
from websockets.frames import Frame, Opcode
from websockets.protocol import State
from websockets.server import ServerProtocol
from websockets.utils import accept_key

from .envelope import update_frame
from .loadgen import raise_fd_limit

__all__ = ["main"]

_HEAD_MAX_BYTES = 16_384  # a request head longer than this is refused (closed)

subscribers: set[asyncio.Transport] = set()
published = 0
_due: list[bytes] = []
_flush_scheduled = False


def _frame(text: str) -> bytes:
    return Frame(Opcode.TEXT, text.encode()).serialize(mask=False)


def _flush() -> None:
    global _flush_scheduled
    _flush_scheduled = False
    data = b"".join(_due)
    _due.clear()
    for transport in subscribers:
        transport.write(data)


def fan_out(frame: bytes, batch: bool) -> None:
    """Write `frame` to every subscriber now (`batch` False) or at the end of the turn."""
    global _flush_scheduled
    if not batch:
        for transport in subscribers:
            transport.write(frame)
        return
    _due.append(frame)
    if not _flush_scheduled:
        _flush_scheduled = True
        asyncio.get_running_loop().call_soon(_flush)


class Floor(asyncio.Protocol):
    """One socket: a stats request, a subscriber or the publisher."""

    def __init__(self, batch: bool) -> None:
        self.batch = batch
        self.transport: Any = None
        self.head = b""
        self.role = ""
        self.parser: ServerProtocol | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        if self.role == "subscriber":
            return  # subscribers send nothing the floor needs to read
        if self.role == "publisher":
            self._publish(data)
            return
        self.head += data
        end = self.head.find(b"\r\n\r\n")
        if end < 0:
            if len(self.head) > _HEAD_MAX_BYTES:
                self.transport.close()
            return
        self._answer(self.head[:end].decode("latin-1"), self.head[end + 4 :])

    def _answer(self, head: str, rest: bytes) -> None:
        lines = head.split("\r\n")
        path = lines[0].split(" ")[1] if len(lines[0].split(" ")) > 1 else "/"
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        if path == "/stats":
            body = json.dumps({"subscribers": len(subscribers)}).encode()
            self.transport.write(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
                + str(len(body)).encode()
                + b"\r\nConnection: close\r\n\r\n"
                + body
            )
            self.transport.close()
            return
        accept = accept_key(headers.get("sec-websocket-key", "")).encode()  # RFC 6455 §4.2.2
        self.transport.write(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
            b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + accept + b"\r\n\r\n"
        )
        if path == "/publish":
            self.role = "publisher"
            # The publisher's frames are masked and may be split: `websockets`' sans-I/O
            # parser reads them (the floor is about the fan-out, not the publish).
            self.parser = ServerProtocol(max_size=262_144, state=State.OPEN)
            if rest:
                self._publish(rest)
        else:
            self.role = "subscriber"
            subscribers.add(self.transport)

    def _publish(self, data: bytes) -> None:
        global published
        parser = self.parser
        assert parser is not None
        parser.receive_data(data)
        for event in parser.events_received():
            if isinstance(event, Frame) and event.opcode is Opcode.TEXT:
                published += 1
                fan_out(_frame(update_frame(json.loads(bytes(event.data)), published)), self.batch)
                self.transport.write(_frame(str(published)))
            elif isinstance(event, Frame) and event.opcode is Opcode.CLOSE:
                self.transport.close()
        parser.data_to_send()  # pongs and close echoes are not needed by the load generator

    def connection_lost(self, exc: Exception | None) -> None:
        subscribers.discard(self.transport)


async def run(port: int, batch: bool) -> None:
    """Serve on 127.0.0.1:`port` until killed."""
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: Floor(batch), "127.0.0.1", port, backlog=4096)
    mode = "one write per turn" if batch else "one write per frame"
    print(f"floor baseline on ws://127.0.0.1:{port}/ ({mode})", flush=True)
    async with server:
        await server.serve_forever()


def main() -> None:
    """Command line: `--port P [--per-turn]`."""
    parser = argparse.ArgumentParser(prog="python -m bench.baseline_floor")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument(
        "--per-turn",
        action="store_true",
        help="write every frame due to a subscriber in one turn at once (default: per frame)",
    )
    args = parser.parse_args()
    raise_fd_limit()
    uvloop.run(run(args.port, args.per_turn))


if __name__ == "__main__":
    main()
