"""The snapshot handshake across instances: state from one, the stream after it from another.

Two real server processes share one real `redis-server`. A publisher drives about 50
updates a second on `agents` through both; a client takes `agent_status` from one instance
and subscribes on the other with `resume` set to the answer's `positions`. What it then
holds is checked against the publisher's own record of every acknowledged update (seq and
data, from the broadcast answers), which shares nothing with the server's state: the
snapshot must be exactly the updates up to its position, and the stream exactly the ones
after it, with no gap and no duplicate.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from tests.procs import RedisProcess, ServerProcess
from tests.wsclient import Client

pytestmark = pytest.mark.integration

# About 50 updates a second, as a busy dashboard sees them.
_PUBLISH_INTERVAL_SECONDS = 0.02
# Seven agents, so most updates change an agent the snapshot already holds.
_AGENTS = 7


class Publisher:
    """Publishes `agents` updates through every server in turn until told to stop.

    `acked` maps each acknowledged seq to the data published with it (the test's record).
    """

    def __init__(self, servers: list[ServerProcess]) -> None:
        self._servers = servers
        self._stop = threading.Event()
        self.acked: dict[int, dict[str, Any]] = {}
        self.failures: list[str] = []
        self._started = self._ended = 0.0
        self._thread = threading.Thread(target=self._run, name="publisher", daemon=True)

    def rate(self) -> float:
        """Acknowledged updates per second over the run."""
        return len(self.acked) / max(1e-9, self._ended - self._started)

    def _run(self) -> None:
        self._started = time.monotonic()
        with httpx.Client(timeout=10) as http:
            i = 0
            while not self._stop.is_set():
                server = self._servers[i % len(self._servers)]
                data = {"agent_id": f"agent-{i % _AGENTS}", "status": f"step-{i}", "i": i}
                answer = http.post(
                    f"{server.http}/api/dashboard/websocket/broadcast",
                    params={"subscription": "agents"},
                    json=data,
                )
                if answer.status_code == 200:
                    self.acked[answer.json()["seq"]] = data
                else:
                    self.failures.append(f"{answer.status_code} {answer.text}")
                i += 1
                # Paced by the clock, not by the gaps: 50/s however long a publish takes.
                due = self._started + i * _PUBLISH_INTERVAL_SECONDS
                self._stop.wait(max(0.0, due - time.monotonic()))
        self._ended = time.monotonic()

    def __enter__(self) -> Publisher:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)
        assert not self._thread.is_alive(), "the publisher did not stop within 30 s"


def publish(server: ServerProcess, data: dict[str, Any]) -> int:
    """Publish `data` on `agents` through `server`; return its seq (it must be acknowledged)."""
    answer = httpx.post(
        f"{server.http}/api/dashboard/websocket/broadcast",
        params={"subscription": "agents"},
        json=data,
        timeout=10,
    )
    answer.raise_for_status()
    return int(answer.json()["seq"])


def snapshot(server: ServerProcess) -> dict[str, Any]:
    """`agent_status` with its positions, over REST."""
    answer = httpx.get(f"{server.http}/api/dashboard/data/agent_status", timeout=10)
    answer.raise_for_status()
    return dict(answer.json())


def fold(updates: dict[int, dict[str, Any]], upto: int) -> dict[str, tuple[int, dict[str, Any]]]:
    """Each agent's last update (seq, data) among `updates` with seq <= `upto`."""
    state: dict[str, tuple[int, dict[str, Any]]] = {}
    for seq in sorted(s for s in updates if s <= upto):
        state[updates[seq]["agent_id"]] = (seq, updates[seq])
    return state


def snapshot_state(answer: dict[str, Any]) -> dict[str, tuple[int, dict[str, Any]]]:
    """The agents of an `agent_status` answer as (seq, published data)."""
    assert not answer["data"]["truncated"]
    return {
        a["agent_id"]: (a["seq"], {k: v for k, v in a.items() if k not in ("seq", "updated_at")})
        for a in answer["data"]["agents"]
    }


def collect(c: Client, seconds: float) -> None:
    """Receive for `seconds` (every frame lands in `c.frames`)."""
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        try:
            c.recv(timeout=left)
        except TimeoutError:
            return


@pytest.fixture
def pair(
    redis_server: RedisProcess, server_factory: Callable[..., ServerProcess]
) -> Iterator[list[ServerProcess]]:
    env = {"REDIS_URL": redis_server.url}
    yield [server_factory(env), server_factory(env)]


def test_a_snapshot_from_one_instance_resumed_on_another_loses_and_repeats_nothing(
    pair: list[ServerProcess],
) -> None:
    # The window between loading state and subscribing (centrifugal/centrifugo#446,
    # kdlbs/kandev#2287, home-assistant/core#67891) must lose nothing, and the overlap
    # between replayed and live updates (pingdotgg/t3code#3174) must repeat nothing.
    a, b = pair
    rounds: list[tuple[int, dict[str, tuple[int, dict[str, Any]]], list[dict[str, Any]]]] = []
    with Publisher(pair) as publisher:
        time.sleep(0.5)  # traffic flows before the first snapshot
        for n in range(6):
            source, target = (a, b) if n % 2 == 0 else (b, a)
            with Client(source.ws + "?subscriptions=") as snap_c:
                snap_c.recv()
                snap = snap_c.request({"type": "request_data", "data_type": "agent_status"})
            position = snap["positions"]["agents"]
            # Updates go on between the two connections: the resume must replay them.
            time.sleep(0.1 * n)
            if n < 3:  # a subscribe frame on an open connection
                live = Client(target.ws + "?subscriptions=")
                live.recv()
                live.request(
                    {"type": "subscribe", "subscriptions": ["agents"], "resume": snap["positions"]}
                )
            else:  # the same positions in the URL of a new connection
                live = Client(target.ws + f"?subscriptions=agents&resume=agents:{position}")
                assert live.recv()["type"] == "connection_established"
            collect(live, 0.5)
            live.ws.close()
            frames = [f for f in live.frames if f.get("subscription") == "agents"]
            rounds.append((position, snapshot_state(snap), frames))
    assert not publisher.failures, publisher.failures[:3]
    acked = publisher.acked
    assert len(acked) > 100, f"only {len(acked)} updates were published"
    first = min(acked)
    # Every seq the publisher was given is consecutive: nobody else published.
    assert sorted(acked) == list(range(first, first + len(acked)))
    print(
        f"snapshot handshake: {len(acked)} updates acked at {publisher.rate():.1f}/s, "
        f"{len(rounds)} rounds, updates after each snapshot: {[len(f) for _, _, f in rounds]}"
    )
    for position, state, frames in rounds:
        # The snapshot is exactly every update up to its position, nothing later.
        assert first <= position, "the snapshot was taken after traffic started"
        assert state == fold(acked, position), f"snapshot at {position} is not its prefix"
        assert all(f["type"] == "agent_update" for f in frames), "a resync in a healthy run"
        seqs = [f["seq"] for f in frames]
        assert seqs == list(range(position + 1, position + 1 + len(seqs))), (
            f"after {position}: gap or duplicate in {seqs[:10]}..."
        )
        assert seqs, f"nothing arrived after the snapshot at {position}"
        assert all(f["data"] == acked[f["seq"]] for f in frames)
        # The snapshot plus the stream after it is the whole sequence up to the last seen.
        merged = dict(state)
        for f in frames:
            merged[f["data"]["agent_id"]] = (f["seq"], dict(f["data"]))
        assert merged == fold(acked, seqs[-1])


def test_a_snapshot_older_than_the_other_instances_history_gets_resync_required(
    redis_server: RedisProcess, server_factory: Callable[..., ServerProcess]
) -> None:
    env = {"REDIS_URL": redis_server.url, "WS_HISTORY_MAX_MESSAGES": "5"}
    a, b = server_factory(env), server_factory(env)
    publish(a, {"agent_id": "agent-old", "i": 0})
    snap = snapshot(a)
    position = snap["positions"]["agents"]
    seqs = [publish(a if i % 2 else b, {"agent_id": "agent-old", "i": i}) for i in range(1, 21)]
    with Client(b.ws + "?subscriptions=") as c:
        c.recv()
        c.request({"type": "subscribe", "subscriptions": ["agents"], "resume": snap["positions"]})
        resync = c.recv_until("resync_required")
        assert (resync["last_seq"], resync["latest_seq"]) == (position, seqs[-1])
        assert resync["oldest_seq"] > position + 1
        replayed = [c.recv()["seq"] for _ in range(seqs[-1] - resync["oldest_seq"] + 1)]
        assert replayed == list(range(resync["oldest_seq"], seqs[-1] + 1))


# Fast failure detection, so a Redis restart is over in about a second.
_FAST = {
    "WS_REDIS_TIMEOUT_SECONDS": "0.5",
    "WS_REDIS_HEARTBEAT_SECONDS": "0.2",
    "WS_REDIS_BACKOFF_BASE_SECONDS": "0.05",
    "WS_REDIS_BACKOFF_CAP_SECONDS": "0.5",
}


def test_after_redis_loses_its_data_no_instance_claims_state_from_before_the_hole(
    redis_server: RedisProcess, server_factory: Callable[..., ServerProcess]
) -> None:
    # Centrifugo answers a position from a lost epoch with "unrecoverable position"
    # (centrifugal/centrifugo#798); here it is resync_required, and the state itself must
    # not keep agents whose later updates may have been lost with Redis.
    env = {"REDIS_URL": redis_server.url, **_FAST}
    a, b = server_factory(env), server_factory(env)
    publish(a, {"agent_id": "agent-before"})
    old = snapshot(b)
    assert [x["agent_id"] for x in old["data"]["agents"]] == ["agent-before"]
    redis_server.restart()  # empty: every update so far is gone from Redis
    deadline = time.monotonic() + 15
    while not all(httpx.get(f"{s.http}/health").json()["status"] == "healthy" for s in (a, b)):
        assert time.monotonic() < deadline, "the instances did not reconnect within 15 s"
        time.sleep(0.05)
    # A publish is acknowledged once every live instance holds it: then both have passed
    # the hole, and their states restart from it.
    new = publish(a, {"agent_id": "agent-after"})
    snaps = [snapshot(a), snapshot(b)]
    for snap in snaps:
        assert [x["agent_id"] for x in snap["data"]["agents"]] == ["agent-after"]
        assert snap["positions"] == {"agents": new}
    assert snaps[0]["data"] == snaps[1]["data"]
    with Client(b.ws + "?subscriptions=") as c:
        c.recv()
        c.request({"type": "subscribe", "subscriptions": ["agents"], "resume": old["positions"]})
        resync = c.recv_until("resync_required")
        assert resync["last_seq"] == old["positions"]["agents"]
        assert c.recv_until("agent_update")["seq"] == new
    with Client(a.ws + "?subscriptions=") as c:
        c.recv()
        c.request(
            {"type": "subscribe", "subscriptions": ["agents"], "resume": snaps[1]["positions"]}
        )
        later = publish(a, {"agent_id": "agent-later"})
        got = c.recv_until("agent_update")
        assert got["seq"] == later == new + 1
        assert not [f for f in c.frames if f["type"] == "resync_required"]


def test_an_instance_started_after_the_stream_was_trimmed_claims_only_what_it_read(
    redis_server: RedisProcess, server_factory: Callable[..., ServerProcess]
) -> None:
    # Redis trims a stream whole nodes at a time (100 entries by default), so a few hundred
    # updates are needed before a late instance finds the beginning gone.
    env = {"REDIS_URL": redis_server.url, "WS_HISTORY_MAX_MESSAGES": "5"}
    a = server_factory(env)
    acked = {publish(a, {"agent_id": "agent-early", "i": 0}): {"agent_id": "agent-early", "i": 0}}
    with httpx.Client(timeout=10) as http:
        for i in range(1, 400):
            data = {"agent_id": f"agent-{i % 5}", "i": i}
            answer = http.post(
                f"{a.http}/api/dashboard/websocket/broadcast",
                params={"subscription": "agents"},
                json=data,
            )
            answer.raise_for_status()
            acked[answer.json()["seq"]] = data
    late = server_factory(env)
    full, partial = snapshot(a), snapshot(late)
    assert full["positions"] == partial["positions"] == {"agents": max(acked)}
    assert "agent-early" in {x["agent_id"] for x in full["data"]["agents"]}
    # The late instance never read agent-early's update: it must not show a state for it,
    # and what it shows is exactly the last update of each agent it did read.
    shown = snapshot_state(partial)
    assert "agent-early" not in shown
    assert shown == {k: v for k, v in fold(acked, max(acked)).items() if k != "agent-early"}


def test_a_snapshot_before_any_update_resumes_from_the_first_without_a_resync(
    server_factory: Callable[..., ServerProcess],
) -> None:
    # centrifugal/centrifuge-js#163: a history answer's position was always empty/0, which
    # a resume could not use. Here a snapshot taken before any update names the seq just
    # before the first (seqs start above a time-based base), and a resume from it delivers
    # that first update with no resync_required. This test found positions that said 0.
    srv = server_factory()
    snap = snapshot(srv)
    assert snap["data"]["agents"] == []
    position = snap["positions"]["agents"]
    with Client(srv.ws + "?subscriptions=") as c:
        c.recv()
        c.request({"type": "subscribe", "subscriptions": ["agents"], "resume": snap["positions"]})
        first = publish(srv, {"agent_id": "agent-first"})
        assert c.recv_until("agent_update")["seq"] == first == position + 1
        assert not [f for f in c.frames if f["type"] == "resync_required"]
