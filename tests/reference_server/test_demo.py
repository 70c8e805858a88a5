"""The demo producer's stream is realistic, repeatable, and valid protocol."""

from __future__ import annotations

import json
import random

import pytest

from reference_server.broker.base import BrokerStatus, make_update
from reference_server.dashboard import DashboardState
from reference_server.demo import DemoFeed
from tests.wsclient import check_server_frame

pytestmark = pytest.mark.unit


def test_the_same_seed_gives_the_same_stream() -> None:
    a, b = DemoFeed(random.Random(7)), DemoFeed(random.Random(7))
    assert [a.next() for _ in range(50)] == [b.next() for _ in range(50)]


def test_every_demo_update_is_a_valid_frame_and_feeds_request_data() -> None:
    feed = DemoFeed(random.Random(1))
    state = DashboardState()
    seen = set()
    for seq in range(1, 501):
        sub, kind, data = feed.next()
        update = make_update(sub, kind, data, seq=seq, correlation_id="demo", wall=1.8e9)
        check_server_frame(json.loads(update.text))
        state.observe(update)
        seen.add(kind)
    assert {"agent_update", "task_update", "coordination_update", "system_update"} <= seen
    assert "critical_alert" in seen
    status = BrokerStatus("memory", True)
    agents, positions = state.answer(
        "agent_status",
        {},
        connections=0,
        subscribers={},
        broker=status,
        uptime_seconds=1.0,
        position=lambda sub: 500,
    )
    assert positions == {"agents": 500}
    assert agents["count"] == 5
    assert all(a["agent_id"].startswith("agent-") for a in agents["agents"])


def test_agent_status_refuses_a_non_string_agent_id() -> None:
    from reference_server.errors import DataRequestError

    with pytest.raises(DataRequestError, match="agent_id"):
        DashboardState().answer(
            "agent_status",
            {"agent_id": ["x"]},
            connections=0,
            subscribers={},
            broker=BrokerStatus("memory", True),
            uptime_seconds=0.0,
            position=lambda sub: 0,
        )
