"""The in-process broker: seq per subscription, delivery, bounded history."""

from __future__ import annotations

import asyncio
import json

import pytest

from reference_server.broker import MemoryBroker, Update
from tests.wsclient import check_server_frame

pytestmark = pytest.mark.unit


class Clock:
    def __init__(self) -> None:
        self.now = 1_795_000_000.0

    def __call__(self) -> float:
        return self.now


def run(coro):  # type: ignore[no-untyped-def]
    return asyncio.run(coro)


def test_seq_counts_per_subscription_and_every_update_is_delivered_once() -> None:
    got: list[Update] = []

    async def scenario() -> None:
        broker = MemoryBroker(history_max_messages=10, history_max_age_seconds=60, clock=Clock())
        await broker.start(got.append)
        for sub in ("agents", "tasks", "agents"):
            await broker.publish(sub, f"{sub[:-1]}_update", {"x": 1}, "cid")

    run(scenario())
    base = got[0].seq - 1
    assert base == int(Clock()() * 1_000_000)  # time-based, so a restart never reuses a seq
    assert [(u.subscription, u.seq - base) for u in got] == [
        ("agents", 1),
        ("tasks", 1),
        ("agents", 2),
    ]
    frame = json.loads(got[0].text)
    check_server_frame(frame)
    assert frame["correlation_id"] == "cid"


def test_history_is_bounded_by_count_and_age() -> None:
    clock = Clock()

    async def scenario() -> tuple[object, object]:
        broker = MemoryBroker(history_max_messages=3, history_max_age_seconds=10, clock=clock)
        for i in range(5):
            await broker.publish("agents", "agent_update", {"i": i}, "c")
            clock.now += 2
        by_count = await broker.history("agents", 0)
        clock.now += 5  # now the oldest retained is older than 10 s
        by_age = await broker.history("agents", 0)
        return by_count, by_age

    by_count, by_age = run(scenario())
    base = by_count.latest_seq - 5  # type: ignore[attr-defined]
    assert [u.seq - base for u in by_count.updates] == [3, 4, 5]  # type: ignore[attr-defined]
    assert by_count.oldest_seq - base == 3  # type: ignore[attr-defined]
    assert [u.seq - base for u in by_age.updates] == [4, 5]  # type: ignore[attr-defined]
    assert not by_age.covers(base + 2)  # type: ignore[attr-defined]
    assert by_age.covers(base + 3)  # type: ignore[attr-defined]


def test_position_is_the_last_seq_delivered_and_the_base_before_the_first() -> None:
    got: list[Update] = []

    async def scenario() -> None:
        broker = MemoryBroker(history_max_messages=10, history_max_age_seconds=60, clock=Clock())
        base = int(Clock()() * 1_000_000)
        assert broker.position("agents") == base  # a resume from it replays the first update
        await broker.start(got.append)
        update = await broker.publish("agents", "agent_update", {"x": 1}, "cid")
        assert broker.position("agents") == update.seq == got[-1].seq == base + 1
        assert broker.position("tasks") == base
        history = await broker.history("agents", base)
        assert history.covers(base) and history.updates == [update]

    run(scenario())
