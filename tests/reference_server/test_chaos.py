"""Chaos: three server processes share one private Redis, which is killed, hung and restarted.

Ten rounds, one fault each (kill -9 then a fresh empty server, SIGSTOP/SIGCONT, SIGTERM then a
fresh server), while a publisher POSTs a steady stream of updates to the three instances in
turn and WebSocket clients spread over them record every frame. Some clients hop to another
instance between faults, resuming from the last seq they saw. Afterwards:

- every acknowledged update reached every client exactly once (none lost, none twice);
- every client saw seqs in order with no gap that a `resync_required` did not announce;
- every instance delivered again within 5 s of Redis returning, in every round;
- no publish failed with anything but an acknowledgement or a 503.

The instances run with `WS_REDIS_TIMEOUT_SECONDS=1` so a hang is noticed within a second;
every other setting is the default (heartbeat 1 s, backoff cap 5 s, ack timeout 5 s).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.procs import RedisProcess, ServerProcess, start_redis, start_server
from tests.traffic import (
    Subscriber,
    Tally,
    all_healthy,
    health,
    publish,
    recovered,
    subscribe,
    wait_for,
    wind_down,
)

pytestmark = [pytest.mark.chaos, pytest.mark.slow, pytest.mark.integration]

INSTANCES = 3
CLIENTS_PER_INSTANCE = 3
HOPPERS = 3
ROUNDS = 10
PUBLISH_EVERY = 0.04  # seconds: 25 publishes per second
FAULTS = ("kill", "hang", "restart")
OUTAGE = {"kill": 1.5, "hang": 2.5, "restart": 0.0}  # seconds Redis stays away
RECOVERY_FLOOR = 5.0  # seconds from Redis back to an instance delivering again


@dataclass
class Round:
    """One fault and what it did."""

    fault: str
    recovery: dict[int, float]  # instance -> seconds from Redis back to delivering again
    degraded: set[int]  # instances whose /health said degraded during the outage


@dataclass
class Cluster:
    redis: RedisProcess
    servers: list[ServerProcess]

    def fault(self, kind: str) -> float:
        """Inflict `kind` on Redis, wait out the outage, bring it back; return when it was."""
        if kind == "hang":
            self.redis.pause()
            time.sleep(OUTAGE[kind])
            self.redis.resume()
        else:
            if kind == "kill":
                self.redis.kill()
            else:
                self.redis.terminate()
            time.sleep(OUTAGE[kind])
            self.redis.restart()  # a fresh server: everything Redis held is gone
        return time.monotonic()


@contextlib.contextmanager
def cluster() -> Iterator[Cluster]:
    redis = start_redis()
    servers: list[ServerProcess] = []
    try:
        env = {"REDIS_URL": redis.url, "WS_REDIS_TIMEOUT_SECONDS": "1", "WS_LOG_LEVEL": "warning"}
        servers = [start_server(env) for _ in range(INSTANCES)]
        yield Cluster(redis, servers)
    finally:
        for server in servers:
            server.stop()
        redis.stop()


async def reconnect_attempts(http: httpx.AsyncClient, server: ServerProcess) -> float:
    reply = await http.get(server.http + "/api/dashboard/metrics/websockets")
    for family in text_string_to_metric_families(reply.text):
        if family.name == "leanvibe_ws_broker_reconnect_attempts":
            return sum(sample.value for sample in family.samples)
    raise AssertionError("leanvibe_ws_broker_reconnect_attempts is missing")


async def chaos(c: Cluster) -> tuple[list[Subscriber], Tally, list[Round], list[float]]:
    servers = c.servers
    stop_clients, stop_publisher = asyncio.Event(), asyncio.Event()
    subs = [Subscriber(f"c{i}", i % INSTANCES) for i in range(INSTANCES * CLIENTS_PER_INSTANCE)] + [
        Subscriber(f"hopper{i}", i % INSTANCES, hops=True) for i in range(HOPPERS)
    ]
    tally = Tally()
    rounds: list[Round] = []
    async with httpx.AsyncClient(timeout=15.0) as http:
        readers = [asyncio.create_task(subscribe(s, servers, stop_clients)) for s in subs]
        publisher = asyncio.create_task(
            publish(http, servers, tally, stop_publisher, PUBLISH_EVERY)
        )

        async def all_receiving() -> bool:
            return all(s.ids for s in subs)

        await wait_for(all_receiving, 10, "first delivery to every client")
        for n in range(ROUNDS):
            kind = FAULTS[n % len(FAULTS)]
            await wait_for(lambda: all_healthy(http, servers), 15, "recovery")
            for sub in subs:
                if sub.hops:
                    sub.hop.set()
            await asyncio.sleep(1.5)  # hops done, steady traffic
            fault = asyncio.create_task(asyncio.to_thread(c.fault, kind))
            degraded: set[int] = set()
            while not fault.done():  # health must say so while Redis is away
                await asyncio.sleep(0.1)
                states = await health(http, servers)
                degraded |= {i for i, state in enumerate(states) if state == "degraded"}
            back = await fault

            async def delivering(back: float = back) -> bool:
                return len(recovered(subs, back)) == INSTANCES

            await wait_for(delivering, 15, f"round {n + 1} ({kind}): delivery on every instance")
            rounds.append(Round(kind, recovered(subs, back), degraded))
        await wind_down(subs, tally, publisher, readers, stop_publisher, stop_clients)
        attempts = [await reconnect_attempts(http, s) for s in servers]
    return subs, tally, rounds, attempts


def test_no_acknowledged_update_is_lost_through_ten_rounds_of_redis_failures() -> None:
    with cluster() as c:
        subs, tally, rounds, attempts = asyncio.run(chaos(c))
    lost = {s.name: sorted(tally.acked - set(s.ids)) for s in subs}
    twice = {s.name: sorted({i for i in s.ids if s.ids.count(i) > 1}) for s in subs}
    received = {i for s in subs for i in s.ids}
    print("\nround  fault    recovery per instance (s)   degraded seen on")
    for n, r in enumerate(rounds, 1):
        shown = "  ".join(f"{r.recovery[i]:.2f}" for i in sorted(r.recovery))
        print(f"{n:>5}  {r.fault:<7}  {shown:<26}  {sorted(r.degraded)}")
    print(
        f"acknowledged {len(tally.acked)}, refused {len(tally.refused)} "
        f"(of which delivered anyway {len(tally.refused & received)}), "
        f"errors {len(tally.errors)}, delivered {sum(len(s.ids) for s in subs)} "
        f"(to {len(subs)} clients), lost {sum(map(len, lost.values()))}, "
        f"duplicated {sum(map(len, twice.values()))}, "
        f"resync_required {sum(s.resyncs for s in subs)}, reconnect attempts {attempts}"
    )
    assert tally.errors == []
    # Not vacuous: many updates acknowledged, some refused. A share, not a count: on a
    # machine whose cores are all busy (the flake lane's CPU hog), recoveries take longer and
    # fewer of the ~480 publishes land in healthy time (170 to 220 acknowledged, measured).
    published = len(tally.acked) + len(tally.refused)
    assert len(tally.acked) >= max(100, published // 4), "the run must publish through the faults"
    assert tally.refused, "the run must publish through the faults"
    assert all(not ids for ids in lost.values()), f"acknowledged but lost: {lost}"
    assert all(not ids for ids in twice.values()), f"delivered twice: {twice}"
    assert [p for s in subs for p in s.problems] == []
    worst = max(t for r in rounds for t in r.recovery.values())
    assert worst <= RECOVERY_FLOOR, f"slowest recovery {worst:.2f} s"
    # Every instance noticed every outage that lasted (a restart may be over too soon).
    assert all(r.degraded == set(range(INSTANCES)) for r in rounds if OUTAGE[r.fault])
    assert all(a >= 1 for a in attempts)
