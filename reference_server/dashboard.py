"""The dashboard state: what the server knows of the platform, from the updates it delivers.

`request_data` answers come from here: the latest state of each agent seen on `agents`, the
per-subscription update counts and the live connection figures. Pure: the app feeds it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from . import messages
from .broker.base import BrokerStatus, Update
from .errors import DataRequestError

__all__ = ["DashboardState"]


class DashboardState:
    """Latest agent states and update counts, observed from delivered updates.

    Args:
        max_agents: agents remembered at most; the least recently updated are forgotten.
    """

    # Enough for any fleet the dashboard shows, while bounding memory against a publisher
    # that invents a new agent id per update.
    def __init__(self, max_agents: int = 10_000) -> None:
        self._max_agents = max_agents
        self._agents: dict[str, dict[str, Any]] = {}
        self.latest_seq: dict[str, int] = dict.fromkeys(messages.SUBSCRIPTIONS, 0)
        self.delivered: dict[str, int] = dict.fromkeys(messages.SUBSCRIPTIONS, 0)

    def observe(self, update: Update) -> None:
        """Record one update delivered to this instance."""
        sub = update.subscription
        self.latest_seq[sub] = update.seq
        self.delivered[sub] += 1
        if sub == "agents":
            agent_id = update.data.get("agent_id")
            if isinstance(agent_id, str):
                self._agents.pop(agent_id, None)
                self._agents[agent_id] = {
                    **update.data,
                    "seq": update.seq,
                    "updated_at": messages.utc_timestamp(update.published_at),
                }
                if len(self._agents) > self._max_agents:
                    del self._agents[next(iter(self._agents))]

    def answer(
        self,
        data_type: str,
        params: Mapping[str, Any],
        *,
        connections: int,
        subscribers: Mapping[str, int],
        broker: BrokerStatus,
        uptime_seconds: float,
    ) -> dict[str, Any]:
        """The `data` of a `data_response` for `data_type`.

        Raises:
            DataRequestError: unknown data type or parameter value.
        """
        if data_type == "agent_status":
            agent_id = params.get("agent_id")
            if agent_id is not None:
                if not isinstance(agent_id, str):
                    raise DataRequestError("params.agent_id must be a string")
                if agent_id not in self._agents:
                    raise DataRequestError(f"Unknown agent: {str(agent_id)[: messages.ECHO_CHARS]}")
                return {"agents": [self._agents[agent_id]], "count": 1}
            agents = sorted(self._agents.values(), key=lambda a: str(a.get("agent_id")))
            return {"agents": agents, "count": len(agents)}
        if data_type == "coordination_metrics":
            return {
                "latest_seq": dict(self.latest_seq),
                "delivered": dict(self.delivered),
                "subscribers": dict(subscribers),
                "connections": connections,
            }
        if data_type == "system_health":
            return {
                "status": "healthy" if broker.connected else "degraded",
                "broker": {"kind": broker.kind, "connected": broker.connected},
                "connections": connections,
                "uptime_seconds": round(uptime_seconds, 3),  # milliseconds are precise enough
                "contract_version": messages.CONTRACT_VERSION,
            }
        raise DataRequestError(f"Unknown data type: {data_type[: messages.ECHO_CHARS]}")
