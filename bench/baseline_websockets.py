"""Baseline: a bare `websockets` server that fans out with `websockets.broadcast`.

The fastest fan-out this Python stack allows: one `broadcast` call writes the encoded frame
into every connection's buffer synchronously, with no queue, no limits and no backpressure.
Subscribers connect to any path. A publisher connects to `/publish` and sends one text
message (the update's data) per update; each is broadcast, then acknowledged with its seq.
`websockets` serves only GET requests, so this WebSocket is its equivalent of the reference
server's POST endpoint. `GET /stats` answers the subscriber count.

Run: `python -m bench.baseline_websockets --port P`.
"""

from __future__ import annotations

import argparse
import json
from http import HTTPStatus

import uvloop
from websockets.asyncio.server import ServerConnection, broadcast, serve
from websockets.http11 import Request, Response

from .envelope import update_frame
from .loadgen import raise_fd_limit

__all__ = ["main"]

clients: set[ServerConnection] = set()
published = 0


async def handler(ws: ServerConnection) -> None:
    """Serve a subscriber (until it leaves) or a publisher (`/publish`)."""
    global published
    if ws.request is not None and ws.request.path == "/publish":
        async for message in ws:
            published += 1
            broadcast(clients, update_frame(json.loads(message), published))
            await ws.send(str(published))
        return
    clients.add(ws)
    try:
        async for _ in ws:
            pass
    finally:
        clients.discard(ws)


def stats(connection: ServerConnection, request: Request) -> Response | None:
    """Answer `GET /stats`; let every other request through to the handshake."""
    if request.path == "/stats":
        return connection.respond(HTTPStatus.OK, json.dumps({"subscribers": len(clients)}))
    return None


async def run(port: int) -> None:
    """Serve on 127.0.0.1:`port` until killed."""
    # The same frame limit and no compression, like the reference server's defaults.
    async with serve(
        handler, "127.0.0.1", port, process_request=stats, compression=None, max_size=262_144
    ) as server:
        print(f"bare websockets baseline on ws://127.0.0.1:{port}/", flush=True)
        await server.serve_forever()


def main() -> None:
    """Command line: `--port P`."""
    parser = argparse.ArgumentParser(prog="python -m bench.baseline_websockets")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    raise_fd_limit()
    uvloop.run(run(args.port))


if __name__ == "__main__":
    main()
