"""The Redis broker against real `redis-server` processes: several brokers (instances) in one
event loop share one private Redis, which the tests kill, hang and restart.

Settings are tightened (`redis_timeout_seconds`, heartbeats) so failures are noticed in
fractions of a second; the behaviour is the same with the defaults, only slower.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis
from prometheus_client.parser import text_string_to_metric_families

from reference_server.app import new_uuid
from reference_server.broker import Update
from reference_server.broker.redis import RedisBroker
from reference_server.errors import BrokerUnavailable
from reference_server.metrics import Metrics
from reference_server.settings import Settings
from tests.procs import RedisProcess, ServerProcess, free_port
from tests.wsclient import check_server_frame

pytestmark = pytest.mark.integration

FAST = {
    "redis_timeout_seconds": 0.5,
    "redis_heartbeat_seconds": 0.2,
    "redis_ack_timeout_seconds": 2.0,
    "redis_backoff_base_seconds": 0.05,
    "redis_backoff_cap_seconds": 0.5,
}


class Instance:
    """One broker as an instance would run it, recording what it delivers."""

    def __init__(self, url: str, name: str, **overrides: Any) -> None:
        self.metrics = Metrics()
        self.settings = Settings(redis_url=url, **{**FAST, **overrides})
        self.broker = RedisBroker(
            self.settings,
            self.metrics,
            instance_id=name,
            rng=random.Random(),
            new_id=new_uuid,
        )
        self.got: list[Update] = []

    async def start(self) -> Instance:
        await self.broker.start(self.got.append)
        return self

    async def publish(self, subscription: str, kind: str, data: Any, cid: str) -> Update:
        return await self.broker.publish(subscription, kind, data, cid)

    def updates(self, subscription: str = "agents") -> list[Update]:
        return [
            u for u in self.got if u.subscription == subscription and u.type != "resync_required"
        ]

    def notices(self, subscription: str = "agents") -> list[dict[str, Any]]:
        out = [json.loads(u.text) for u in self.got if u.type == "resync_required"]
        return [f for f in out if f["subscription"] == subscription]

    @property
    def connected(self) -> bool:
        return self.broker.status().connected

    def metric(self, name: str) -> float:
        value = self.metrics.registry.get_sample_value(name)
        return 0.0 if value is None else value


async def eventually(check: Callable[[], bool], within: float = 5.0) -> float:
    """Wait until `check()` holds; return how long it took. Fails after `within` s."""
    start = time.monotonic()
    while not check():
        if time.monotonic() - start > within:
            raise AssertionError(f"condition not met within {within} s")
        await asyncio.sleep(0.01)
    return time.monotonic() - start


def run(scenario: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(scenario())


async def started(url: str, *names: str, **overrides: Any) -> list[Instance]:
    return [await Instance(url, n, **overrides).start() for n in names]


async def settled(*instances: Instance) -> None:
    """Wait until every instance counts all of them live (a heartbeat or a progress note)."""
    await eventually(
        lambda: all(
            i.broker.status().details["live_instances"] == len(instances) for i in instances
        )
    )


async def close_all(*instances: Instance) -> None:
    for inst in instances:
        await inst.broker.close()


def test_an_update_reaches_every_instance_once_in_seq_order(redis_server: RedisProcess) -> None:
    async def scenario() -> None:
        a, b, c = await started(redis_server.url, "a", "b", "c")
        await settled(a, b, c)
        acks = []
        for i in range(30):
            acks.append(await (a, b, c)[i % 3].publish("agents", "agent_update", {"i": i}, f"p{i}"))
        seqs = [u.seq for u in acks]
        assert seqs == list(range(seqs[0], seqs[0] + 30))  # one global counter per subscription
        for inst in (a, b, c):
            # Acknowledged means every live instance already holds it: no waiting needed.
            assert [u.seq for u in inst.updates()] == seqs
            assert [u.data["i"] for u in inst.updates()] == list(range(30))
        frame = json.loads(b.updates()[0].text)
        check_server_frame(frame)
        assert frame["correlation_id"] == "p0"
        task = await a.publish("tasks", "task_update", {"t": 1}, "t1")
        assert task.seq == seqs[0]  # seq counts per subscription
        await close_all(a, b, c)

    run(scenario)


def test_a_publish_is_acknowledged_only_when_every_live_instance_has_read_it(
    redis_server: RedisProcess,
) -> None:
    async def scenario() -> None:
        (a,) = await started(redis_server.url, "a", redis_ack_timeout_seconds=0.5)
        epoch = a.broker.status().details["epoch"]
        raw = aioredis.from_url(redis_server.url)
        # A peer that has heartbeated but never reads (a stalled instance); its liveness
        # runs out in 2 s, as if it had stopped heartbeating.
        seconds, micros = await raw.time()
        expiry = seconds * 1000 + micros // 1000 + 2000
        await raw.zadd(f"hive:ws:{epoch}:instances", {"stalled": expiry})
        await eventually(lambda: a.broker.status().details["live_instances"] == 2)
        with pytest.raises(BrokerUnavailable, match="not confirmed"):
            await a.publish("agents", "agent_update", {"i": 1}, "c1")
        assert a.updates()[-1].data == {"i": 1}  # refused, and still delivered: never lost
        await eventually(lambda: a.broker.status().details["live_instances"] == 1)
        update = await a.publish("agents", "agent_update", {"i": 2}, "c2")
        assert update.seq == a.updates()[-1].seq
        await raw.aclose()
        await close_all(a)

    run(scenario)


def test_history_answers_resumes_on_any_instance_and_a_late_instance_catches_up(
    redis_server: RedisProcess,
) -> None:
    async def scenario() -> None:
        a, b = await started(redis_server.url, "a", "b", history_max_messages=4)
        await settled(a, b)
        sent = [await a.publish("system", "system_update", {"i": i}, "c") for i in range(6)]
        # A client that saw seq #2 on `a` resumes on `b`: `b` replays 3..6 from memory.
        history = await b.broker.history("system", sent[1].seq)
        assert [u.seq for u in history.updates] == [u.seq for u in sent[2:]]
        assert history.covers(sent[1].seq) and not history.covers(sent[0].seq)
        (late,) = await started(redis_server.url, "late", history_max_messages=4)
        caught_up = await late.broker.history("system", sent[1].seq)
        assert [u.text for u in caught_up.updates] == [u.text for u in history.updates]
        await close_all(a, b, late)

    run(scenario)


def test_a_restart_that_loses_all_data_starts_a_new_epoch_and_tells_subscribers(
    redis_server: RedisProcess,
) -> None:
    async def scenario() -> None:
        a, b = await started(redis_server.url, "a", "b")
        old = await a.publish("agents", "agent_update", {"i": "before"}, "c")
        redis_server.kill()
        await eventually(lambda: not a.connected and not b.connected)
        with pytest.raises(BrokerUnavailable) as refused:
            await b.publish("agents", "agent_update", {"i": "while down"}, "c")
        assert refused.value.retry_after >= 1.0
        redis_server.restart()  # a fresh, empty server: streams and counters are gone
        recovery = await eventually(lambda: a.connected and b.connected)
        assert recovery < 5.0
        await settled(a, b)
        new = await b.publish("agents", "agent_update", {"i": "after"}, "c")
        assert new.seq > old.seq  # never a seq an old update had
        for inst in (a, b):
            (notice,) = inst.notices()
            assert notice["last_seq"] == old.seq
            assert notice["latest_seq"] == new.seq - 1  # live updates continue after it
            assert [u.data["i"] for u in inst.updates()] == ["before", "after"]
            # A client resuming from before the restart is told to resync, never replayed
            # a history with a hole in it.
            assert not (await inst.broker.history("agents", old.seq)).covers(old.seq)
            assert inst.metric("leanvibe_ws_broker_reconnect_attempts_total") >= 1
            assert inst.metric("leanvibe_ws_broker_up") == 1
        await close_all(a, b)

    run(scenario)


def test_a_hung_redis_degrades_then_recovers_in_the_same_epoch_without_loss(
    redis_server: RedisProcess,
) -> None:
    async def scenario() -> None:
        a, b = await started(redis_server.url, "a", "b")
        before = await a.publish("agents", "agent_update", {"i": 0}, "c")
        redis_server.pause()
        try:
            detected = await eventually(lambda: not a.connected and not b.connected, 3.0)
            assert detected < 2.0  # about redis_timeout_seconds
            assert a.broker.status().details["last_error"]
            assert a.metric("leanvibe_ws_broker_up") == 0
            with pytest.raises(BrokerUnavailable):
                await b.publish("agents", "agent_update", {"i": "hung"}, "c")
        finally:
            redis_server.resume()
        await eventually(lambda: a.connected and b.connected)
        await settled(a, b)
        after = await b.publish("agents", "agent_update", {"i": 1}, "c")
        for inst in (a, b):
            assert inst.notices() == []  # same epoch: nothing was lost, nothing to resync
            seqs = [u.seq for u in inst.updates()]
            assert seqs == sorted(set(seqs)) and seqs[0] == before.seq and seqs[-1] == after.seq
        await close_all(a, b)

    run(scenario)


def test_producer_channels_are_republished_once_into_their_subscriptions(
    redis_server: RedisProcess,
) -> None:
    async def scenario() -> None:
        insts = await started(redis_server.url, "a", "b", "c")
        republishers = [i for i in insts if i.broker.status().details["republisher"]]
        assert len(republishers) == 1
        raw = aioredis.from_url(redis_server.url)
        await raw.publish("system_events", json.dumps({"event": "deploy"}))
        await raw.publish("agent_events:a-7", json.dumps({"agent_id": "a-7", "event": "x"}))
        await raw.publish("agent_events:a-7", json.dumps({"agent_id": "a-7", "event": "x"}))
        await raw.publish("project_index:websocket_events", json.dumps({"event": {"k": 1}}))
        await raw.publish("system_events", "not json")  # refused, counted, not delivered
        await eventually(lambda: all(len(i.updates("project_index")) == 1 for i in insts))
        await asyncio.sleep(0.2)  # room for a duplicate to show up, if any were made
        for inst in insts:
            assert [(u.type, u.data) for u in inst.updates("system")] == [
                ("system_event", {"event": "deploy"})
            ]
            # Two identical messages are two events: both are delivered, each once.
            assert [u.type for u in inst.updates("agents")] == ["agent_event", "agent_event"]
            assert inst.updates("project_index")[0].data == {"k": 1}
        value = republishers[0].metrics.registry.get_sample_value(
            "leanvibe_ws_publishes_refused_total", {"reason": "producer_invalid"}
        )
        assert value == 1
        # The republisher leaves gracefully: another instance takes the lease over at its
        # next heartbeat and producer messages keep coming.
        await republishers[0].broker.close()
        rest = [i for i in insts if i is not republishers[0]]
        await eventually(lambda: any(i.broker.status().details["republisher"] for i in rest), 2)
        await raw.publish("system_events", json.dumps({"event": "after handover"}))
        await eventually(lambda: all(len(i.updates("system")) == 2 for i in rest))
        await raw.aclose()
        await close_all(*rest)

    run(scenario)


def test_a_dropped_pubsub_connection_is_noticed_and_the_listener_comes_back(
    redis_server: RedisProcess,
) -> None:
    """The "deaf node": a listener silently gone while health stays green."""

    async def scenario() -> None:
        (a,) = await started(redis_server.url, "a")
        raw = aioredis.from_url(redis_server.url)
        killed = await raw.client_kill_filter(_type="pubsub")
        assert killed >= 1
        await eventually(lambda: a.metric("leanvibe_ws_broker_reconnect_attempts_total") >= 1)
        await eventually(lambda: a.connected)
        await raw.publish("system_events", json.dumps({"event": "heard"}))
        await eventually(lambda: len(a.updates("system")) == 1)
        await raw.aclose()
        await close_all(a)

    run(scenario)


def test_reconnects_follow_the_capped_full_jitter_backoff() -> None:
    class Highest(random.Random):
        def uniform(self, a: float, b: float) -> float:
            return b

    waits: list[float] = []

    async def record(delay: float) -> None:
        waits.append(delay)
        await asyncio.sleep(0)

    async def scenario() -> None:
        # Nothing listens on this port: every attempt fails at once.
        settings = Settings(redis_url=f"redis://127.0.0.1:{free_port()}/0", **FAST)
        metrics = Metrics()
        broker = RedisBroker(
            settings, metrics, instance_id="retrying", rng=Highest(), new_id=new_uuid, sleep=record
        )
        await broker.start(lambda update: None)
        assert not broker.status().connected
        await eventually(lambda: len(waits) >= 7)
        await broker.close()
        attempts = metrics.registry.get_sample_value("leanvibe_ws_broker_reconnect_attempts_total")
        assert attempts is not None and attempts >= 6
        assert "ConnectionError" in broker.status().details["last_error"]

    run(scenario)
    assert [round(w, 6) for w in waits[:7]] == [0.05, 0.1, 0.2, 0.4, 0.5, 0.5, 0.5]


def test_a_server_says_degraded_and_answers_503_while_its_redis_is_down(
    redis_server: RedisProcess, server_factory: Callable[..., ServerProcess]
) -> None:
    server = server_factory({"REDIS_URL": redis_server.url, "WS_REDIS_TIMEOUT_SECONDS": "0.5"})
    publish_url = server.http + "/api/dashboard/websocket/broadcast?subscription=alerts"
    alert = {"alerts": [{"level": "critical", "message": "disk full"}]}

    def status() -> str:
        return str(httpx.get(server.http + "/health").json()["status"])

    def metric(name: str, **labels: str) -> float | None:
        text = httpx.get(server.http + "/api/dashboard/metrics/websockets").text
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name == name and sample.labels == labels:
                    return float(sample.value)
        return None

    health = httpx.get(server.http + "/health").json()
    assert health["status"] == "healthy"
    assert health["components"]["broker"]["kind"] == "redis"
    first = httpx.post(publish_url, json=alert)
    assert first.status_code == 200
    redis_server.kill()
    asyncio.run(eventually(lambda: status() == "degraded", 3.0))
    refused = httpx.post(publish_url, json=alert)
    assert refused.status_code == 503
    assert int(refused.headers["retry-after"]) >= 1
    assert "not published" in refused.json()["detail"]
    assert metric("leanvibe_ws_broker_up") == 0
    assert metric("leanvibe_ws_publishes_refused_total", reason="broker_unavailable") == 1
    redis_server.restart()
    asyncio.run(eventually(lambda: status() == "healthy", 5.0))
    again = httpx.post(publish_url, json=alert)
    assert again.status_code == 200 and again.json()["seq"] > first.json()["seq"]
    attempts = metric("leanvibe_ws_broker_reconnect_attempts_total")
    assert attempts is not None and attempts >= 1
