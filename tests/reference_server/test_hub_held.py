"""Fan-out held once per turn and written straight to idle subscribers, without sockets.

The wires here decode what they are given with their own RFC 6455 reader (`texts_of`), not
with the server's frame builder, so a wrong byte in the shared frame shows.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from reference_server.app import new_uuid
from reference_server.dashboard import DashboardState
from reference_server.flusher import Flusher
from reference_server.hub import Client, Hub
from reference_server.metrics import Metrics
from reference_server.outbox import Outbox
from reference_server.session import Session
from reference_server.settings import Settings
from reference_server.transport import FrameCache
from tests.reference_server.test_hub import update

pytestmark = pytest.mark.unit


def texts_of(data: bytes) -> list[str]:
    """The payloads of unmasked, unfragmented text frames in a row (RFC 6455 §5.2)."""
    out: list[str] = []
    i = 0
    while i < len(data):
        assert data[i] == 0x81, f"not a final text frame at {i}: {data[i]:#x}"
        length = data[i + 1]
        assert not length & 0x80, "a server frame must not be masked"
        i += 2
        if length == 126:
            length = int.from_bytes(data[i : i + 2], "big")
            i += 2
        elif length == 127:
            length = int.from_bytes(data[i : i + 8], "big")
            i += 8
        out.append(data[i : i + length].decode("utf-8"))
        i += length
    return out


class Wire:
    """One client's socket: straight writes (decoded), queued writes, what is buffered."""

    def __init__(self, *, direct: bool = True) -> None:
        self.writes: list[list[str]] = []
        self.direct = direct
        self.buffered = 0
        self.cut: list[str] = []
        self.straight = 0

    async def send(self, text: str) -> None:
        self.writes.append([text])

    async def close(self, code: int) -> None:
        self.writes.append([f"close {code}"])

    def write_many(self, texts: list[str], cache: FrameCache) -> bool:
        if self.buffered:
            return False
        self.writes.append(list(texts))
        return True

    def write_direct(self, data: bytes) -> bool:
        if not self.direct or self.buffered:
            return False
        self.writes.append(texts_of(data))
        self.straight += 1
        return True

    @property
    def received(self) -> list[str]:
        return [text for write in self.writes for text in write]


def client(metrics: Metrics, wire: Wire, flusher: Flusher, *, max_bytes: int = 1 << 20) -> Client:
    session = Session("c", Settings(), lambda kind, params: {}, 0.0, new_id=new_uuid)
    outbox = Outbox(
        wire.send,
        wire.close,
        capacity=8,
        failure_threshold=3,
        metrics=metrics,
        on_failures=lambda: None,
        max_bytes=max_bytes,
        write_many=wire.write_many,
        flusher=flusher,
        buffered=lambda: wire.buffered,
        write_direct=wire.write_direct,
    )
    return Client(session, outbox, wire.cut.append)


class World:
    """A hub with its flusher and some subscribed wires."""

    def __init__(self) -> None:
        self.metrics = Metrics()
        self.flusher = Flusher(self.metrics)
        self.hub = Hub(self.metrics, DashboardState(), self.flusher)

    def join(self, *subs: str, **kw: Any) -> tuple[Client, Wire]:
        wire = Wire(direct=kw.pop("direct", True))
        c = client(self.metrics, wire, self.flusher, **kw)
        self.hub.add(c)
        self.hub.change(c, set(subs), ())
        return c, wire

    def sample(self, name: str) -> float:
        return self.metrics.registry.get_sample_value(name) or 0.0


def run(scenario: Callable[[], Awaitable[Any]]) -> Any:
    return asyncio.run(scenario())


def test_one_update_is_written_straight_to_every_idle_subscriber_once() -> None:
    async def scenario() -> None:
        w = World()
        pairs = [w.join("agents") for _ in range(3)]
        other = w.join("tasks")
        w.hub.deliver(update(1))
        assert w.hub.due and all(not wire.writes for _, wire in pairs)  # held to turn's end
        await asyncio.sleep(0)
        for c, wire in pairs:
            assert wire.writes == [[update(1).text]]
            assert not c.outbox.queue and c.outbox.queued_bytes == 0
        assert other[1].writes == []
        assert w.sample("leanvibe_ws_messages_sent_total") == 3
        assert w.sample("leanvibe_ws_bytes_sent_total") == 3 * len(update(1).text.encode())
        assert not w.hub.due

    run(scenario)


def test_updates_of_one_turn_leave_in_one_write_in_publish_order() -> None:
    async def scenario() -> None:
        w = World()
        _, wire = w.join("agents")
        sent = [update(n, text_data="é€" * n) for n in range(1, 6)]
        for u in sent:
            w.hub.deliver(u)
        await asyncio.sleep(0)
        assert wire.writes == [[u.text for u in sent]]

    run(scenario)


def test_a_turn_mixing_subscriptions_keeps_publish_order_in_one_write() -> None:
    async def scenario() -> None:
        w = World()
        _, both = w.join("agents", "tasks")
        _, agents = w.join("agents")
        sent = [update(1), update(1, "tasks"), update(2), update(3), update(2, "tasks")]
        for u in sent:
            w.hub.deliver(u)
        await asyncio.sleep(0)
        assert both.writes == [[u.text for u in sent]]
        assert agents.writes == [[u.text for u in sent if u.subscription == "agents"]]

    run(scenario)


def test_a_reply_after_a_held_update_follows_it() -> None:
    async def scenario() -> None:
        w = World()
        c, wire = w.join("agents")
        w.hub.deliver(update(1))
        assert c.outbox.put('{"type":"pong"}')
        w.hub.deliver(update(2))
        await asyncio.sleep(0)
        assert wire.received == [update(1).text, '{"type":"pong"}', update(2).text]
        assert len(wire.writes) == 1

    run(scenario)


def test_a_subscriber_joining_in_the_turn_gets_only_what_is_published_after() -> None:
    async def scenario() -> None:
        w = World()
        _, early = w.join("agents")
        w.hub.deliver(update(1))
        late, late_wire = w.join("agents")
        w.hub.deliver(update(2))
        await asyncio.sleep(0)
        assert early.received == [update(1).text, update(2).text]
        assert late_wire.received == [update(2).text]
        assert late.outbox.queued_bytes == 0

    run(scenario)


def test_a_subscriber_leaving_in_the_turn_still_gets_what_was_published_before() -> None:
    async def scenario() -> None:
        w = World()
        c, wire = w.join("agents")
        w.hub.deliver(update(1))
        w.hub.change(c, (), {"agents"})
        w.hub.deliver(update(2))
        await asyncio.sleep(0)
        assert wire.received == [update(1).text]

    run(scenario)


def test_a_resume_started_in_the_turn_holds_only_later_updates() -> None:
    async def scenario() -> None:
        w = World()
        c, wire = w.join("agents")
        w.hub.deliver(update(1))
        w.hub.hold(c, ["agents"])  # update 1 precedes the resume's position: it is sent
        w.hub.deliver(update(2))
        await asyncio.sleep(0)
        assert wire.received == [update(1).text]
        assert w.hub.release(c, "agents") == [update(2)]

    run(scenario)


def test_a_resume_released_in_the_turn_gets_the_held_update_with_the_others() -> None:
    async def scenario() -> None:
        w = World()
        c, wire = w.join("agents")
        w.hub.hold(c, ["agents"])
        w.hub.deliver(update(1))
        await asyncio.sleep(0)
        w.hub.deliver(update(2))  # held for the flush when the replay is built
        assert w.hub.release(c, "agents") == [update(1), update(2)]
        await asyncio.sleep(0)
        assert wire.received == []  # the replay (not modelled here) carries them

    run(scenario)


def test_a_busy_outbox_gets_the_frames_queued_behind_what_it_holds() -> None:
    async def scenario() -> None:
        w = World()
        c, wire = w.join("agents")
        _, idle = w.join("agents")
        wire.buffered = 10  # the transport has bytes waiting: no straight write
        w.hub.deliver(update(1))
        w.hub.deliver(update(2))
        await asyncio.sleep(0)
        assert idle.writes == [[update(1).text, update(2).text]]
        assert [t for t, _, _ in c.outbox.queue] == [update(1).text, update(2).text]
        wire.buffered = 0
        for _ in range(5):
            await asyncio.sleep(0)
        assert wire.received == [update(1).text, update(2).text]

    run(scenario)


def test_a_subscriber_without_straight_writes_gets_them_through_its_queue() -> None:
    async def scenario() -> None:
        w = World()
        _, deflate = w.join("agents", direct=False)  # e.g. permessage-deflate
        w.hub.deliver(update(1))
        w.hub.deliver(update(2))
        await asyncio.sleep(0)
        assert deflate.writes == [[update(1).text, update(2).text]]

    run(scenario)


def test_held_updates_that_pass_a_stalled_subscribers_bound_cut_it_off_alone() -> None:
    async def scenario() -> None:
        w = World()
        big = [update(n, text_data="x" * 4_000) for n in range(1, 4)]
        stalled, wire = w.join("agents", max_bytes=10_000)
        _, reader = w.join("agents", max_bytes=10_000)
        wire.buffered = 6_000  # not read for a while
        for u in big:
            w.hub.deliver(u)
        await asyncio.sleep(0)
        assert wire.cut == ["backpressure"] and reader.cut == []
        # 12 KB of frames against a 10 KB bound: through the queue, written before passing it.
        assert reader.received == [u.text for u in big]
        assert stalled.outbox.queued_bytes <= 10_000

    run(scenario)


def test_room_and_close_count_updates_held_for_the_flush() -> None:
    async def scenario() -> None:
        w = World()
        c, wire = w.join("agents")
        w.hub.deliver(update(1))
        spare_bytes, _ = c.outbox.room()  # the held update is written first, then measured
        assert spare_bytes == c.outbox.max_bytes
        assert wire.received == [update(1).text]
        w.hub.deliver(update(2))
        c.outbox.close_after('{"type":"disconnect_notice"}', 1001, discard_pending=False)
        for _ in range(5):
            await asyncio.sleep(0)
        assert wire.received == [
            update(1).text,
            update(2).text,
            '{"type":"disconnect_notice"}',
            "close 1001",
        ]

    run(scenario)


def test_a_removed_client_that_is_closing_is_not_written_to() -> None:
    async def scenario() -> None:
        w = World()
        c, wire = w.join("agents")
        w.hub.deliver(update(1))
        c.outbox.closing = True  # the socket ended
        w.hub.remove(c)
        await asyncio.sleep(0)
        assert wire.writes == []
        assert not w.hub.due

    run(scenario)


def test_an_update_with_no_utf8_form_is_refused_before_it_is_held() -> None:
    async def scenario() -> None:
        w = World()
        _, wire = w.join("agents")
        bad = dataclasses.replace(update(1), text='{"note":"\ud800"}')  # a lone surrogate
        with pytest.raises(UnicodeEncodeError):
            w.hub.deliver(bad)  # (publishes refuse it earlier: messages.parse_publish)
        assert not w.hub.due
        w.hub.deliver(update(2))
        await asyncio.sleep(0)
        assert wire.writes == [[update(2).text]]

    run(scenario)


class _Failing:
    due = True

    def settle(self, outbox: object) -> None:
        pass  # a put asks first; there is nothing to queue

    def write_due(self, cache: FrameCache) -> tuple[int, int, float]:
        raise RuntimeError("a bug in the hub")


def test_outboxes_waiting_for_a_flush_are_flushed_even_when_the_hub_fails() -> None:
    async def scenario() -> None:
        w = World()
        c, wire = w.join("agents")
        w.flusher.broadcasts = _Failing()
        assert c.outbox.put('{"type":"pong"}')
        with pytest.raises(RuntimeError):
            w.flusher.flush()
        assert wire.writes == [['{"type":"pong"}']]
        w.flusher.broadcasts = None
        assert c.outbox.put('{"type":"pong"}')
        await asyncio.sleep(0)  # a later flush is scheduled as usual
        assert len(wire.writes) == 2

    run(scenario)


def test_a_reply_queues_the_held_updates_for_its_own_client_only() -> None:
    async def scenario() -> None:
        w = World()
        c, asking = w.join("agents")
        quiet = [w.join("agents")[1] for _ in range(3)]
        w.hub.deliver(update(1))
        assert c.outbox.put('{"type":"pong"}')
        w.hub.deliver(update(2))
        await asyncio.sleep(0)
        assert asking.writes == [[update(1).text, '{"type":"pong"}', update(2).text]]
        assert asking.straight == 0
        for wire in quiet:  # still one straight write of both updates each
            assert wire.writes == [[update(1).text, update(2).text]] and wire.straight == 1

    run(scenario)


def test_the_backlog_of_a_client_counts_the_updates_held_for_it() -> None:
    async def scenario() -> None:
        w = World()
        c, _ = w.join("agents")
        other, _ = w.join("tasks")
        w.hub.deliver(update(1))
        w.hub.deliver(update(2, text_data="é"))
        sizes = [len(update(n, text_data=t).text.encode()) for n, t in ((1, "x"), (2, "é"))]
        assert w.hub.held(c) == (2, sum(sizes))
        assert w.hub.held(other) == (0, 0)
        assert c.outbox.put('{"type":"pong"}')  # its share is now in its queue
        assert w.hub.held(c) == (0, 0) and len(c.outbox.queue) == 3
        await asyncio.sleep(0)
        assert w.hub.held(c) == (0, 0)

    run(scenario)
