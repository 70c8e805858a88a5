"""The tutorial's whole client: subscribe, watch updates, publish one, handle errors.

Run it against a server started with `python -m reference_server --demo`. Updates are
logged as they arrive; the summary at the end is printed.
"""

import asyncio
import json
import logging
import urllib.request

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

SERVER = "127.0.0.1:8000"
WS_URL = f"ws://{SERVER}/api/dashboard/ws/dashboard?subscriptions=agents,alerts"
UPDATES_WANTED = 5

log = logging.getLogger("first_client")


def publish_alert(message: str) -> dict:
    """POST a critical alert to the broadcast endpoint; return the server's receipt."""
    request = urllib.request.Request(
        f"http://{SERVER}/api/dashboard/websocket/broadcast?subscription=alerts",
        data=json.dumps({"alerts": [{"level": "critical", "message": message}]}).encode(),
        headers={"Content-Type": "application/json", "X-Correlation-ID": "first-client"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.load(response)


async def main() -> None:
    received: dict[str, int] = {}
    async with connect(WS_URL) as ws:
        hello = json.loads(await ws.recv())
        log.info("connected as %s", hello["connection_id"])
        receipt = await asyncio.to_thread(publish_alert, "disk 91% full on db-1")
        log.info("published seq %s on alerts", receipt["seq"])
        try:
            async for raw in ws:
                frame = json.loads(raw)
                kind = frame["type"]
                if kind == "error":
                    # The connection stays open: log it, fix what the code names.
                    log.warning("server refused a frame: %s (%s)", frame["message"], frame["code"])
                elif kind == "disconnect_notice":
                    # The server is about to close; the reason says whether to come back.
                    log.warning("server is closing the connection: %s", frame["reason"])
                elif "seq" in frame:
                    log.info("%s #%s: %s", kind, frame["seq"], frame["data"])
                    received[frame["subscription"]] = received.get(frame["subscription"], 0) + 1
                    if sum(received.values()) >= UPDATES_WANTED and "alerts" in received:
                        break
        except ConnectionClosed as closed:
            log.warning("connection closed: code %s", closed.rcvd.code if closed.rcvd else None)
    print("got my own alert:", "alerts" in received)
    #> got my own alert: True
    print("updates received:", sum(received.values()) >= UPDATES_WANTED)
    #> updates received: True


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    asyncio.run(main())
