"""Acknowledging a publish only when every live instance has read it."""

from __future__ import annotations

import asyncio

import pytest

from reference_server.broker.acks import Acks, format_progress, parse_progress
from reference_server.errors import BrokerUnavailable

pytestmark = pytest.mark.unit


def test_a_publish_waits_for_every_live_instance() -> None:
    async def scenario() -> list[str]:
        acks = Acks("a")
        acks.set_live(["a", "b"])
        done = acks.wait("agents", 3)
        steps = []
        acks.record("a", {"agents": 3})
        steps.append(f"a read: {done.done()}")
        acks.record("b", {"agents": 2, "tasks": 9})
        steps.append(f"b at 2: {done.done()}")
        acks.record("b", {"agents": 4})
        steps.append(f"b at 4: {done.done()}")
        return steps

    assert asyncio.run(scenario()) == ["a read: False", "b at 2: False", "b at 4: True"]


def test_an_instance_that_stops_heartbeating_is_no_longer_waited_for() -> None:
    async def scenario() -> bool:
        acks = Acks("a")
        acks.set_live(["a", "b", "c"])
        acks.record("a", {"agents": 1})
        acks.record("b", {"agents": 1})
        done = acks.wait("agents", 1)
        before = done.done()
        acks.set_live(["a", "b"])  # c missed its heartbeats
        return not before and done.done()

    assert asyncio.run(scenario())


def test_an_instance_heard_from_is_waited_for_before_its_first_heartbeat_is_seen() -> None:
    async def scenario() -> tuple[bool, bool]:
        acks = Acks("a")
        acks.set_live(["a"])
        acks.record("new", {"agents": 0})  # it announces where it starts reading
        acks.record("a", {"agents": 1})
        done = acks.wait("agents", 1)
        before = done.done()
        acks.record("new", {"agents": 1})
        return before, done.done()

    assert asyncio.run(scenario()) == (False, True)


def test_positions_already_reached_confirm_at_once_and_failure_reaches_every_waiter() -> None:
    async def scenario() -> tuple[bool, str]:
        acks = Acks("a")
        acks.record("a", {"alerts": 5})
        early = acks.wait("alerts", 4).done()
        pending = acks.wait("alerts", 6)
        acks.fail(BrokerUnavailable("link lost", 1.0))
        with pytest.raises(BrokerUnavailable) as caught:
            await pending
        assert acks.wait("alerts", 4).done() is False  # positions went with the link
        return early, str(caught.value)

    assert asyncio.run(scenario()) == (True, "link lost")


def test_progress_notes_round_trip_and_junk_is_refused() -> None:
    note = format_progress("i1", {"agents": 3, "system": 12})
    assert parse_progress(note) == ("i1", {"agents": 3, "system": 12})
    for junk in ("", "i1 agents=x", "i1 bogus=3", "i1 agents"):
        with pytest.raises(ValueError):
            parse_progress(junk)
