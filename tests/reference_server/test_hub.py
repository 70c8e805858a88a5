"""Fan-out without sockets: real sessions and outboxes whose writers record what they get."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from reference_server.app import new_uuid
from reference_server.broker.base import Update, make_update
from reference_server.dashboard import DashboardState
from reference_server.flusher import Flusher
from reference_server.hub import Client, Hub
from reference_server.metrics import Metrics
from reference_server.outbox import Outbox
from reference_server.session import Session
from reference_server.settings import Settings
from reference_server.transport import FrameCache

pytestmark = pytest.mark.unit

WALL = 1_795_000_000.0


def sample(metrics: Metrics, name: str, **labels: str) -> float:
    value = metrics.registry.get_sample_value(name, labels)
    return 0.0 if value is None else value


def update(seq: int, subscription: str = "agents", text_data: str = "x") -> Update:
    return make_update(
        subscription,
        "agent_update",
        {"agent_id": "a-1", "note": text_data},
        seq=seq,
        correlation_id=f"c-{seq}",
        wall=WALL,
    )


class Recorder:
    """One client's wire: frames queued through the writer, frames written at once, cut-offs."""

    def __init__(self, *, room: bool = True) -> None:
        self.sent: list[str] = []
        self.written_now: list[str] = []
        self.writes = 0
        self.cut: list[str] = []
        self.room = room

    async def send(self, text: str) -> None:
        self.sent.append(text)

    async def close(self, code: int) -> None:
        pass

    def write_many(self, texts: list[str], cache: FrameCache) -> bool:
        if self.room:
            self.written_now.extend(texts)
            self.writes += 1
        return self.room


def client(
    metrics: Metrics,
    wire: Recorder,
    *,
    capacity: int = 8,
    fast: bool = True,
    flusher: Flusher | None = None,
) -> Client:
    session = Session("c", Settings(), lambda kind, params: {}, 0.0, new_id=new_uuid)
    outbox = Outbox(
        wire.send,
        wire.close,
        capacity=capacity,
        failure_threshold=3,
        metrics=metrics,
        on_failures=lambda: None,
        max_bytes=1 << 20,
        write_many=wire.write_many if fast else None,
        flusher=(flusher or Flusher(metrics)) if fast else None,
    )
    return Client(session, outbox, wire.cut.append)


def joined(hub: Hub, metrics: Metrics, wire: Recorder, *subs: str, **kw: Any) -> Client:
    """A client added to `hub` and subscribed to `subs`."""
    c = client(metrics, wire, **kw)
    hub.add(c)
    hub.change(c, set(subs), ())
    return c


def run(scenario: Callable[[], Awaitable[Any]]) -> Any:
    return asyncio.run(scenario())


def test_an_update_reaches_only_the_subscribers_of_its_subscription() -> None:
    async def scenario() -> None:
        metrics = Metrics()
        hub = Hub(metrics, DashboardState())
        agents, tasks = Recorder(), Recorder()
        a, t = client(metrics, agents), client(metrics, tasks)
        hub.add(a)
        hub.add(t)
        hub.change(a, {"agents"}, ())
        hub.change(t, {"tasks"}, ())
        hub.deliver(update(1))
        await asyncio.sleep(0)  # the end of the turn: the flush
        assert agents.written_now == [update(1).text]
        assert tasks.written_now == []
        assert hub.counts()["agents"] == 1
        assert sample(metrics, "leanvibe_ws_subscribers", subscription="agents") == 1

    run(scenario)


def test_a_connection_not_added_is_never_subscribed() -> None:
    async def scenario() -> None:
        metrics = Metrics()
        hub = Hub(metrics, DashboardState())
        wire = Recorder()
        c = client(metrics, wire)
        hub.change(c, {"agents"}, ())
        hub.deliver(update(1))
        await asyncio.sleep(0)
        assert wire.written_now == [] and wire.sent == []

    run(scenario)


def test_frames_flushed_together_are_counted_once_per_flush_in_utf8_bytes() -> None:
    async def scenario() -> None:
        metrics = Metrics()
        hub = Hub(metrics, DashboardState())
        flusher = Flusher(metrics)
        wires = [Recorder(), Recorder()]
        for wire in wires:
            joined(hub, metrics, wire, "agents", flusher=flusher)
        u = update(1, text_data="é€")
        hub.deliver(u)
        assert sample(metrics, "leanvibe_ws_messages_sent_total") == 0  # not written yet
        await asyncio.sleep(0)
        assert sample(metrics, "leanvibe_ws_messages_sent_total") == 2
        assert sample(metrics, "leanvibe_ws_bytes_sent_total") == 2 * len(u.text.encode())
        # Both writes' oldest frame is the same update: one latency observation.
        assert sample(metrics, "leanvibe_ws_publish_to_send_seconds_count") == 1

    run(scenario)


def test_updates_delivered_in_one_turn_cost_each_connection_one_write() -> None:
    async def scenario() -> None:
        metrics = Metrics()
        hub = Hub(metrics, DashboardState())
        flusher = Flusher(metrics)
        wires = [Recorder() for _ in range(3)]
        for wire in wires:
            joined(hub, metrics, wire, "agents", "tasks", flusher=flusher)
        sent = [update(1), update(1, "tasks"), update(2), update(3)]
        for u in sent:
            hub.deliver(u)  # as a batch read from Redis is handed over: one turn
        await asyncio.sleep(0)
        for wire in wires:
            assert wire.writes == 1
            assert wire.written_now == [u.text for u in sent]

    run(scenario)


def test_updates_are_queued_in_order_when_the_transport_has_no_room() -> None:
    async def scenario() -> None:
        metrics = Metrics()
        hub = Hub(metrics, DashboardState())
        wire = Recorder(room=False)
        joined(hub, metrics, wire, "agents")
        for seq in (1, 2, 3):
            hub.deliver(update(seq))
        for _ in range(10):
            await asyncio.sleep(0)
        assert wire.sent == [update(s).text for s in (1, 2, 3)]

    run(scenario)


def test_a_full_outbox_cuts_the_client_off_for_backpressure() -> None:
    async def scenario() -> None:
        metrics = Metrics()
        hub = Hub(metrics, DashboardState())
        wire = Recorder()
        c = joined(hub, metrics, wire, "agents", capacity=2, fast=False)
        for seq in (1, 2, 3):
            hub.deliver(update(seq))
        assert wire.cut == ["backpressure"]
        assert [text for text, _, _ in c.outbox.queue] == [update(1).text, update(2).text]

    run(scenario)


def test_updates_are_held_while_a_resume_fetches_history() -> None:
    metrics = Metrics()
    hub = Hub(metrics, DashboardState())
    wire = Recorder()
    c = joined(hub, metrics, wire, "agents")
    c.resuming = {"agents": []}
    hub.deliver(update(7))
    assert c.resuming["agents"] == [update(7)]
    assert wire.written_now == []


def test_updates_held_for_a_resume_are_bounded_in_bytes_by_the_outbox_bound() -> None:
    async def scenario() -> None:
        metrics = Metrics()
        hub = Hub(metrics, DashboardState())
        wire = Recorder()
        c = joined(hub, metrics, wire, "agents")
        c.resuming = {"agents": []}
        big = [update(n, text_data="x" * 300_000) for n in range(1, 5)]
        for u in big[:3]:
            hub.deliver(u)
        assert wire.cut == [] and c.held_bytes == sum(len(u.text.encode()) for u in big[:3])
        hub.deliver(big[3])  # past 1 MiB held: cut off as a full outbox would be
        assert wire.cut == ["backpressure"]
        assert c.release("agents") == big
        assert (c.held_bytes, c.release("agents")) == (0, None)

    run(scenario)


def test_remove_forgets_every_subscription_and_pending_resume() -> None:
    metrics = Metrics()
    hub = Hub(metrics, DashboardState())
    wire = Recorder()
    c = joined(hub, metrics, wire, "agents", "tasks")
    c.resuming = {"tasks": []}
    hub.remove(c)
    hub.deliver(update(1))
    assert wire.written_now == []
    assert c.resuming == {}
    assert hub.counts() == dict.fromkeys(hub.counts(), 0)
    assert sample(metrics, "leanvibe_ws_active_connections") == 0


def test_every_delivered_update_is_observed_by_the_dashboard_state() -> None:
    state = DashboardState()
    hub = Hub(Metrics(), state)
    hub.deliver(update(4))
    assert state.latest_seq["agents"] == 4
    assert state.delivered["agents"] == 1
