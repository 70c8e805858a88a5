"""A rolling restart: three instances sharing one Redis are restarted one at a time under load.

Each instance in turn gets SIGTERM (its clients get `disconnect_notice` and close 1001), and
starts again on the same port once it has exited. Its clients move to the next instance at
once, resuming from the last seq they saw, as the PWA does; a publisher keeps POSTing 25
updates per second to the instances in turn (a publish whose instance went away under it
gets no answer: it is not acknowledged). Afterwards every acknowledged update reached every
client exactly once, and no client saw a gap, announced (`resync_required`) or not.
"""

from __future__ import annotations

import asyncio
import contextlib

import httpx
import pytest

from tests.procs import ServerProcess, start_redis, start_server
from tests.traffic import Subscriber, Tally, health, publish, subscribe, wait_for, wind_down

pytestmark = [pytest.mark.integration, pytest.mark.chaos]

INSTANCES = 3
CLIENTS_PER_INSTANCE = 2
PUBLISH_EVERY = 0.04  # seconds: 25 publishes per second
SETTINGS = {"WS_REDIS_TIMEOUT_SECONDS": "1", "WS_LOG_LEVEL": "warning"}


async def roll(servers: list[ServerProcess], env: dict[str, str]) -> tuple[list[Subscriber], Tally]:
    stop_clients, stop_publisher = asyncio.Event(), asyncio.Event()
    subs = [
        Subscriber(f"c{i}", i % INSTANCES, follows_shutdown=True)
        for i in range(INSTANCES * CLIENTS_PER_INSTANCE)
    ]
    tally = Tally()
    async with httpx.AsyncClient(timeout=15.0) as http:
        readers = [asyncio.create_task(subscribe(s, servers, stop_clients)) for s in subs]
        publisher = asyncio.create_task(
            publish(http, servers, tally, stop_publisher, PUBLISH_EVERY, instances_stop=True)
        )

        async def all_receiving() -> bool:
            return all(s.ids for s in subs)

        async def all_healthy() -> bool:
            with contextlib.suppress(httpx.TransportError):
                return set(await health(http, servers)) == {"healthy"}
            return False

        await wait_for(all_receiving, 15, "first delivery to every client")
        for i in range(INSTANCES):
            await asyncio.sleep(1.0)  # steady traffic
            old = servers[i]
            await asyncio.to_thread(old.stop)  # SIGTERM: drain, then exit
            servers[i] = await asyncio.to_thread(start_server, old.env, port=old.port)
            await wait_for(all_healthy, 20, f"instance {i} back")
        await wind_down(subs, tally, publisher, readers, stop_publisher, stop_clients)
    return subs, tally


def test_a_rolling_restart_under_load_loses_nothing_and_leaves_no_gap() -> None:
    redis = start_redis()
    servers: list[ServerProcess] = []
    try:
        env = {"REDIS_URL": redis.url, **SETTINGS}
        servers.extend(start_server(env) for _ in range(INSTANCES))
        subs, tally = asyncio.run(roll(servers, env))
    finally:
        for server in servers:
            server.stop()
        redis.stop()
    lost = {s.name: sorted(tally.acked - set(s.ids)) for s in subs}
    twice = {s.name: sorted({i for i in s.ids if s.ids.count(i) > 1}) for s in subs}
    print(
        f"\nacknowledged {len(tally.acked)}, refused {len(tally.refused)}, unanswered "
        f"{len(tally.unanswered)}, lost {sum(map(len, lost.values()))}, duplicated "
        f"{sum(map(len, twice.values()))}, resync_required {sum(s.resyncs for s in subs)}, "
        f"moves {[s.moves for s in subs]}"
    )
    assert tally.errors == []
    assert len(tally.acked) >= 50, "the run must publish through the restarts"
    assert all(not ids for ids in lost.values()), f"acknowledged but lost: {lost}"
    assert all(not ids for ids in twice.values()), f"delivered twice: {twice}"
    assert [p for s in subs for p in s.problems] == []
    assert [s.resyncs for s in subs] == [0] * len(subs), "a gap was announced"
    # Every client moved at least once: its instance, or the one it moved to, restarted.
    assert all(s.moves >= 1 for s in subs)
