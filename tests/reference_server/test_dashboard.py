"""The dashboard state: bounded in bytes, and answers that fit in one frame."""

from __future__ import annotations

import json
from typing import Any

import pytest

from reference_server.broker.base import BrokerStatus, Update, make_update
from reference_server.dashboard import DashboardState
from reference_server.errors import DataRequestError

pytestmark = pytest.mark.unit


def agent(state: DashboardState, agent_id: str, seq: int, pad: int = 0) -> int:
    """Feed one `agents` update; returns its frame's size in bytes."""
    data = {"agent_id": agent_id, "status": "busy", "note": "x" * pad}
    update = make_update("agents", "agent_update", data, seq=seq, correlation_id="c", wall=1.8e9)
    state.observe(update)
    return len(update.text.encode())


def listing(state: DashboardState, **params: Any) -> dict[str, Any]:
    status = BrokerStatus("memory", True)
    data, _ = state.answer(
        "agent_status",
        params,
        connections=0,
        subscribers={},
        broker=status,
        uptime_seconds=0.0,
        position=lambda sub: 0,
    )
    return data


def test_agent_state_is_bounded_in_bytes_forgetting_the_least_recently_updated() -> None:
    state = DashboardState(max_bytes=100_000)
    size = agent(state, "agent-0000", 1, pad=10_000)
    for n in range(1, 200):  # a publisher inventing an agent id per update
        agent(state, f"agent-{n:04}", n + 1, pad=10_000)
    # Full to within one agent of the bound, never past it.
    assert 100_000 - size < state.agent_bytes <= 100_000
    assert listing(state)["total"] == 100_000 // size
    with pytest.raises(DataRequestError, match="Unknown agent"):
        listing(state, agent_id="agent-0000")
    assert listing(state, agent_id="agent-0199")["agents"][0]["seq"] == 200


def test_an_update_of_a_known_agent_replaces_its_bytes() -> None:
    state = DashboardState()
    agent(state, "a", 1, pad=5_000)
    small = agent(state, "a", 2)
    assert state.agent_bytes == small
    assert listing(state)["total"] == 1


def test_one_agent_larger_than_the_bound_is_still_remembered() -> None:
    state = DashboardState(max_bytes=1_000)
    size = agent(state, "big", 1, pad=5_000)
    assert state.agent_bytes == size
    assert listing(state, agent_id="big")["count"] == 1


def test_a_long_listing_comes_in_pages_that_fit_the_answer_bound() -> None:
    state = DashboardState(answer_bytes=20_000)
    sizes = [agent(state, f"agent-{n:03}", n, pad=1_000) for n in range(1, 51)]
    seen: list[str] = []
    after = None
    for _ in range(50):  # bounded: 50 agents cannot take more pages than that
        page = listing(state, **({} if after is None else {"after": after}))
        assert sum(sizes[: page["count"]]) <= 20_000
        assert page["total"] == 50
        seen += [a["agent_id"] for a in page["agents"]]
        if not page["truncated"]:
            assert "next_after" not in page
            break
        after = page["next_after"]
    assert seen == [f"agent-{n:03}" for n in range(1, 51)]


def test_a_cursor_that_is_not_a_string_is_refused() -> None:
    with pytest.raises(DataRequestError, match=r"params\.after"):
        listing(DashboardState(), after=3)


# What a broker would say it delivered last, per subscription.
DELIVERED = {
    "agents": 8,
    "coordination": 100,
    "tasks": 3,
    "system": 0,
    "alerts": 0,
    "project_index": 9,
}


def answer(state: DashboardState, data_type: str) -> tuple[dict[str, Any], dict[str, int]]:
    status = BrokerStatus("redis", True)
    return state.answer(
        data_type,
        {},
        connections=1,
        subscribers={},
        broker=status,
        uptime_seconds=0.0,
        position=DELIVERED.__getitem__,
    )


def test_each_answer_carries_the_broker_positions_of_the_subscriptions_it_reflects() -> None:
    state = DashboardState()
    agent(state, "a", 7)
    agent(state, "b", 8)
    data, positions = answer(state, "agent_status")
    assert positions == {"agents": 8}
    assert [a["seq"] for a in data["agents"]] == [7, 8]
    metrics, every = answer(state, "coordination_metrics")
    assert every == metrics["latest_seq"] == DELIVERED  # every subscription
    assert answer(state, "system_health")[1] == {}
    with pytest.raises(DataRequestError, match="Unknown data type"):
        answer(state, "weather")


def test_a_hole_announced_by_the_broker_drops_the_state_it_made_unknowable() -> None:
    # Agents a and b are known up to seq 8; the broker then lost seqs 9-11 (Redis lost its
    # data, or this instance lagged behind the stream's trimming). b may have changed in
    # the hole: an answer must not show its old state at a position past the hole.
    state = DashboardState()
    agent(state, "a", 7)
    agent(state, "b", 8)
    body = {"type": "resync_required", "subscription": "agents", "last_seq": 8, "latest_seq": 11}
    hole = Update("agents", "resync_required", 11, {}, "n", 1.8e9, json.dumps(body))
    state.observe(hole)
    agent(state, "a", 12)
    data, _ = answer(state, "agent_status")
    assert [(a["agent_id"], a["seq"]) for a in data["agents"]] == [("a", 12)]
    assert state.agent_bytes == len(
        make_update(
            "agents",
            "agent_update",
            {"agent_id": "a", "status": "busy", "note": ""},
            seq=12,
            correlation_id="c",
            wall=1.8e9,
        ).text.encode()
    )
    assert state.latest_seq["agents"] == 12
    assert answer(state, "coordination_metrics")[0]["delivered"]["agents"] == 3  # not the notice
