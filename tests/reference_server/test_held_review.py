"""Review of the held fan-out (issue 13, `Hub._due` written straight at the flush).

Each test here is a defect found in review (all fixed).
"""

from __future__ import annotations

import asyncio
import statistics
import threading
import time
from typing import Any

import httpx
import pytest
import uvloop

from reference_server.flusher import Flusher
from reference_server.metrics import Metrics
from tests.reference_server.test_hub import update
from tests.reference_server.test_hub_held import World, run
from tests.wsclient import Client

_LATENCY = "leanvibe_ws_publish_to_send_seconds_count"


def _latencies(metrics: Metrics) -> float:
    return metrics.registry.get_sample_value(_LATENCY) or 0.0


@pytest.mark.unit
def test_publish_to_send_is_not_observed_for_held_frames_that_were_not_written() -> None:
    async def scenario() -> None:
        w = World()
        stuck = asyncio.Event()
        c, wire = w.join("agents")
        wire.buffered = 10  # the transport has bytes waiting: no straight write, no write_many

        async def never(text: str) -> None:  # the reader is stalled: the send never ends
            await stuck.wait()

        c.outbox._send = never
        w.hub.deliver(update(1))
        for _ in range(3):
            await asyncio.sleep(0)
        assert wire.received == []  # nothing reached the socket
        assert c.outbox.send_started  # the writer task is waiting on the stalled send
        assert _latencies(w.metrics) == 0, "publish_to_send observed for a frame not sent"
        stuck.set()
        for _ in range(3):
            await asyncio.sleep(0)

    run(scenario)


@pytest.mark.unit
def test_publish_to_send_is_not_observed_when_every_subscriber_is_closing() -> None:
    async def scenario() -> None:
        w = World()
        c, wire = w.join("agents")
        c.outbox.closing = True  # e.g. its close is queued; it is still routed until removed
        w.hub.deliver(update(1))
        await asyncio.sleep(0)
        assert wire.writes == []
        assert w.sample("leanvibe_ws_messages_sent_total") == 0
        assert _latencies(w.metrics) == 0, "publish_to_send observed with nothing sent"

    run(scenario)


class _Box:
    """An outbox as the flusher sees it: records when it was flushed."""

    def __init__(self) -> None:
        self.flushed: list[float] = []

    def flush(self, cache: Any) -> tuple[int, int, float]:
        self.flushed.append(time.monotonic())
        return 0, 0, 0.0


@pytest.mark.unit
def test_a_reply_is_not_held_by_the_window_under_uvloop() -> None:
    async def scenario() -> float | None:
        flusher = Flusher(Metrics(), window_seconds=0.5)
        box = _Box()
        for _ in range(3):  # a sustained rate: the next flush is held by the window
            flusher.touch(box)
            while flusher._handle is not None:  # noqa: ASYNC110
                await asyncio.sleep(0.001)
        flusher.touch(box)  # an update: held for the window
        asked = time.monotonic()
        flusher.touch(box, reply=True)  # a reply: must leave at the end of this turn
        for _ in range(3):
            await asyncio.sleep(0)
        return box.flushed[-1] - asked if box.flushed[-1] >= asked else None

    waited = uvloop.run(scenario())
    assert waited is not None, "the reply was held by the window (not flushed this turn)"


@pytest.mark.integration
def test_a_pong_is_not_held_by_the_window_on_a_real_server(server_factory: Any) -> None:
    window = 0.5
    srv = server_factory({"WS_WRITE_COALESCE_WINDOW_SECONDS": str(window)})
    stop = threading.Event()

    def publish() -> None:  # about 50 updates/s on tasks: the window holds every flush
        with httpx.Client(base_url=srv.http, timeout=10) as http:
            while not stop.is_set():
                http.post(
                    "/api/dashboard/websocket/broadcast",
                    params={"subscription": "tasks"},
                    json={"n": 1},
                ).raise_for_status()
                time.sleep(0.02)

    publisher = threading.Thread(target=publish)
    with (
        Client(srv.ws + "?subscriptions=tasks") as reader,
        Client(srv.ws + "?subscriptions=agents") as c,
    ):
        assert reader.recv()["type"] == "connection_established"
        assert c.recv()["type"] == "connection_established"
        publisher.start()
        try:
            time.sleep(1.0)
            rtts = []
            for _ in range(8):
                asked = time.monotonic()
                assert c.request({"type": "ping"})["type"] == "pong"
                rtts.append(time.monotonic() - asked)
                time.sleep(0.037)
        finally:
            stop.set()
            publisher.join()
    assert statistics.median(rtts) < window / 3, [round(r, 3) for r in rtts]


_ADMIN = "review13-admin-token-0123456789"


@pytest.mark.integration
def test_the_listing_counts_updates_held_for_the_flush_as_backlog(server_factory: Any) -> None:
    srv = server_factory({"WS_WRITE_DELAY_SECONDS": "1", "WS_ADMIN_TOKEN": _ADMIN})
    admin = {"Authorization": f"Bearer {_ADMIN}"}
    with (
        httpx.Client(base_url=srv.http, timeout=10, headers=admin) as http,
        Client(srv.ws + "?subscriptions=agents") as c,
    ):
        assert c.recv()["type"] == "connection_established"
        started = time.monotonic()
        for i in range(3):
            http.post(
                "/api/dashboard/websocket/broadcast",
                params={"subscription": "agents"},
                json={"n": i, "pad": "b" * 1000},
            ).raise_for_status()
        page = http.get("/api/dashboard/websocket/connections").json()
        looked_within = time.monotonic() - started
        got = [c.recv(timeout=5) for _ in range(3)]  # they do arrive, after the delay
        assert [f["type"] for f in got] == ["agent_update"] * 3
    assert looked_within < 0.8, f"the machine was too slow ({looked_within:.2f} s) to test this"
    entry = page["connections"][0]
    # Three frames of about 1 KB wait for this client: without the hub's holding they were
    # in its queue and listed.
    assert entry["backlog_frames"] == 3, entry
    assert entry["backlog_bytes"] >= 3_000, entry
