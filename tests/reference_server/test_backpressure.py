"""Slow consumers are cut off (1013) while healthy clients on the same stream get everything."""

from __future__ import annotations

import contextlib
import threading
import time
from typing import Any

import httpx
import pytest

from tests.wsclient import Client, StalledClient, check_server_frame, metric

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_a_stalled_reader_is_cut_off_and_a_healthy_one_misses_nothing(server_factory: Any) -> None:
    srv = server_factory(
        {
            "WS_SEND_QUEUE_MAX_MESSAGES": "50",
            "WS_SEND_TIMEOUT_SECONDS": "60",
            "WS_RATE_BURST": "1000",
        }
    )
    stalled = StalledClient(srv.ws + "?subscriptions=agents")
    received: list[int] = []
    done = threading.Event()
    with Client(srv.ws + "?subscriptions=agents") as healthy:
        assert healthy.recv()["type"] == "connection_established"

        def read() -> None:
            while not done.is_set() or len(received) < len(acked):
                try:
                    frame = healthy.recv(timeout=10)
                except TimeoutError:
                    return
                if frame["type"] == "agent_update":
                    received.append(frame["seq"])

        acked: list[int] = []
        reader = threading.Thread(target=read)
        reader.start()
        pad = "x" * 2000
        started = time.monotonic()
        cut_after = None
        with httpx.Client(base_url=srv.http, timeout=10) as http:
            for i in range(6000):
                r = http.post(
                    "/api/dashboard/websocket/broadcast",
                    params={"subscription": "agents"},
                    json={"n": i, "pad": pad},
                )
                acked.append(r.json()["seq"])
                if i % 100 == 99 and metric(srv, "leanvibe_ws_backpressure_disconnects_total") >= 1:
                    cut_after = time.monotonic() - started
                    break
            # a few more after the cut-off: the healthy client must get these too
            for i in range(20):
                r = http.post(
                    "/api/dashboard/websocket/broadcast",
                    params={"subscription": "agents"},
                    json={"tail": i},
                )
                acked.append(r.json()["seq"])
        done.set()
        reader.join(30)
    assert cut_after is not None, "the stalled client was never cut off"
    assert received == acked, "the healthy client lost or reordered updates"
    frames = list(stalled.drain(timeout=20))
    stalled.close()
    code = frames[-1]
    notice = frames[-2]
    assert isinstance(notice, dict)
    check_server_frame(notice)
    assert (notice["type"], notice["reason"], code) == ("disconnect_notice", "backpressure", 1013)
    seqs = [f["seq"] for f in frames if isinstance(f, dict) and f.get("type") == "agent_update"]
    assert seqs == sorted(seqs) and len(seqs) < len(acked)
    print(
        f"stalled client cut off after {cut_after:.2f} s and {len(acked)} updates; "
        f"it had received {len(seqs)} before the cut"
    )


def test_a_send_stuck_past_its_timeout_is_aborted_within_a_bound(server_factory: Any) -> None:
    srv = server_factory({"WS_SEND_TIMEOUT_SECONDS": "1"})
    stalled = StalledClient(srv.ws + "?subscriptions=system", rcvbuf=4096)
    big = {"blob": "y" * 60_000}
    started = time.monotonic()
    with httpx.Client(base_url=srv.http, timeout=10) as http:
        # A few large frames fill the socket buffers; then the server's write is stuck.
        for _ in range(80):
            http.post(
                "/api/dashboard/websocket/broadcast", params={"subscription": "system"}, json=big
            ).raise_for_status()
        while metric(srv, "leanvibe_ws_backpressure_disconnects_total") < 1:
            assert time.monotonic() - started < 30, "the stuck client was never cut off"
            time.sleep(0.2)
        # The connection ends (its handler exits) without the client reading a byte.
        while metric(srv, "leanvibe_ws_disconnections_total") < 1:
            assert time.monotonic() - started < 30, "the stuck connection was never dropped"
            time.sleep(0.2)
    elapsed = time.monotonic() - started
    # Aborted, not closed: the client finds a reset (or a bare EOF), never a close frame.
    closed_cleanly = False
    with contextlib.suppress(ConnectionResetError):
        closed_cleanly = any(isinstance(item, int) for item in stalled.drain(timeout=10))
    stalled.close()
    assert not closed_cleanly
    assert metric(srv, "leanvibe_ws_messages_send_failures_total") >= 1
    print(f"stuck send aborted {elapsed:.2f} s after the first publish")
