"""The Redis broker behind Redis Sentinel: real primary, replica and Sentinels on loopback.

Brokers run in the test's event loop (as instances would, with tightened timings) against
`tests.sentinels.topology()`. Each test is one known failure of real-time servers behind
Sentinel:

- an update the primary held but no replica did (asynchronous replication) is refused,
  and after the failover its seq is never given to another update (which instances that
  delivered the first would skip: an acknowledged update lost);
- the Sentinels naming another primary while the old one still answers (a partitioned
  primary): every instance follows them, not only those whose connections broke (the
  "deaf node" of centrifugal/centrifugo#1189);
- a switchover that demotes a live primary: the instances leave it instead of meeting
  READONLY forever (redis/redis-py#460; spring-projects/spring-data-redis#2668);
- a Sentinel list in which some are down or hung still finds the primary, in bounded time
  (the `MasterNotFoundError`s of redis/redis-py#1125 and #3186 came from Sentinels that did
  not answer within the socket timeout).
"""

from __future__ import annotations

import asyncio
import random
import signal
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
import redis

from reference_server.app import new_uuid
from reference_server.broker import Update
from reference_server.broker.redis import RedisBroker
from reference_server.errors import BrokerUnavailable
from reference_server.metrics import Metrics
from reference_server.settings import Settings
from tests.procs import free_port, start_redis
from tests.sentinels import MASTER, Topology, topology

pytestmark = pytest.mark.integration

TIGHT = {
    "redis_timeout_seconds": 0.5,
    "redis_heartbeat_seconds": 0.2,
    "redis_ack_timeout_seconds": 2.0,
    "redis_backoff_base_seconds": 0.05,
    "redis_backoff_cap_seconds": 0.5,
    "redis_wait_timeout_ms": 300,
}


class Node:
    """One broker (an instance) pointed at the Sentinels, recording what it delivers."""

    def __init__(self, sentinels: tuple[str, ...], name: str, **overrides: Any) -> None:
        self.metrics = Metrics()
        settings = Settings(
            redis_sentinels=sentinels, redis_sentinel_master=MASTER, **{**TIGHT, **overrides}
        )
        self.broker = RedisBroker(
            settings, self.metrics, instance_id=name, rng=random.Random(), new_id=new_uuid
        )
        self.got: list[Update] = []

    def seqs(self, kind: str = "agent_update") -> list[int]:
        return [u.seq for u in self.got if u.type == kind]

    def ids(self) -> list[Any]:
        return [u.data["id"] for u in self.got if u.type == "agent_update"]

    def linked_to(self) -> tuple[str, int] | None:
        link = self.broker._link  # which node the live link is pinned to
        return None if link is None else link.address


async def eventually(check: Callable[[], bool], within: float) -> None:
    deadline = time.monotonic() + within
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {within} s")
        await asyncio.sleep(0.02)


async def publish_when_possible(node: Node, ident: int, within: float) -> Update:
    """Publish until acknowledged (503s while the topology settles); fail after `within` s."""
    deadline = time.monotonic() + within
    while True:
        try:
            return await node.broker.publish("agents", "agent_update", {"id": ident}, f"c{ident}")
        except BrokerUnavailable:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.1)


def run(
    top: Topology,
    scenario: Callable[[list[Node]], Awaitable[None]],
    *names: str,
    **overrides: Any,
) -> None:
    addresses = tuple(s.address for s in top.sentinels)

    async def main() -> None:
        nodes = [Node(addresses, n, **overrides) for n in names]
        for node in nodes:
            await node.broker.start(node.got.append)
        try:
            await scenario(nodes)
        finally:
            for node in nodes:
                await node.broker.close()

    asyncio.run(main())


def test_an_update_no_replica_confirmed_is_refused_and_its_seq_never_reused() -> None:
    with topology() as top:
        primary = top.primary()
        replica = top.other(primary)

        async def scenario(nodes: list[Node]) -> None:
            a, b = nodes
            first = await publish_when_possible(a, 1, within=10)
            await eventually(lambda: first.seq in b.seqs(), within=5)
            # Replication stops: the primary drops the replica's link, and the replica cannot
            # make a new one (a wrong password), while it answers the Sentinels as usual.
            with redis.Redis(port=replica.port, socket_timeout=2) as c:
                c.config_set("masterauth", "not-the-password")
            with redis.Redis(port=primary.port, socket_timeout=2) as c:
                c.execute_command("CLIENT", "KILL", "TYPE", "replica")
            unreplicated = "leanvibe_ws_publishes_unreplicated_total"
            before = a.metrics.registry.get_sample_value(unreplicated) or 0
            with pytest.raises(BrokerUnavailable, match="0 of 1 Redis replicas"):
                await a.broker.publish("agents", "agent_update", {"id": 2}, "c2")
            assert a.metrics.registry.get_sample_value(unreplicated) == before + 1
            # Refused, yet appended and delivered: only the primary holds it.
            await eventually(lambda: 2 in a.ids() and 2 in b.ids(), within=5)
            lost_seq = a.seqs()[-1]
            primary.kill()
            with redis.Redis(port=replica.port, socket_timeout=2) as c:
                c.config_set("masterauth", "")
            await asyncio.to_thread(top.wait_promoted, replica, 30)
            await asyncio.to_thread(primary.restart, replica_of=replica.port)
            # With a replica in sync, an instance that never saw the lost update publishes.
            # Given the lost update's number, it would be acknowledged (the others announced
            # that they had read that far) and skipped by them as already delivered.
            await asyncio.to_thread(top.wait_in_sync, primary, 30)
            c = Node(tuple(s.address for s in top.sentinels), "c")
            await c.broker.start(c.got.append)
            try:
                third = await publish_when_possible(c, 3, within=30)
                await eventually(lambda: all(3 in n.ids() for n in (a, b, c)), within=10)
            finally:
                await c.broker.close()
                # One seq, one update, on every instance: a client resuming on another
                # instance from a seq must never skip a different update under it.
                by_seq: dict[int, set[Any]] = {}
                for node in (a, b, c):
                    for u in node.got:
                        if u.type == "agent_update":
                            by_seq.setdefault(u.seq, set()).add(u.data["id"])
                assert {seq: ids for seq, ids in by_seq.items() if len(ids) > 1} == {}
            assert third.seq != lost_seq
            assert a.seqs()[-1] == b.seqs()[-1] == third.seq
            # The numbering restarted (a new epoch), and subscribers were told so.
            assert a.seqs("resync_required") and b.seqs("resync_required")

        run(top, scenario, "a", "b")


def test_every_instance_follows_the_sentinels_to_a_new_primary_while_the_old_one_answers() -> None:
    with topology() as top:
        old = top.primary()
        elsewhere = start_redis()  # a primary the Sentinels will name instead

        async def scenario(nodes: list[Node]) -> None:
            a, b = nodes
            await publish_when_possible(a, 1, within=10)
            await eventually(lambda: 1 in b.ids(), within=5)
            assert a.linked_to() == b.linked_to() == ("127.0.0.1", old.port)
            for sentinel in top.sentinels:  # as after a failover the old primary never saw
                with redis.Redis(port=sentinel.port, socket_timeout=2) as c:
                    c.execute_command("SENTINEL", "REMOVE", MASTER)
                    c.execute_command("SENTINEL", "MONITOR", MASTER, "127.0.0.1", elsewhere.port, 2)
            started = time.monotonic()
            target = ("127.0.0.1", elsewhere.port)
            await eventually(lambda: a.linked_to() == b.linked_to() == target, within=5)
            moved = time.monotonic() - started
            await publish_when_possible(b, 2, within=10)
            await eventually(lambda: 2 in a.ids(), within=5)
            print(f"\nboth instances on the new primary {moved:.2f} s after the Sentinels moved")

        try:
            # No WAIT: `elsewhere` has no replica; the point here is where updates go.
            run(top, scenario, "a", "b", redis_wait_replicas=0)
        finally:
            elsewhere.stop()


def test_a_switchover_that_demotes_a_live_primary_moves_every_instance_and_loses_nothing() -> None:
    # redis/redis-py#460: the old primary did not die, it became a replica; clients kept
    # getting READONLY and never asked the Sentinels again.
    with topology() as top:
        old = top.primary()
        new = top.other(old)

        async def scenario(nodes: list[Node]) -> None:
            a, b = nodes
            await publish_when_possible(a, 1, within=10)
            switched = time.monotonic()
            with redis.Redis(port=top.sentinels[0].port, socket_timeout=2) as c:
                c.execute_command("SENTINEL", "FAILOVER", MASTER)
            await asyncio.to_thread(top.wait_promoted, new, 30)
            target = ("127.0.0.1", new.port)
            await eventually(lambda: a.linked_to() == b.linked_to() == target, within=5)
            moved = time.monotonic() - switched
            acked = [
                await publish_when_possible(node, 2 + i, within=20) for i, node in enumerate(nodes)
            ]
            await eventually(lambda: all({1, 2, 3} <= set(n.ids()) for n in nodes), within=5)
            # The same update under the same seq everywhere, none twice.
            assert a.seqs() == b.seqs() and len(set(a.seqs())) == len(a.seqs())
            assert [u.seq for u in acked] == a.seqs()[-2:]
            print(f"\nboth instances on the promoted replica {moved:.2f} s after SENTINEL FAILOVER")

        run(top, scenario, "a", "b")


def test_a_sentinel_list_with_dead_and_hung_entries_still_finds_the_primary() -> None:
    with topology() as top:
        hung = top.sentinels[0]
        hung.proc.send_signal(signal.SIGSTOP)
        dead = f"127.0.0.1:{free_port()}"
        addresses = (dead, hung.address, *(s.address for s in top.sentinels[1:]))

        async def main() -> float:
            node = Node(addresses, "a")
            started = time.monotonic()
            await node.broker.start(node.got.append)
            try:
                await publish_when_possible(node, 1, within=10)
                return time.monotonic() - started
            finally:
                await node.broker.close()

        try:
            took = asyncio.run(main())
        finally:
            hung.proc.send_signal(signal.SIGCONT)
        # One connect refused, one Sentinel timing out (0.5 s), then an answer.
        print(f"\nfirst publish acknowledged {took:.2f} s after start")
        assert took < 5
