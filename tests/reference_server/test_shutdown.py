"""SIGTERM: every client gets disconnect_notice and close 1001, within a bounded time."""

from __future__ import annotations

import signal
import time
from typing import Any

import httpx
import pytest

from tests.wsclient import Client

pytestmark = [pytest.mark.integration]


def test_sigterm_sends_notice_and_1001_to_every_client(server_factory: Any) -> None:
    srv = server_factory({"WS_SHUTDOWN_GRACE_SECONDS": "3"})
    clients = [Client(srv.ws) for _ in range(5)]
    for c in clients:
        assert c.recv()["type"] == "connection_established"
    started = time.monotonic()
    srv.proc.send_signal(signal.SIGTERM)
    for c in clients:
        notice = c.recv_until("disconnect_notice", timeout=10)
        assert notice["reason"] == "server_shutdown"
        assert c.close_code() == 1001
    # uvicorn re-raises the signal once shut down, so the exit status says SIGTERM.
    assert srv.proc.wait(15) in (0, -signal.SIGTERM)
    assert time.monotonic() - started < 3 + 5


@pytest.mark.parametrize(
    "hold",
    [{"WS_WRITE_DELAY_SECONDS": "1"}, {"WS_WRITE_COALESCE_WINDOW_SECONDS": "1"}],
    ids=["write-delay", "coalesce-window"],
)
def test_sigterm_writes_frames_held_for_the_flush_before_the_notice(
    server_factory: Any, hold: dict[str, str]
) -> None:
    # TooTallNate/Java-WebSocket#983 and socketio/engine.io#293: messages queued just before
    # a server-side close never reached the client. Held frames must go out first.
    srv = server_factory({"WS_SHUTDOWN_GRACE_SECONDS": "3", "WS_RATE_BURST": "1000", **hold})
    with Client(srv.ws + "?subscriptions=agents") as c:
        assert c.recv()["type"] == "connection_established"
        with httpx.Client(base_url=srv.http, timeout=10) as http:
            seqs = []
            for i in range(3):  # held up to 1 s: all three by the delay, two by the window
                r = http.post(
                    "/api/dashboard/websocket/broadcast",
                    params={"subscription": "agents"},
                    json={"n": i},
                )
                r.raise_for_status()
                seqs.append(int(r.json()["seq"]))
        srv.proc.send_signal(signal.SIGTERM)
        frames = []
        while not frames or frames[-1].get("type") != "disconnect_notice":
            frames.append(c.recv(timeout=10))
        assert [f["seq"] for f in frames if f["type"] == "agent_update"] == seqs
        assert frames[-1]["reason"] == "server_shutdown"
        assert c.close_code() == 1001
    assert srv.proc.wait(15) in (0, -signal.SIGTERM)
