"""Publishers: how updates reach each server under test, at a fixed rate or flat out.

Ours and the bare FastAPI endpoint take a POST whose JSON body is the update's data; the
bare `websockets` server takes the same data as a text message on a publisher WebSocket.
Every payload is 200 bytes of JSON that starts with `"bt":` (the wall-clock publish time,
from which subscribers compute the end-to-end latency).

Flat out means closed loop: a publisher sends the next update only while fewer than
`window` updates are in flight past the slowest reading subscriber. An open loop would just
fill queues until something is cut off, and measure that instead of throughput.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Protocol

from websockets.asyncio.client import ClientConnection, connect

__all__ = [
    "HttpPublisher",
    "Publisher",
    "Tally",
    "WsPublisher",
    "at_rate",
    "bursts",
    "drain",
    "flat_out",
    "payload",
]

PUBLISH_LIMIT_SECONDS = 5.0
"""Default time one publish may take before it counts as failed, in seconds."""
_YIELD_SECONDS = 0.0005  # a flat-out publisher still lets the readers in the same loop run
_DRAIN_POLL_SECONDS = 0.01  # between two looks at the slowest reader while draining
_RETRY_PAUSE_SECONDS = 0.05  # after a failed publish, before the next try

#: Size of every published payload (the update's `data`), in bytes.
PAYLOAD_BYTES = 200


def payload(size: int = PAYLOAD_BYTES) -> bytes:
    """A JSON object of exactly `size` bytes whose first field is the publish time `bt`."""
    head = b'{"bt":' + repr(time.time()).encode() + b',"pad":"'
    return head + b"x" * (size - len(head) - 2) + b'"}'


class Publisher(Protocol):
    """One publishing connection."""

    async def open(self) -> None:
        """Connect."""

    async def publish(self, body: bytes) -> int | None:
        """Publish `body`; return its seq when acknowledged, None when refused."""

    async def close(self) -> None:
        """Disconnect."""


class HttpPublisher:
    """POSTs over one keep-alive HTTP/1.1 connection (raw, to keep the client cheap).

    Args:
        port: the server's port on 127.0.0.1.
        path: the publish path and query.
    """

    def __init__(self, port: int, path: str) -> None:
        self.port = port
        self.head = (
            f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            "Content-Type: application/json\r\nContent-Length: "
        ).encode()
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        #: HTTP status of every refused publish.
        self.refusals: list[int] = []

    async def open(self) -> None:
        self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)

    async def publish(self, body: bytes) -> int | None:
        assert self.reader is not None and self.writer is not None
        self.writer.write(self.head + str(len(body)).encode() + b"\r\n\r\n" + body)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        length = 0
        for line in head.split(b"\r\n"):
            if line[:15].lower() == b"content-length:":
                length = int(line[15:])
        answer = await self.reader.readexactly(length)
        if status != 200:
            self.refusals.append(status)
            return None
        return int(json.loads(answer)["seq"])

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None


class WsPublisher:
    """Sends each update as a text message on a WebSocket and reads its seq back.

    Args:
        port: the server's port on 127.0.0.1.
        path: the publisher WebSocket's path.
    """

    def __init__(self, port: int, path: str) -> None:
        self.url = f"ws://127.0.0.1:{port}{path}"
        self.ws: ClientConnection | None = None

    async def open(self) -> None:
        self.ws = await connect(self.url, compression=None)

    async def publish(self, body: bytes) -> int | None:
        assert self.ws is not None
        await self.ws.send(body.decode())
        return int(await self.ws.recv())

    async def close(self) -> None:
        if self.ws is not None:
            await self.ws.close()
            self.ws = None


@dataclass
class Tally:
    """What the publishers did in one phase.

    Attributes:
        sent: publishes attempted.
        acked: publishes acknowledged with a seq (each must reach every reader).
        refused: publishes the server refused (an HTTP error status).
        failed: publishes that errored or timed out (outcome unknown).
        late: fixed-rate publishes that started after their slot (every publisher busy).
        started: wall-clock time of the first publish.
        ended: wall-clock time the last publish returned.
    """

    sent: int = 0
    acked: int = 0
    refused: int = 0
    failed: int = 0
    late: int = 0
    started: float = 0.0
    ended: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        """The tally as plain JSON-ready values."""
        return asdict(self)


async def _one(pub: Publisher, tally: Tally, limit: float) -> None:
    tally.sent += 1
    try:
        seq = await asyncio.wait_for(pub.publish(payload()), limit)
    except (TimeoutError, OSError, asyncio.IncompleteReadError, ValueError):
        # The connection's state is unknown after a timeout: start a fresh one.
        tally.failed += 1
        await pub.close()
        try:
            await pub.open()
        except OSError:
            await asyncio.sleep(_RETRY_PAUSE_SECONDS)
        return
    if seq is None:
        tally.refused += 1
    else:
        tally.acked += 1


async def at_rate(
    pubs: Sequence[Publisher], rate: float, seconds: float, limit: float = PUBLISH_LIMIT_SECONDS
) -> Tally:
    """Publish `rate` updates per second for `seconds` (open loop), spread over `pubs`.

    Each publish may take `limit` seconds before it counts as failed.
    """
    tally = Tally(started=time.time())
    idle: asyncio.Queue[Publisher] = asyncio.Queue()
    for pub in pubs:
        idle.put_nowait(pub)

    async def run(pub: Publisher) -> None:
        try:
            await _one(pub, tally, limit)
        finally:
            idle.put_nowait(pub)

    start = time.monotonic()
    tasks = []
    for i in range(max(1, round(rate * seconds))):
        await asyncio.sleep(max(0.0, start + i / rate - time.monotonic()))
        if idle.empty():
            tally.late += 1
        tasks.append(asyncio.create_task(run(await idle.get())))
    await asyncio.gather(*tasks)
    tally.ended = time.time()
    return tally


async def flat_out(
    pubs: Sequence[Publisher],
    seconds: float,
    window: int,
    slowest: Callable[[], int],
    limit: float = PUBLISH_LIMIT_SECONDS,
) -> Tally:
    """Publish as fast as the slowest reader allows for `seconds` (closed loop).

    Args:
        pubs: publishing connections, each used by its own loop.
        seconds: how long to keep publishing.
        window: updates allowed in flight past the slowest reading subscriber.
        slowest: the update count of the slowest reading subscriber (this phase).
        limit: seconds one publish may take.
    """
    tally = Tally(started=time.time())
    deadline = time.monotonic() + seconds

    async def loop(pub: Publisher) -> None:
        while time.monotonic() < deadline:
            if tally.sent - slowest() >= window:
                await asyncio.sleep(_YIELD_SECONDS)
                continue
            await _one(pub, tally, limit)

    await asyncio.gather(*(loop(p) for p in pubs))
    tally.ended = time.time()
    return tally


async def bursts(
    groups: Sequence[Sequence[Publisher]],
    seconds: float,
    window: int,
    slowest: Callable[[], int],
    limit: float = PUBLISH_LIMIT_SECONDS,
) -> Tally:
    """Publish flat out in bursts for `seconds`: each group sends one update per member at once.

    Like a Redis producer that sends several updates together, every member of a group
    publishes at the same moment and the group waits for all of them before the next
    burst; each group stays within `window` updates past the slowest reader, as `flat_out`.
    """
    tally = Tally(started=time.time())
    deadline = time.monotonic() + seconds

    async def loop(group: Sequence[Publisher]) -> None:
        while time.monotonic() < deadline:
            if tally.sent + len(group) - slowest() > window:
                await asyncio.sleep(_YIELD_SECONDS)
                continue
            await asyncio.gather(*(_one(p, tally, limit) for p in group))

    await asyncio.gather(*(loop(g) for g in groups))
    tally.ended = time.time()
    return tally


async def drain(acked: int, slowest: Callable[[], int], limit: float) -> bool:
    """Wait until the slowest reader has `acked` updates; False when `limit` s ran out."""
    deadline = time.monotonic() + limit
    while slowest() < acked:
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(_DRAIN_POLL_SECONDS)
    return True
