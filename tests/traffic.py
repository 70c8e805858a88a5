"""Clients and a publisher that record everything, for the chaos and failover runs.

`Subscriber`s stay connected to a reference server (hopping to another instance or
reconnecting after a close, resuming from the last seq they saw) and check the order of every
frame as it arrives; `publish` POSTs an update every `every` seconds to the instances in turn
and tallies what was acknowledged and what was refused. The tests then compare the two.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import httpx
from websockets.asyncio.client import ClientConnection, connect

from tests.procs import ServerProcess
from tests.wsclient import check_server_frame

__all__ = [
    "CLOSE_GOING_AWAY",
    "Subscriber",
    "Tally",
    "all_healthy",
    "health",
    "publish",
    "read_until_told",
    "recovered",
    "subscribe",
    "wait_for",
    "wind_down",
]

_REASON_WORDS = 5
CLOSE_GOING_AWAY = 1001
"""RFC 6455 §7.4.1: the close code of a server going down (SIGTERM)."""


@dataclass
class Subscriber:
    """A WebSocket client on `agents`, checking order as frames arrive."""

    name: str
    instance: int
    hops: bool = False
    #: Move to the next instance when the server shuts down (close 1001), as the PWA does.
    follows_shutdown: bool = False
    #: How many times it moved because its instance shut down.
    moves: int = 0
    #: (monotonic arrival time, instance index) of every update received.
    arrivals: list[tuple[float, int]] = field(default_factory=list)
    ids: list[int] = field(default_factory=list)
    resyncs: int = 0
    last_seq: int | None = None
    problems: list[str] = field(default_factory=list)
    hop: asyncio.Event = field(default_factory=asyncio.Event)

    def take(self, frame: dict[str, Any]) -> None:
        if frame["type"] == "resync_required":
            # What the history still holds (oldest_seq on) is replayed, then live ones follow.
            self.resyncs += 1
            self.last_seq = frame["oldest_seq"] - 1
        elif frame["type"] == "agent_update":
            seq = frame["seq"]
            if self.last_seq is not None and seq != self.last_seq + 1:
                self.problems.append(f"seq {seq} after {self.last_seq} with no resync_required")
            self.last_seq = seq
            self.ids.append(frame["data"]["id"])
            self.arrivals.append((time.monotonic(), self.instance))


@dataclass
class Tally:
    """What the publisher saw."""

    acked: set[int] = field(default_factory=set)
    refused: set[int] = field(default_factory=set)
    errors: list[str] = field(default_factory=list)
    #: Publishes that got no answer (the instance went down under them): not acknowledged.
    unanswered: set[int] = field(default_factory=set)
    #: Refusals by the first words of their `detail` (which of the broker's reasons).
    reasons: Counter[str] = field(default_factory=Counter)


async def subscribe(sub: Subscriber, servers: list[ServerProcess], stop: asyncio.Event) -> None:
    """Stay connected (hopping to the next instance when asked), feeding frames to `sub`."""
    while not stop.is_set():
        url = servers[sub.instance].ws + "?subscriptions=agents"
        if sub.last_seq is not None:
            url += f"&resume=agents:{sub.last_seq}"
        async with connect(url, open_timeout=10) as ws:
            await read_until_told(ws, sub, stop)
        if sub.hop.is_set():
            sub.hop.clear()
            sub.instance = (sub.instance + 1) % len(servers)
            if sub.hops:
                await asyncio.sleep(0.2)  # a short disconnect, like a phone changing networks


async def read_until_told(ws: ClientConnection, sub: Subscriber, stop: asyncio.Event) -> None:
    """Read every frame until the connection closes; close it when told to hop or stop.

    Reading goes on while closing: websockets stops reading the socket when 16 messages
    wait unread, so a client that stopped reading first would never see the server's close
    frame behind a burst of updates (and would wait out its 10 s close timeout).
    """

    told: list[bool] = []

    async def close_when_told() -> None:
        waits = [asyncio.create_task(stop.wait()), asyncio.create_task(sub.hop.wait())]
        _, pending = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        for task in pending:
            task.cancel()
        told.append(True)
        await ws.close()

    closer = asyncio.create_task(close_when_told())
    try:
        async for raw in ws:
            frame = json.loads(raw)
            check_server_frame(frame)
            sub.take(frame)
    finally:
        if not told and sub.follows_shutdown and ws.close_code == CLOSE_GOING_AWAY:
            sub.moves += 1
            sub.hop.set()  # `subscribe` moves on to the next instance, resuming
            closer.cancel()
        elif not told:
            sub.problems.append(f"the server closed the connection: {ws.close_code}")
            closer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await closer


async def publish(
    http: httpx.AsyncClient,
    servers: list[ServerProcess],
    tally: Tally,
    stop: asyncio.Event,
    every: float,
    *,
    instances_stop: bool = False,
) -> None:
    """POST an update every `every` seconds, to the instances in turn.

    With `instances_stop`, a publish whose instance went away under it (no answer) is
    tallied `unanswered` rather than as an error.
    """
    pending: set[asyncio.Task[None]] = set()

    async def one(ident: int, server: ServerProcess) -> None:
        url = server.http + "/api/dashboard/websocket/broadcast?subscription=agents"
        try:
            reply = await http.post(url, json={"id": ident})
        except httpx.TransportError as exc:
            if instances_stop:
                tally.unanswered.add(ident)
            else:
                tally.errors.append(f"#{ident}: {type(exc).__name__}")
            return
        if reply.status_code == 200:
            tally.acked.add(ident)
        elif reply.status_code == 503 and int(reply.headers["retry-after"]) >= 1:
            tally.refused.add(ident)
            tally.reasons[" ".join(reply.json()["detail"].split()[:_REASON_WORDS])] += 1
        else:
            tally.errors.append(f"#{ident}: HTTP {reply.status_code} {reply.text[:200]}")

    for ident in itertools.count():
        if stop.is_set():
            break
        task = asyncio.create_task(one(ident, servers[ident % len(servers)]))
        pending.add(task)
        task.add_done_callback(pending.discard)
        await asyncio.sleep(every)
    await asyncio.gather(*pending)


async def health(http: httpx.AsyncClient, servers: list[ServerProcess]) -> list[str]:
    replies = await asyncio.gather(*(http.get(s.http + "/health") for s in servers))
    return [r.json()["status"] for r in replies]


async def all_healthy(http: httpx.AsyncClient, servers: list[ServerProcess]) -> bool:
    return all(state == "healthy" for state in await health(http, servers))


async def wait_for(check: Any, within: float, what: str) -> None:
    deadline = time.monotonic() + within
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not happen within {within} s")
        await asyncio.sleep(0.05)


def recovered(subs: list[Subscriber], back: float) -> dict[int, float]:
    """Per instance: seconds from `back` to the first update one of its clients received."""
    first: dict[int, float] = {}
    for sub in subs:
        for at, instance in sub.arrivals:
            if at >= back:
                first[instance] = min(first.get(instance, at), at)
                break
    return {i: at - back for i, at in first.items()}


async def wind_down(
    subs: list[Subscriber],
    tally: Tally,
    publisher: asyncio.Task[Any],
    readers: list[asyncio.Task[Any]],
    stop_publisher: asyncio.Event,
    stop_clients: asyncio.Event,
) -> None:
    """End a run: 1 s more of steady traffic, stop publishing, give every acknowledged update
    up to 10 s to reach every subscriber (what is still missing is for the test to report),
    then stop the subscribers."""
    await asyncio.sleep(1.0)
    stop_publisher.set()
    await publisher

    async def drained() -> bool:
        return all(tally.acked <= set(s.ids) for s in subs)

    with contextlib.suppress(AssertionError):
        await wait_for(drained, 10, "delivery of every acknowledged update")
    stop_clients.set()
    await asyncio.gather(*readers)
