"""Baseline: a bare FastAPI WebSocket endpoint, what a user would write instead of ours.

Subscribers connect to `/ws`. `POST /publish` (JSON body = the update's data) encodes the
frame once and sends it with a plain `for ws in clients: await ws.send_text(msg)` loop, then
answers `{"seq": n}`. It runs under uvicorn with the reference server's transport options,
so the two differ only in what the app does. `GET /stats` answers the subscriber count.

Run: `python -m bench.baseline_fastapi --port P`.
"""

from __future__ import annotations

import argparse

import uvicorn
from fastapi import FastAPI, Request, WebSocket, WebSocketDisconnect

from .envelope import update_frame
from .loadgen import raise_fd_limit

__all__ = ["app", "main"]

app = FastAPI()
clients: set[WebSocket] = set()
published = 0


@app.websocket("/ws")
async def subscribe(ws: WebSocket) -> None:
    """Hold one subscriber until it leaves."""
    await ws.accept()
    clients.add(ws)
    try:
        while True:
            await ws.receive_text()
    except WebSocketDisconnect:
        pass
    finally:
        clients.discard(ws)


@app.post("/publish")
async def publish(request: Request) -> dict[str, int]:
    """Send the posted data to every subscriber, one after the other."""
    global published
    published += 1
    msg = update_frame(await request.json(), published)
    for ws in list(clients):  # a copy: a subscriber may leave during the loop
        try:
            await ws.send_text(msg)
        except Exception:  # a gone client; a user's loop would drop it and go on
            clients.discard(ws)
    return {"seq": published}


@app.get("/stats")
async def stats() -> dict[str, int]:
    """The subscriber count."""
    return {"subscribers": len(clients)}


def main() -> None:
    """Command line: `--port P`."""
    parser = argparse.ArgumentParser(prog="python -m bench.baseline_fastapi")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    raise_fd_limit()
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=args.port,
        ws="websockets-sansio",
        ws_max_size=262_144,
        ws_per_message_deflate=False,
        access_log=False,
        log_level="warning",
    )


if __name__ == "__main__":
    main()
