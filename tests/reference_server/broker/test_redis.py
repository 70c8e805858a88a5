"""The Redis broker against real `redis-server` processes: several brokers (instances) in one
event loop share one private Redis, which the tests kill, hang and restart.

Settings are tightened (`redis_timeout_seconds`, heartbeats) so failures are noticed in
fractions of a second; the behaviour is the same with the defaults, only slower.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import signal
import time
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis
from prometheus_client.parser import text_string_to_metric_families
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from reference_server.app import new_uuid
from reference_server.broker import Update
from reference_server.broker.redis import RedisBroker
from reference_server.errors import BrokerUnavailable
from reference_server.metrics import Metrics
from reference_server.settings import Settings
from tests.procs import RedisProcess, ServerProcess, free_port
from tests.wsclient import Client, check_server_frame

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


async def eventually(check: Callable[[], bool], within: float = 15.0) -> float:
    """Wait until `check()` holds; return how long it took. Fails after `within` s.

    The default is generous: on a machine whose cores are all busy (the flake lane), a
    reconnect (stop the link's tasks, close, back off, join, catch up) can take seconds.
    Tests that assert a speed pass their own bound.
    """
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


class Highest(random.Random):
    """A random source that always draws the top of the range (the longest backoff)."""

    def uniform(self, a: float, b: float) -> float:
        return b


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


def test_a_resume_from_a_position_not_read_yet_waits_for_it_within_its_bound(
    redis_server: RedisProcess,
) -> None:
    # A snapshot taken on `a` names a seq that `b` may read a few milliseconds later; a
    # resume on `b` must neither call it lost (resync_required) nor replay it twice.
    async def scenario() -> None:
        a, b = await started(redis_server.url, "a", "b", resume_wait_seconds=5.0)
        (c,) = await started(redis_server.url, "c", resume_wait_seconds=0.2)
        await settled(a, b, c)
        # Before the first update, the position is the epoch's base: a resume from it is
        # covered and replays the first update.
        base = a.broker.position("agents")
        assert base == b.broker.position("agents") == a.broker.status().details["epoch"]
        assert (await b.broker.history("agents", base)).covers(base)
        first = await a.publish("agents", "agent_update", {"i": 0}, "c0")
        assert a.broker.position("agents") == b.broker.position("agents") == first.seq == base + 1
        asking = asyncio.create_task(b.broker.history("agents", first.seq + 1))
        await asyncio.sleep(0.1)
        assert not asking.done(), "answered before the position was read"
        second = await a.publish("agents", "agent_update", {"i": 1}, "c1")
        async with asyncio.timeout(5):
            history = await asking
        assert history.covers(second.seq) and history.latest_seq == second.seq
        assert history.updates == []  # nothing after the position: nothing replayed twice
        # A position no instance will reach soon (made up): answered after the bound, and
        # not covered, so the resume ends in resync_required.
        start = time.monotonic()
        async with asyncio.timeout(5):
            bogus = await c.broker.history("agents", second.seq + 10**9)
        assert time.monotonic() - start >= 0.2
        assert not bogus.covers(second.seq + 10**9)
        await close_all(a, b, c)

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
        raw = aioredis.from_url(redis_server.url)
        await raw.publish("system_events", json.dumps({"event": "deploy"}))
        await raw.publish("agent_events:a-7", json.dumps({"agent_id": "a-7", "event": "x"}))
        await raw.publish("agent_events:a-7", json.dumps({"agent_id": "a-7", "event": "x"}))
        await raw.publish("project_index:websocket_events", json.dumps({"event": {"k": 1}}))
        await raw.publish("system_events", "not json")  # refused, counted, not delivered
        await eventually(lambda: all(len(i.updates("project_index")) == 1 for i in insts))

        def total(outcome: str) -> float:
            name, labels = "leanvibe_ws_producer_messages_total", {"outcome": outcome}
            return sum(i.metrics.registry.get_sample_value(name, labels) or 0.0 for i in insts)

        # Every instance brought each of the 4 valid messages; Redis appended each once.
        await eventually(lambda: total("duplicate") == 8)
        assert total("appended") == 4
        for inst in insts:
            assert [(u.type, u.data) for u in inst.updates("system")] == [
                ("system_event", {"event": "deploy"})
            ]
            # Two identical messages are two events: both are delivered, each once.
            assert [u.type for u in inst.updates("agents")] == ["agent_event", "agent_event"]
            assert inst.updates("project_index")[0].data == {"k": 1}
            value = inst.metrics.registry.get_sample_value(
                "leanvibe_ws_producer_messages_dropped_total", {"reason": "invalid"}
            )
            assert value == 1
        # Any instance may go: the others still bring every message.
        await insts[0].broker.close()
        await raw.publish("system_events", json.dumps({"event": "after one left"}))
        await eventually(lambda: all(len(i.updates("system")) == 2 for i in insts[1:]))
        await raw.aclose()
        await close_all(*insts[1:])

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
        with contextlib.suppress(AssertionError):  # why it is missing is said below
            await eventually(lambda: len(a.updates("system")) >= 1)
        produced = {
            value: a.metrics.registry.get_sample_value(
                f"leanvibe_ws_producer_messages{name}", labels
            )
            for name, labels in (
                ("_total", {"outcome": "appended"}),
                ("_dropped_total", {"reason": "unnamed"}),
                ("_dropped_total", {"reason": "stale"}),
                ("_dropped_total", {"reason": "redis_failed"}),
            )
            for value in labels.values()
        }
        assert len(a.updates("system")) == 1, (a.broker.status().details, produced)
        await raw.aclose()
        await close_all(a)

    run(scenario)


def test_reconnects_follow_the_capped_full_jitter_backoff() -> None:
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
    asyncio.run(eventually(lambda: status() == "healthy", 15.0))  # backoff cap 5 s + a join
    again = httpx.post(publish_url, json=alert)
    assert again.status_code == 200 and again.json()["seq"] > first.json()["seq"]
    attempts = metric("leanvibe_ws_broker_reconnect_attempts_total")
    assert attempts is not None and attempts >= 1


def test_close_ends_within_its_bound_even_when_a_cancellation_is_swallowed() -> None:
    """redis-py#2028 and #2551, CPython gh-86296: a cancellation can be lost inside a Redis call
    on Python 3.11 (asyncio.wait_for in redis-py's writes); shutdown must not wait forever."""
    entered = asyncio.Event()

    async def swallowing_sleep(delay: float) -> None:
        entered.set()
        with contextlib.suppress(asyncio.CancelledError):  # the lost cancellation
            await asyncio.sleep(delay)

    async def scenario() -> None:
        # Nothing listens on this port: the supervisor spends its time in the reconnect delay.
        settings = Settings(
            redis_url=f"redis://127.0.0.1:{free_port()}/0",
            **{**FAST, "redis_backoff_base_seconds": 5.0, "redis_backoff_cap_seconds": 5.0},
        )
        broker = RedisBroker(
            settings,
            Metrics(),
            instance_id="stubborn",
            rng=Highest(),
            new_id=new_uuid,
            sleep=swallowing_sleep,
        )
        await broker.start(lambda update: None)
        await asyncio.wait_for(entered.wait(), 5)
        started = time.monotonic()
        async with asyncio.timeout(10):  # without the fix: the close never returns
            await broker.close()
        assert time.monotonic() - started < 5 * settings.redis_timeout_seconds

    run(scenario)


def test_a_publish_and_a_close_while_redis_hangs_end_within_their_bounds(
    redis_server: RedisProcess,
) -> None:
    """centrifugo#925 (a Redis call with no timeout blocked forever), redis-py#3941 (closing a
    pub/sub connection hung): with Redis stopped, nothing the broker does may wait unbounded."""

    async def scenario() -> None:
        a, b = await started(redis_server.url, "a", "b")
        await settled(a, b)
        redis_server.pause()
        try:
            publish = asyncio.create_task(a.publish("agents", "agent_update", {"i": 1}, "c"))
            bound = 5 * a.settings.redis_timeout_seconds
            for inst in (a, b):
                began = time.monotonic()
                async with asyncio.timeout(bound + 5):
                    await inst.broker.close()
                assert time.monotonic() - began <= bound + 0.5
            async with asyncio.timeout(a.settings.redis_ack_timeout_seconds + 5):
                with pytest.raises(BrokerUnavailable):
                    await publish
        finally:
            redis_server.resume()

    run(scenario)


def test_a_server_stops_within_its_bound_while_its_redis_hangs(
    redis_server: RedisProcess, server_factory: Callable[..., ServerProcess]
) -> None:
    """The shutdown path end to end: SIGTERM while Redis is stopped (SIGSTOP) and a client is
    connected; the server exits within its grace plus the broker's close bound."""
    env = {
        "REDIS_URL": redis_server.url,
        "WS_REDIS_TIMEOUT_SECONDS": "0.5",
        "WS_SHUTDOWN_GRACE_SECONDS": "1",
        "WS_LOG_LEVEL": "warning",
    }
    server = server_factory(env)
    with Client(server.ws) as client:
        assert client.recv()["type"] == "connection_established"
        redis_server.pause()
        try:
            began = time.monotonic()
            server.proc.send_signal(signal.SIGTERM)
            assert client.recv_until("disconnect_notice", timeout=10)["reason"] == "server_shutdown"
            server.proc.wait(30)
            # drain (1 s) + its tasks (1 s) + the broker's close (5 x 0.5 s) + uvicorn's own
            assert time.monotonic() - began < 1 + 1 + 2.5 + 3
        finally:
            redis_server.resume()


def test_an_idle_link_stays_up_past_several_redis_timeouts(redis_server: RedisProcess) -> None:
    """redis-py#3138 and #2807: a blocking XREAD whose BLOCK reaches the socket timeout fails
    with a timeout error. Nothing published for 4 timeouts: the link must stay up."""

    async def scenario() -> None:
        (a,) = await started(redis_server.url, "a", redis_timeout_seconds=1.0)
        idle = 4 * a.settings.redis_timeout_seconds
        await asyncio.sleep(idle)  # the idleness under test, not a synchronisation
        assert a.connected
        assert a.metric("leanvibe_ws_broker_reconnect_attempts_total") == 0
        assert a.broker.status().details["last_error"] == ""
        await close_all(a)

    run(scenario)


def test_after_refused_reconnects_every_instance_hears_producers_again(
    redis_server: RedisProcess,
) -> None:
    """centrifugo#1189: after a reconnect whose first dials were refused, a node stayed deaf to
    pub/sub while /health said healthy. Here every attempt builds the whole link again."""

    async def scenario() -> None:
        a, b = await started(redis_server.url, "a", "b")
        redis_server.kill()
        attempts = "leanvibe_ws_broker_reconnect_attempts_total"
        await eventually(lambda: a.metric(attempts) >= 2 and b.metric(attempts) >= 2)
        redis_server.restart()
        await eventually(lambda: a.connected and b.connected)
        raw = aioredis.from_url(redis_server.url)
        await raw.publish("system_events", json.dumps({"event": "heard after the outage"}))
        await eventually(lambda: all(len(i.updates("system")) == 1 for i in (a, b)))
        await asyncio.sleep(0.2)  # room for a duplicate to show up, if any were made
        assert [len(i.updates("system")) for i in (a, b)] == [1, 1]
        await raw.aclose()
        await close_all(a, b)

    run(scenario)


def test_producer_messages_sent_while_one_listener_reconnects_are_not_lost(
    redis_server: RedisProcess,
) -> None:
    """socket.io-redis-adapter#446 and redis/redis#3559: a pub/sub subscriber misses what is
    published while it reconnects. Another instance that heard it appends it for everyone."""

    async def scenario() -> None:
        # Default-like timeouts: on a machine whose cores are all busy, the fast ones can end
        # b's link too, and a message published while both listeners are away is lost.
        slower = {"redis_timeout_seconds": 2.0, "redis_heartbeat_seconds": 0.5}
        a, b = await started(redis_server.url, "a", "b", **slower)
        await settled(a, b)
        raw = aioredis.from_url(redis_server.url, decode_responses=True)
        sent = 40

        async def produce() -> None:
            for n in range(sent):
                await raw.publish("system_events", json.dumps({"n": n}))
                await asyncio.sleep(0.02)

        producer = asyncio.create_task(produce())
        await eventually(lambda: len(a.updates("system")) >= 5)
        listeners = await raw.client_list(_type="pubsub")
        (mine,) = [c["id"] for c in listeners if c["name"] == "hive-ws-a"]
        await raw.client_kill_filter(_id=mine)  # only a's listener; b keeps hearing
        await producer
        with contextlib.suppress(AssertionError):  # what is missing shows below
            await eventually(lambda: all(len(i.updates("system")) >= sent for i in (a, b)), 20)
        await asyncio.sleep(0.2)  # room for a duplicate to show up, if any were made
        for inst in (a, b):
            dropped = {
                reason: inst.metrics.registry.get_sample_value(
                    "leanvibe_ws_producer_messages_dropped_total", {"reason": reason}
                )
                for reason in ("unnamed", "stale", "redis_failed")
            }
            got = [u.data["n"] for u in inst.updates("system")]
            assert got == list(range(sent)), (inst.broker.status().details, dropped)
        assert a.metric("leanvibe_ws_broker_reconnect_attempts_total") >= 1
        await raw.aclose()
        await close_all(a, b)

    run(scenario)


EVENTS = 80
EVENT_EVERY = 0.1  # seconds between two producer events
FAULT_AT = 15  # the event before which one instance is stopped or killed
STOPPED_FOR = 5.0  # seconds a stopped instance stays stopped


async def subscribe_system(server: ServerProcess, got: list[int], ready: asyncio.Event) -> None:
    """Record the `n` of every system_event `server` delivers, until it closes or we cancel."""
    with contextlib.suppress(ConnectionClosed):
        async with connect(server.ws + "?subscriptions=system", open_timeout=10) as ws:
            ready.set()
            async for raw in ws:
                frame = json.loads(raw)
                check_server_frame(frame)
                if frame["type"] == "system_event":
                    got.append(frame["data"]["n"])


def produced(server: ServerProcess, outcome: str) -> float:
    """`leanvibe_ws_producer_messages_total{outcome}` of `server` (0 before the first)."""
    text = httpx.get(server.http + "/api/dashboard/metrics/websockets", timeout=10).text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            wanted = {"outcome": outcome}
            if sample.name == "leanvibe_ws_producer_messages_total" and sample.labels == wanted:
                return float(sample.value)
    return 0.0


async def producer_run(
    redis: RedisProcess, survivor: ServerProcess, victim: ServerProcess, fault: str
) -> dict[str, list[int]]:
    """Publish EVENTS producer events while `victim` is stopped or killed; return what the
    subscriber on each instance received."""
    got: dict[str, list[int]] = {"survivor": [], "victim": []}
    readers = []
    for name, server in (("survivor", survivor), ("victim", victim)):
        ready = asyncio.Event()
        readers.append(asyncio.create_task(subscribe_system(server, got[name], ready)))
        await asyncio.wait_for(ready.wait(), 10)

    def live(server: ServerProcess) -> int:
        health = httpx.get(server.http + "/health", timeout=10).json()
        return int(health["components"]["broker"]["live_instances"])

    await eventually(lambda: live(survivor) == 2 and live(victim) == 2, 10)
    raw = aioredis.from_url(redis.url)
    resume_at = FAULT_AT + round(STOPPED_FOR / EVENT_EVERY)
    try:
        for n in range(EVENTS):
            if n == FAULT_AT:
                victim.proc.send_signal(signal.SIGSTOP if fault == "stop" else signal.SIGKILL)
            if n == resume_at and fault == "stop":
                victim.proc.send_signal(signal.SIGCONT)
            await raw.publish("system_events", json.dumps({"event": "tick", "n": n}))
            await asyncio.sleep(EVENT_EVERY)
    finally:
        victim.proc.send_signal(signal.SIGCONT)  # never leave it stopped (nothing if killed)
        await raw.aclose()
    waiting_on = ("survivor", "victim") if fault == "stop" else ("survivor",)
    with contextlib.suppress(AssertionError):  # what is missing is reported by the caller
        await eventually(lambda: all(len(got[w]) >= EVENTS for w in waiting_on), 20)
    await asyncio.sleep(0.5)  # room for a duplicate to show up, if any were made
    for reader in readers:
        reader.cancel()
    await asyncio.gather(*readers, return_exceptions=True)
    return got


@pytest.mark.parametrize("fault", ["stop", "kill"])
def test_producer_events_survive_one_instance_stopping_or_dying(
    redis_server: RedisProcess, server_factory: Callable[..., ServerProcess], fault: str
) -> None:
    """Issue 11: two instances, an event on `system_events` every 0.1 s; one instance is stopped
    for 5 s (SIGSTOP) or killed (SIGKILL). With one republishing instance, 23 to 33 of 80 events
    were lost. Now the subscriber on the other instance gets every event exactly once, and so
    does a subscriber on the stopped one once it runs again."""
    env = {
        "REDIS_URL": redis_server.url,
        "WS_LOG_LEVEL": "warning",
        # Shorter than the stop: only the staleness rule (an instance without a heartbeat
        # for 2 s rebuilds its link) keeps the stopped instance from appending copies whose
        # names Redis no longer remembers. 6 heartbeats must fit in it.
        "WS_REDIS_PRODUCER_DEDUPE_SECONDS": "4",
        "WS_REDIS_HEARTBEAT_SECONDS": "0.5",
    }
    # The first instance up is the one that republished alone before (it took the lease).
    victim = server_factory(env)
    survivor = server_factory(env)
    got = asyncio.run(producer_run(redis_server, survivor, victim, fault))
    assert got["survivor"] == list(range(EVENTS))
    if fault == "stop":
        assert got["victim"] == list(range(EVENTS))
        # Appended once in all, by whichever instance brought each first.
        assert produced(survivor, "appended") + produced(victim, "appended") == EVENTS
