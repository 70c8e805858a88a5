"""Review of the Sentinel broker: awkward real-world conditions around the Sentinels.

Real primary, replica and Sentinels on loopback (`tests.sentinels.topology()`), brokers in
the test's event loop with the tightened timings of `test_sentinel`.
"""

from __future__ import annotations

import asyncio
import random
import signal
import time

import pytest
import redis

from reference_server.app import new_uuid
from reference_server.broker.redis import RedisBroker
from reference_server.errors import BrokerUnavailable
from reference_server.metrics import Metrics
from reference_server.settings import Settings
from tests.procs import start_redis
from tests.reference_server.broker.test_sentinel import (
    TIGHT,
    Node,
    publish_when_possible,
    run,
)
from tests.sentinels import topology

pytestmark = pytest.mark.integration

RECONNECTS = "leanvibe_ws_broker_reconnect_attempts_total"


def test_a_sentinel_hanging_after_it_answered_does_not_take_a_healthy_primary_away() -> None:
    with topology() as top:
        asked_first = top.sentinels[0]  # the link asks its Sentinels in the order listed

        async def scenario(nodes: list[Node]) -> None:
            (a,) = nodes
            await publish_when_possible(a, 1, within=10)
            before = a.metrics.registry.get_sample_value(RECONNECTS) or 0
            # The Sentinel's host stops answering (powered off, packets dropped): no RST.
            asked_first.proc.send_signal(signal.SIGSTOP)
            down_seen = 0
            refused = 0
            try:
                deadline = time.monotonic() + 4
                ident = 2
                while time.monotonic() < deadline:
                    if not a.broker.status().connected:
                        down_seen += 1
                    try:
                        await a.broker.publish("agents", "agent_update", {"id": ident}, f"c{ident}")
                    except BrokerUnavailable:
                        refused += 1
                    ident += 1
                    await asyncio.sleep(0.05)
            finally:
                asked_first.proc.send_signal(signal.SIGCONT)
            after = a.metrics.registry.get_sample_value(RECONNECTS) or 0
            # The primary answered all along: nothing should have noticed the Sentinel.
            assert (after - before, down_seen, refused) == (0, 0, 0)

        run(top, scenario, "a")


def test_a_burst_of_publishes_waiting_for_a_lost_replica_does_not_drop_the_link() -> None:
    with topology() as top:
        primary = top.primary()
        replica = top.other(primary)

        async def scenario(nodes: list[Node]) -> None:
            (a,) = nodes
            await publish_when_possible(a, 1, within=10)
            before = a.metrics.registry.get_sample_value(RECONNECTS) or 0
            # Replication stops (as in test_sentinel): the replica cannot re-authenticate.
            with redis.Redis(port=replica.port, socket_timeout=2) as c:
                c.config_set("masterauth", "not-the-password")
            with redis.Redis(port=primary.port, socket_timeout=2) as c:
                c.execute_command("CLIENT", "KILL", "TYPE", "replica")
            down_seen = 0
            watching = True

            async def watch() -> None:
                nonlocal down_seen
                while watching:
                    if not a.broker.status().connected:
                        down_seen += 1
                    await asyncio.sleep(0.02)

            async def one(ident: int) -> str:
                try:
                    await a.broker.publish("agents", "agent_update", {"id": ident}, f"c{ident}")
                except BrokerUnavailable as exc:
                    return str(exc)
                return "acknowledged"

            watcher = asyncio.create_task(watch())
            try:
                outcomes = await asyncio.wait_for(
                    asyncio.gather(*(one(i) for i in range(2, 202))), timeout=60
                )
            finally:
                watching = False
                await watcher
            # Every publish refused for want of a replica (as promised), and nothing else.
            kinds = {o.split(" within")[0] for o in outcomes}
            after = a.metrics.registry.get_sample_value(RECONNECTS) or 0
            assert (kinds, after - before, down_seen) == (
                {"The update reached 0 of 1 Redis replicas"},
                0,
                0,
            )

        run(top, scenario, "a")


def test_with_redis_url_and_a_replica_an_update_the_replica_lacks_is_not_acknowledged() -> None:
    primary = start_redis()
    replica = start_redis(replica_of=primary.port)
    try:
        deadline = time.monotonic() + 20
        with redis.Redis(port=primary.port, socket_timeout=2, decode_responses=True) as c:
            while c.info("replication").get("connected_slaves") != 1:
                assert time.monotonic() < deadline, "the replica never connected"
                time.sleep(0.1)

        async def main() -> None:
            metrics = Metrics()
            settings = Settings(redis_url=f"redis://127.0.0.1:{primary.port}", **TIGHT)
            broker = RedisBroker(
                settings, metrics, instance_id="a", rng=random.Random(), new_id=new_uuid
            )
            await broker.start(lambda _update: None)
            try:
                deadline = time.monotonic() + 10
                while True:  # acknowledged while the replica is in sync
                    try:
                        await broker.publish("agents", "agent_update", {"id": 1}, "c1")
                        break
                    except BrokerUnavailable:
                        assert time.monotonic() < deadline
                        await asyncio.sleep(0.1)
                # The replica stalls (still connected, as the primary sees it).
                replica.proc.send_signal(signal.SIGSTOP)
                try:
                    with pytest.raises(BrokerUnavailable):
                        await broker.publish("agents", "agent_update", {"id": 2}, "c2")
                finally:
                    replica.proc.send_signal(signal.SIGCONT)
            finally:
                await broker.close()

        asyncio.run(main())
    finally:
        replica.stop()
        primary.stop()


def test_a_wait_timeout_the_settings_accept_ends_as_unreplicated_not_as_a_socket_timeout() -> None:
    with topology() as top:
        primary = top.primary()
        replica = top.other(primary)

        async def scenario(nodes: list[Node]) -> None:
            (a,) = nodes
            await publish_when_possible(a, 1, within=10)
            with redis.Redis(port=replica.port, socket_timeout=2) as c:
                c.config_set("masterauth", "not-the-password")
            with redis.Redis(port=primary.port, socket_timeout=2) as c:
                c.execute_command("CLIENT", "KILL", "TYPE", "replica")
            details = []
            for ident in range(2, 12):
                try:
                    await a.broker.publish("agents", "agent_update", {"id": ident}, f"c{ident}")
                except BrokerUnavailable as exc:
                    details.append(str(exc).split(" within")[0])
            unreplicated = "leanvibe_ws_publishes_unreplicated_total"
            assert details == ["The update reached 0 of 1 Redis replicas"] * 10
            assert a.metrics.registry.get_sample_value(unreplicated) == 10

        # The longest WAIT timeout the settings accept with a 1 s Redis timeout (990 ms is
        # refused at start-up: test_settings).
        run(
            top,
            scenario,
            "a",
            redis_timeout_seconds=1.0,
            redis_wait_timeout_ms=800,
            redis_heartbeat_seconds=0.3,
        )


def test_every_sentinel_hung_leaves_a_link_to_a_healthy_primary_up() -> None:
    with topology() as top:

        async def scenario(nodes: list[Node]) -> None:
            (a,) = nodes
            await publish_when_possible(a, 1, within=10)
            for sentinel in top.sentinels:
                sentinel.proc.send_signal(signal.SIGSTOP)
            refused = 0
            try:
                deadline = time.monotonic() + 4
                ident = 2
                while time.monotonic() < deadline:
                    try:
                        await a.broker.publish("agents", "agent_update", {"id": ident}, f"c{ident}")
                    except BrokerUnavailable:
                        refused += 1
                    ident += 1
                    await asyncio.sleep(0.05)
            finally:
                for sentinel in top.sentinels:
                    sentinel.proc.send_signal(signal.SIGCONT)
            assert (refused, a.broker.status().connected) == (0, True)

        run(top, scenario, "a")


def test_an_entry_answering_with_an_error_does_not_hide_the_sentinels_after_it() -> None:
    with topology() as top:
        not_a_sentinel = start_redis()  # e.g. a port mix-up: 6379 listed for 26379
        addresses = (
            f"127.0.0.1:{not_a_sentinel.port}",
            *(s.address for s in top.sentinels),
        )

        async def main() -> None:
            node = Node(addresses, "a")
            await node.broker.start(node.got.append)
            try:
                await publish_when_possible(node, 1, within=10)
            finally:
                await node.broker.close()

        try:
            asyncio.run(main())
        finally:
            not_a_sentinel.stop()
