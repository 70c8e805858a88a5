"""The demo producer: realistic agent, task, coordination, system and alert updates.

Opt-in (`WS_DEMO=true`, or `--demo`). `DemoFeed` is pure: it turns a seeded random source
into a plausible stream of a small multi-agent platform at work. `run_demo` publishes that
stream through the broker like any other producer, so what a demo shows is what the
protocol really carries.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Mapping
from typing import Any

from .broker.base import Broker
from .errors import BrokerUnavailable

__all__ = ["DemoFeed", "run_demo"]

_ROLES = ("backend-engineer", "frontend-engineer", "qa-engineer", "devops-engineer", "architect")
_STATUSES = ("idle", "busy", "busy", "busy", "blocked")
_TASKS = (
    "Add rate limit headers",
    "Fix flaky resume test",
    "Write Redis runbook",
    "Profile fan-out",
    "Review PWA reconnect",
    "Migrate metrics names",
)


class DemoFeed:
    """An endless, reproducible stream of `(subscription, message_type, data)` updates.

    Args:
        rng: the random source; seed it for a repeatable stream.
        agents: how many agents the imaginary platform runs.
    """

    def __init__(self, rng: random.Random, agents: int = 5) -> None:
        self._rng = rng
        self._agents: list[dict[str, Any]] = [
            {
                "agent_id": f"agent-{i + 1}",
                "role": _ROLES[i % len(_ROLES)],
                "status": "idle",
                "tasks_completed": 0,
            }
            for i in range(agents)
        ]
        self._task_no = 0

    def next(self) -> tuple[str, str, Mapping[str, Any]]:
        """The next update to publish."""
        rng = self._rng
        # The mix (40 % agents, 30 % tasks, ...) and every range below are made-up demo
        # values chosen to look like a busy platform; none of them is a limit.
        roll = rng.random()
        agent = rng.choice(self._agents)
        if roll < 0.40:
            agent["status"] = rng.choice(_STATUSES)
            data = {
                **agent,
                "cpu_percent": round(rng.uniform(2, 95), 1),
                "memory_mb": rng.randint(180, 1900),
            }
            return "agents", "agent_update", data
        if roll < 0.70:
            self._task_no += 1
            state = rng.choice(("queued", "in_progress", "in_progress", "done", "failed"))
            if state == "done":
                agent["tasks_completed"] += 1
            return (
                "tasks",
                "task_update",
                {
                    "task_id": f"task-{self._task_no}",
                    "title": rng.choice(_TASKS),
                    "status": state,
                    "assigned_agent": agent["agent_id"],
                    "progress": 100 if state == "done" else rng.randint(0, 95),
                },
            )
        if roll < 0.85:
            return (
                "coordination",
                "coordination_update",
                {
                    "active_agents": sum(a["status"] != "idle" for a in self._agents),
                    "queue_depth": rng.randint(0, 40),
                    "handoffs_last_minute": rng.randint(0, 12),
                },
            )
        if roll < 0.97:
            return (
                "system",
                "system_update",
                {
                    "cpu_percent": round(rng.uniform(5, 80), 1),
                    "memory_percent": round(rng.uniform(20, 75), 1),
                    "events_per_second": rng.randint(5, 400),
                },
            )
        return (
            "alerts",
            "critical_alert",
            {
                "alerts": [
                    {
                        "level": "critical",
                        "source": agent["agent_id"],
                        "message": f"{agent['agent_id']} missed 3 heartbeats",
                    }
                ]
            },
        )


async def run_demo(broker: Broker, interval: float, rng: random.Random) -> None:
    """Publish the demo stream through `broker` every `interval` seconds until cancelled."""
    feed = DemoFeed(rng)
    n = 0
    while True:
        subscription, message_type, data = feed.next()
        n += 1
        # While the broker is down the demo simply skips updates.
        with contextlib.suppress(BrokerUnavailable):
            await broker.publish(subscription, message_type, data, f"demo-{n}")
        await asyncio.sleep(interval)
