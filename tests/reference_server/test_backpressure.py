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


def _kernel_send_buffer_max() -> int:
    """The most a server socket's send buffer may grow to (Linux tcp_wmem's maximum)."""
    with open("/proc/sys/net/ipv4/tcp_wmem") as f:
        return int(f.read().split()[2])


def _memory_kib(pid: int, field: str) -> int:
    """`VmRSS` (now) or `VmHWM` (peak) of process `pid`, in KiB."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise AssertionError(f"{field} missing from /proc/{pid}/status")


def test_a_stalled_reader_of_large_frames_is_cut_off_at_the_byte_bound(
    server_factory: Any,
) -> None:
    # The frame bound alone (1,024) let a client that stopped reading 32 KiB frames hold
    # 400 of them (12.5 MiB) without being cut off.
    srv = server_factory({"WS_SEND_TIMEOUT_SECONDS": "60"})
    stalled = StalledClient(srv.ws + "?subscriptions=system", rcvbuf=4096)
    frame_bytes = 32 * 1024
    data = {"blob": "z" * frame_bytes}
    # What may be in flight besides the server's own buffers: the kernel's send buffer
    # (autotuned up to tcp_wmem's maximum) and the client's small receive buffer.
    allowance = 1_048_576 + _kernel_send_buffer_max() + 64 * 1024
    most = allowance // frame_bytes + 2
    published = 0
    with httpx.Client(base_url=srv.http, timeout=10) as http:
        while metric(srv, "leanvibe_ws_backpressure_disconnects_total") < 1:
            assert published <= most, f"not cut off after {published} frames of 32 KiB"
            http.post(
                "/api/dashboard/websocket/broadcast", params={"subscription": "system"}, json=data
            ).raise_for_status()
            published += 1
    frames = list(stalled.drain(timeout=20))
    stalled.close()
    notice, code = frames[-2], frames[-1]
    assert isinstance(notice, dict)
    assert (notice["type"], notice["reason"], code) == ("disconnect_notice", "backpressure", 1013)
    print(f"a stalled reader of 32 KiB frames was cut off after {published} publishes")


@pytest.mark.parametrize("reads", [False, True], ids=["stalled", "trickle"])
def test_server_memory_per_slow_reader_stays_within_the_byte_bound(
    server_factory: Any, reads: bool
) -> None:
    """20 clients that read nothing, or a trickle (16 KiB every 50 ms), while 32 KiB frames
    pour in."""
    bound = 1_048_576
    srv = server_factory({"WS_SEND_TIMEOUT_SECONDS": "60", "WS_RATE_BURST": "1000"})
    readers = [StalledClient(srv.ws + "?subscriptions=system", rcvbuf=4096) for _ in range(20)]
    # A warm-up publish, so the first-use allocations are in the baseline, not the growth.
    with httpx.Client(base_url=srv.http, timeout=10) as http:
        http.post(
            "/api/dashboard/websocket/broadcast", params={"subscription": "tasks"}, json={}
        ).raise_for_status()
    baseline = _memory_kib(srv.proc.pid, "VmRSS")
    stop = threading.Event()

    def trickle(client: StalledClient) -> None:
        client.sock.settimeout(0.05)
        while not stop.is_set():
            with contextlib.suppress(TimeoutError, OSError):
                if not client.sock.recv(16 * 1024):
                    return
            stop.wait(0.05)

    threads = [threading.Thread(target=trickle, args=(c,)) for c in readers if reads]
    for t in threads:
        t.start()
    try:
        data = {"blob": "q" * 32 * 1024}
        with httpx.Client(base_url=srv.http, timeout=10) as http:
            for _ in range(600):
                http.post(
                    "/api/dashboard/websocket/broadcast",
                    params={"subscription": "system"},
                    json=data,
                ).raise_for_status()
                if metric(srv, "leanvibe_ws_backpressure_disconnects_total") >= len(readers):
                    break
        peak = _memory_kib(srv.proc.pid, "VmHWM")
    finally:
        stop.set()
        for t in threads:
            t.join(10)
        for c in readers:
            c.close()
    per_client = (peak - baseline) * 1024 / len(readers)
    print(
        f"server peak RSS grew {(peak - baseline) / 1024:.1f} MiB for {len(readers)} "
        f"{'trickling' if reads else 'stalled'} readers: {per_client / 1024:.0f} KiB per "
        f"client (bound {bound // 1024} KiB + 256 KiB)"
    )
    assert per_client <= bound + 256 * 1024


def test_a_resume_replay_larger_than_the_byte_bound_is_trimmed_not_cut_off(
    server_factory: Any,
) -> None:
    # 60 updates of about 2 KB are ~120 KB of replay; the client may have 32 KiB waiting.
    bound = 32_768
    srv = server_factory({"WS_SEND_QUEUE_MAX_BYTES": str(bound), "WS_RATE_BURST": "1000"})
    seqs = []
    with httpx.Client(base_url=srv.http, timeout=10) as http:
        for i in range(60):
            r = http.post(
                "/api/dashboard/websocket/broadcast",
                params={"subscription": "tasks"},
                json={"n": i, "pad": "r" * 2000},
            )
            seqs.append(r.json()["seq"])
    with Client(srv.ws + f"?subscriptions=tasks&resume=tasks:{seqs[0] - 1}") as c:
        assert c.recv()["type"] == "connection_established"
        resync = c.recv_until("resync_required")
        replayed = []
        while len(replayed) < 60 and (not replayed or replayed[-1] != seqs[-1]):
            replayed.append(c.recv_until("task_update")["seq"])
        assert resync["oldest_seq"] == replayed[0] > seqs[0]
        assert replayed == seqs[seqs.index(replayed[0]) :]  # the newest, in order, no gap
        assert sum(2000 for _ in replayed) <= bound
        assert c.request({"type": "ping"})["type"] == "pong"  # still connected
    assert metric(srv, "leanvibe_ws_backpressure_disconnects_total") == 0


def test_the_bytes_waiting_for_a_stalled_reader_are_measured_within_the_bound(
    server_factory: Any,
) -> None:
    # A bound above what the kernel's buffers take (a few MiB on loopback), so the backlog
    # stays in the server, measured, and nobody is cut off.
    bound = 16 * 1_048_576
    srv = server_factory({"WS_SEND_TIMEOUT_SECONDS": "60", "WS_SEND_QUEUE_MAX_BYTES": str(bound)})
    stalled = StalledClient(srv.ws + "?subscriptions=agents", rcvbuf=4096)
    with httpx.Client(base_url=srv.http, timeout=10) as http:
        for i in range(256):  # 8 MB
            http.post(
                "/api/dashboard/websocket/broadcast",
                params={"subscription": "agents"},
                json={"n": i, "pad": "w" * 32_000},
            ).raise_for_status()
        deadline = time.monotonic() + 20
        waiting = 0.0
        while waiting == 0.0:  # the watchdog measures once a second
            assert time.monotonic() < deadline, "the gauge never showed the backlog"
            time.sleep(0.2)
            waiting = metric(srv, "leanvibe_ws_send_queue_bytes_max")
    stalled.close()
    assert 0 < waiting <= bound
    assert metric(srv, "leanvibe_ws_backpressure_disconnects_total") == 0
