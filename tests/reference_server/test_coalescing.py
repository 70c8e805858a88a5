"""Coalesced writes through a real uvicorn and real sockets: fewer writes, nothing lost.

Two instances share a real `redis-server`. The one the subscribers use is stopped
(SIGSTOP) while the other takes the publishes, then resumed: it finds the updates waiting in
the stream and reads them with one `XREAD COUNT n`, so they are due to every subscriber in
one event-loop turn, as after any pause. Writes are counted by the kernel, not by the
server: `syscw` in `/proc/PID/io` counts the process's write system calls (proc(5)), and one
uvloop `transport.write` is one `write(2)`.

Public reports behind these tests: coder/websocket#563 (a fan-out server pegged on one
write system call per frame), faye/permessage-deflate-node#4 and
clockworklabs/SpacetimeDB#5730 (compressed frames reaching clients out of order),
websockets/ws#1797 (batching dismissed because writes rarely fall in one tick: a Redis
batch does), crossbario/autobahn-python#648 (write coalescing on a timer).
"""

from __future__ import annotations

import os
import select
import signal
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from tests.procs import RedisProcess, ServerProcess
from tests.wsclient import Client, StalledClient, metric

pytestmark = pytest.mark.integration

SUBSCRIBERS = 20
UPDATES = 20
#: Seconds the publishes get to reach the stopped server's socket buffers (no Redis).
QUEUE_SECONDS = 0.5
#: Longest wait for the publishes to reach Redis, in seconds.
APPEND_TIMEOUT_SECONDS = 15.0
PUBLISH_TIMEOUT_SECONDS = 30.0


def write_syscalls(pid: int) -> int:
    """Write system calls process `pid` has made so far (`syscw`, proc(5))."""
    for line in Path(f"/proc/{pid}/io").read_text().splitlines():
        if line.startswith("syscw:"):
            return int(line.split()[1])
    raise RuntimeError(f"/proc/{pid}/io has no syscw")


def stream_entries(url: str) -> int:
    """Entries in the `agents` streams of the Redis at `url` (the broker's keys end so)."""
    with redis.Redis.from_url(url, socket_timeout=5) as r:
        return sum(int(r.xlen(key)) for key in r.scan_iter(match="*:agents", _type="stream"))


def appended(url: str, expected: int) -> None:
    """Wait until the `agents` streams hold `expected` entries (at most the timeout)."""
    deadline = time.monotonic() + APPEND_TIMEOUT_SECONDS
    while stream_entries(url) < expected:
        assert time.monotonic() < deadline, f"Redis never got {expected} entries"
        time.sleep(0.05)


def burst(
    publisher: ServerProcess,
    srv: ServerProcess,
    clients: list[Client],
    pad: str,
    redis_url: str = "",
) -> tuple[list[int], int]:
    """Publish `UPDATES` updates through `publisher` while `srv` is stopped.

    With `redis_url`, `srv` is resumed once Redis holds every update; otherwise after
    `QUEUE_SECONDS`.

    Returns:
        (the acknowledged seqs, `srv`'s write system calls from its resume to the last
        delivery).
    """
    pid = srv.proc.pid

    def publish(i: int) -> int:
        with httpx.Client(base_url=publisher.http, timeout=PUBLISH_TIMEOUT_SECONDS) as http:
            r = http.post(
                "/api/dashboard/websocket/broadcast",
                params={"subscription": "agents"},
                json={"n": i, "pad": pad},
            )
            r.raise_for_status()
            return int(r.json()["seq"])

    with ThreadPoolExecutor(UPDATES) as pool:
        os.kill(pid, signal.SIGSTOP)
        try:
            held = stream_entries(redis_url) if redis_url else 0
            futures = [pool.submit(publish, i) for i in range(UPDATES)]
            if redis_url:
                appended(redis_url, held + UPDATES)
            else:
                time.sleep(QUEUE_SECONDS)  # every request is in the server's socket buffers
            before = write_syscalls(pid)
        finally:
            os.kill(pid, signal.SIGCONT)
        seqs = sorted(f.result(timeout=PUBLISH_TIMEOUT_SECONDS) for f in futures)
    for c in clients:
        got = [c.recv_until("agent_update", timeout=10)["seq"] for _ in range(UPDATES)]
        # In publish order: seq order, every one, no duplicate.
        assert got == seqs
    return seqs, write_syscalls(pid) - before


Pair = Callable[[dict[str, str]], tuple[ServerProcess, ServerProcess, str]]


@pytest.fixture
def pair(server_factory: Any, redis_server: RedisProcess) -> Pair:
    """Start (publisher instance, subscribers' instance, Redis URL) with extra settings."""

    def make(env: dict[str, str]) -> tuple[ServerProcess, ServerProcess, str]:
        common = {"REDIS_URL": redis_server.url, "WS_RATE_BURST": "1000"}
        return server_factory(common), server_factory({**common, **env}), redis_server.url

    return make


def subscribers(stack: ExitStack, srv: ServerProcess, n: int, deflate: bool) -> list[Client]:
    clients = [
        stack.enter_context(
            Client(srv.ws + "?subscriptions=agents", compression="deflate" if deflate else None)
        )
        for _ in range(n)
    ]
    for c in clients:
        assert c.recv()["type"] == "connection_established"
        # The extension really is in force on both ends, or absent on both.
        assert bool(c.ws.protocol.extensions) is deflate
    return clients


@pytest.mark.parametrize("deflate", [False, True], ids=["plain", "permessage-deflate"])
def test_a_batch_read_from_redis_leaves_in_few_writes_in_order_and_complete(
    pair: Pair, deflate: bool
) -> None:
    publisher, srv, url = pair({"WS_PER_MESSAGE_DEFLATE": "true" if deflate else "false"})
    with ExitStack() as stack:
        clients = subscribers(stack, srv, SUBSCRIBERS, deflate)
        _, writes = burst(publisher, srv, clients, "x" * 200, url)
    deliveries = SUBSCRIBERS * UPDATES
    # One write per frame would be `deliveries` writes (400) plus Redis commands and log
    # lines; coalesced, each subscriber gets the batch in a write or two.
    assert writes < deliveries / 4, f"{writes} write system calls for {deliveries} deliveries"
    assert metric(srv, "leanvibe_ws_backpressure_disconnects_total") == 0


@pytest.mark.parametrize("deflate", [False, True], ids=["plain", "permessage-deflate"])
def test_a_batch_larger_than_the_byte_and_frame_bounds_reaches_readers_whole(
    pair: Pair, deflate: bool
) -> None:
    # Each batch is 20 frames of about 2.2 KB per subscriber: more than the 6 frames and
    # 8 KiB a client may have waiting. The frames held for the end of the turn are written
    # early instead of cutting off clients that read everything.
    publisher, srv, url = pair(
        {
            "WS_PER_MESSAGE_DEFLATE": "true" if deflate else "false",
            "WS_SEND_QUEUE_MAX_MESSAGES": "6",
            "WS_SEND_QUEUE_MAX_BYTES": "8192",
        }
    )
    with ExitStack() as stack:
        clients = subscribers(stack, srv, 5, deflate)
        for _ in range(2):
            burst(publisher, srv, clients, "y" * 2000, url)
    assert metric(srv, "leanvibe_ws_backpressure_disconnects_total") == 0


def test_the_write_delay_joins_updates_published_one_by_one(server_factory: Any) -> None:
    srv = server_factory({"WS_RATE_BURST": "1000", "WS_WRITE_DELAY_SECONDS": "0.5"})
    with ExitStack() as stack:
        clients = subscribers(stack, srv, SUBSCRIBERS, False)
        # The subscribers' instance publishes too: its HTTP requests are served one turn
        # each, and only the delay puts their frames in one write.
        _, writes = burst(srv, srv, clients, "z" * 200)
    assert writes < SUBSCRIBERS * UPDATES / 4, f"{writes} write system calls"


#: The coalescing window of the tests below, in seconds: long, so that the loaded test
#: machine's own pauses cannot be mistaken for it.
WINDOW = "1.0"


def publish_one_by_one(srv: ServerProcess, n: int, pad: str) -> list[int]:
    """Publish `n` updates in a row, each acknowledged before the next (a turn each)."""
    with httpx.Client(base_url=srv.http, timeout=PUBLISH_TIMEOUT_SECONDS) as http:
        seqs = []
        for i in range(n):
            r = http.post(
                "/api/dashboard/websocket/broadcast",
                params={"subscription": "agents"},
                json={"n": i, "pad": pad},
            )
            r.raise_for_status()
            seqs.append(int(r.json()["seq"]))
        return seqs


@pytest.mark.parametrize("deflate", [False, True], ids=["plain", "permessage-deflate"])
@pytest.mark.parametrize("window", ["0", WINDOW], ids=["no-window", "window"])
def test_the_coalescing_window_joins_publishes_of_different_turns_in_order(
    server_factory: Any, deflate: bool, window: str
) -> None:
    # websockets/ws#1797: batching writes was dismissed because one update per tick is the
    # common case; the window is what joins updates published one by one, as netty/netty#5808
    # consolidates flushes that come close together outside a read loop.
    srv = server_factory(
        {
            "WS_RATE_BURST": "1000",
            "WS_WRITE_COALESCE_WINDOW_SECONDS": window,
            "WS_PER_MESSAGE_DEFLATE": "true" if deflate else "false",
        }
    )
    with ExitStack() as stack:
        clients = subscribers(stack, srv, SUBSCRIBERS, deflate)
        before = write_syscalls(srv.proc.pid)
        seqs = publish_one_by_one(srv, UPDATES, "w" * 200)
        for c in clients:
            assert [c.recv_until("agent_update", timeout=10)["seq"] for _ in seqs] == seqs
        writes = write_syscalls(srv.proc.pid) - before
    deliveries = SUBSCRIBERS * UPDATES
    if window == "0":  # the control: one publish per turn is one write per delivery
        assert writes >= deliveries, f"{writes} write system calls for {deliveries} deliveries"
    else:
        assert writes < deliveries / 4, f"{writes} write system calls for {deliveries} deliveries"
    assert metric(srv, "leanvibe_ws_backpressure_disconnects_total") == 0


def test_a_quiet_instance_is_not_held_by_the_coalescing_window(server_factory: Any) -> None:
    srv = server_factory({"WS_RATE_BURST": "1000", "WS_WRITE_COALESCE_WINDOW_SECONDS": WINDOW})
    with Client(srv.ws + "?subscriptions=agents") as c:
        assert c.recv()["type"] == "connection_established"
        publish_one_by_one(srv, 1, "")
        c.recv_until("agent_update", timeout=10)
        time.sleep(float(WINDOW) * 1.5)  # quiet for longer than the window
        started = time.monotonic()
        (seq,) = publish_one_by_one(srv, 1, "")
        assert c.recv_until("agent_update", timeout=10)["seq"] == seq
        # Held for the window, it would take a whole second; written at once, milliseconds.
        assert time.monotonic() - started < float(WINDOW) / 2


def test_a_quiet_publish_is_answered_after_its_fan_out_is_written(server: ServerProcess) -> None:
    # Every subscriber's frame must already sit in its receive buffer when the publisher
    # reads the acknowledgement: the answer leaves after the fan-out's writes. With the
    # answer first, the 400 writes (milliseconds) would still be under way.
    subs = [StalledClient(server.ws + "?subscriptions=agents", rcvbuf=1 << 16) for _ in range(400)]
    try:
        for sub in subs:
            first = next(sub.drain(timeout=10))
            assert isinstance(first, dict) and first["type"] == "connection_established"
        with httpx.Client(timeout=10) as http:
            for attempt in range(3):
                time.sleep(0.3)  # quiet: no flush within the coalescing window
                seq = http.post(
                    f"{server.http}/api/dashboard/websocket/broadcast",
                    params={"subscription": "agents"},
                    json={"attempt": attempt},
                ).json()["seq"]
                readable, _, _ = select.select([s.sock for s in subs], [], [], 0)
                assert len(readable) == len(subs), (
                    f"acknowledged with {len(subs) - len(readable)} subscribers not written yet"
                )
                for sub in subs:
                    frame = next(sub.drain(timeout=10))
                    assert isinstance(frame, dict) and frame["seq"] == seq
    finally:
        for sub in subs:
            sub.close()
