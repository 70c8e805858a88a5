"""The dashboard state: what the server knows of the platform, from the updates it delivers.

`request_data` answers come from here: the latest state of each agent seen on `agents`, the
per-subscription update counts and the live connection figures. Pure: the app feeds it.

**Positions.** Every answer comes with `positions`: for each subscription its data reflects,
the `seq` of the last update on it already in the answer, taken in the same call as the data
(nothing runs in between). The seq is the broker's (`Broker.position`): the broker hands
each update to the hub, and the hub to this state, without awaiting, so the two agree.
A client that subscribes with `resume: positions` receives exactly the updates after them.
`agent_status` covers `agents`; `coordination_metrics` covers every subscription (its
`latest_seq` and `delivered` count them all); `system_health` covers none (it reflects no
update).

The state is built from the updates this instance delivered, so a position must not claim
updates the instance never saw. When the broker announces a hole on a subscription (a
`resync_required` notice: Redis lost its data, or this instance fell behind the stream's
trimming or started after it), the state of that subscription is dropped and rebuilt from
the updates after the hole, as a client does on `resync_required`: the data is then always
exactly the updates after the last hole up to the position, never a mix with updates whose
successors were lost.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from . import messages
from .broker.base import BrokerStatus, Update
from .errors import DataRequestError

__all__ = ["COVERS", "Answer", "DashboardState"]

Answer = tuple[dict[str, Any], dict[str, int]]
"""A `request_data` answer: its `data`, and its `positions` (subscription -> seq)."""

_RESYNC = "resync_required"


COVERS: dict[str, tuple[str, ...]] = {
    "agent_status": ("agents",),
    "coordination_metrics": messages.SUBSCRIPTIONS,
    "system_health": (),
}
"""The subscriptions each `data_type`'s answer reflects, hence the keys of its `positions`."""


class DashboardState:
    """Latest agent states and update counts, observed from delivered updates.

    Memory is bounded in bytes: each remembered agent costs the UTF-8 length of the update
    frame it came in, and the least recently updated agents are forgotten once the total
    passes `max_bytes` (or their number passes `max_agents`). An `agent_status` answer that
    lists every agent is cut to `answer_bytes`, so it always fits in one frame; the client
    asks for the next page with `params.after`.

    Args:
        max_agents: agents remembered at most.
        max_bytes: bytes of agent state remembered at most (`WS_DASHBOARD_STATE_MAX_BYTES`).
        answer_bytes: bytes of agent state one `agent_status` answer lists at most (one agent
            always, however large).
    """

    # Enough for any fleet the dashboard shows, while bounding memory against a publisher
    # that invents a new agent id per update.
    def __init__(
        self, max_agents: int = 10_000, max_bytes: int = 4_194_304, answer_bytes: int = 262_144
    ) -> None:
        self._max_agents = max_agents
        self._max_bytes = max_bytes
        self._answer_bytes = answer_bytes
        self._agents: dict[str, dict[str, Any]] = {}
        self._sizes: dict[str, int] = {}
        self.agent_bytes = 0
        """Bytes of agent state held now (the sum of the remembered frames' UTF-8 lengths)."""
        self.latest_seq: dict[str, int] = dict.fromkeys(messages.SUBSCRIPTIONS, 0)
        self.delivered: dict[str, int] = dict.fromkeys(messages.SUBSCRIPTIONS, 0)

    def observe(self, update: Update) -> None:
        """Record one update (or `resync_required` notice) delivered to this instance.

        A notice means the updates before it on its subscription cannot all be known: the
        subscription's state is dropped (see the module docstring) and its position moves to
        the notice's `seq`, after which live updates continue.
        """
        sub = update.subscription
        self.latest_seq[sub] = update.seq
        if update.type == _RESYNC:
            if sub == "agents":
                self._agents.clear()
                self._sizes.clear()
                self.agent_bytes = 0
            return
        self.delivered[sub] += 1
        if sub == "agents":
            agent_id = update.data.get("agent_id")
            if isinstance(agent_id, str):
                self._forget(agent_id)
                self._agents[agent_id] = {
                    **update.data,
                    "seq": update.seq,
                    "updated_at": messages.utc_timestamp(update.published_at),
                }
                size = messages.utf8_length(update.text)
                self._sizes[agent_id] = size
                self.agent_bytes += size
                while len(self._agents) > 1 and (
                    self.agent_bytes > self._max_bytes or len(self._agents) > self._max_agents
                ):
                    self._forget(next(iter(self._agents)))

    def _forget(self, agent_id: str) -> None:
        if self._agents.pop(agent_id, None) is not None:
            self.agent_bytes -= self._sizes.pop(agent_id)

    def _listing(self, after: object) -> dict[str, Any]:
        if after is not None and not isinstance(after, str):
            raise DataRequestError("params.after must be a string (an agent_id)")
        ids = sorted(i for i in self._agents if after is None or i > after)
        listed: list[dict[str, Any]] = []
        used = 0
        for agent_id in ids:
            used += self._sizes[agent_id]
            if listed and used > self._answer_bytes:
                break
            listed.append(self._agents[agent_id])
        data: dict[str, Any] = {
            "agents": listed,
            "count": len(listed),
            "total": len(self._agents),
            "truncated": len(listed) < len(ids),
        }
        if data["truncated"]:
            data["next_after"] = listed[-1]["agent_id"]
        return data

    def answer(
        self,
        data_type: str,
        params: Mapping[str, Any],
        *,
        connections: int,
        subscribers: Mapping[str, int],
        broker: BrokerStatus,
        uptime_seconds: float,
        position: Callable[[str], int],
    ) -> Answer:
        """The `data` and `positions` of a `data_response` for `data_type`, taken together.

        Args:
            position: the broker's `Broker.position`: the seq of the last update it
                delivered on a subscription, which this state has observed (the broker
                calls the hub, and the hub this state, without awaiting), or the
                numbering's base before the first.

        Returns:
            `(data, positions)`: `positions` maps each subscription the data covers to the
            seq of the last update on it that the data reflects.

        Raises:
            DataRequestError: unknown data type or parameter value.
        """
        if data_type == "agent_status":
            data = self._agent_status(params)
        elif data_type == "coordination_metrics":
            data = {
                # The broker's count, as in `positions`: the base before the first update.
                "latest_seq": {sub: position(sub) for sub in messages.SUBSCRIPTIONS},
                "delivered": dict(self.delivered),
                "subscribers": dict(subscribers),
                "connections": connections,
            }
        elif data_type == "system_health":
            data = {
                "status": "healthy" if broker.connected else "degraded",
                "broker": {"kind": broker.kind, "connected": broker.connected},
                "connections": connections,
                "uptime_seconds": round(uptime_seconds, 3),  # milliseconds are precise enough
                "contract_version": messages.CONTRACT_VERSION,
            }
        else:
            raise DataRequestError(f"Unknown data type: {data_type[: messages.ECHO_CHARS]}")
        # Taken in the same call as the data, with nothing in between: no update can slip
        # between the two.
        return data, {sub: position(sub) for sub in COVERS[data_type]}

    def _agent_status(self, params: Mapping[str, Any]) -> dict[str, Any]:
        agent_id = params.get("agent_id")
        if agent_id is not None:
            if not isinstance(agent_id, str):
                raise DataRequestError("params.agent_id must be a string")
            if agent_id not in self._agents:
                raise DataRequestError(f"Unknown agent: {str(agent_id)[: messages.ECHO_CHARS]}")
            return {"agents": [self._agents[agent_id]], "count": 1}
        return self._listing(params.get("after"))
