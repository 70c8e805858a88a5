"""Review of coalesced writes (issue 13): frames held for the flush must not count against a
client that reads everything, beyond what writing them at once would have left waiting.

Without coalescing, a frame due to a reading client goes to the kernel at once, so nothing
waits in the server. With it (and above all with `WS_WRITE_DELAY_SECONDS`), the frames held
for the flush sit in the outbox's queue and are counted as "waiting" by every decision that
looks at the outbox from outside `put`: the room a resume replay may take, and a runtime
change of the bounds.
"""

from __future__ import annotations

import json
import time
from typing import Any

import httpx
import pytest

from tests.wsclient import Client, metric

pytestmark = pytest.mark.integration

ADMIN = "review-admin-token-0123456789"
PAD = "p" * 2000
#: Bound on the bytes waiting per client: the held updates take most of it.
BOUND = 16_384
#: Updates held for the flush before the decision is taken: about 12 KB of the 16 KiB.
HELD = 6


def post(http: httpx.Client, sub: str, n: int) -> int:
    r = http.post(
        "/api/dashboard/websocket/broadcast",
        params={"subscription": sub},
        json={"n": n, "pad": PAD},
    )
    r.raise_for_status()
    return int(r.json()["seq"])


def test_frames_held_for_the_write_delay_do_not_trim_a_resume_replay(server_factory: Any) -> None:
    srv = server_factory(
        {
            "WS_WRITE_DELAY_SECONDS": "1",
            "WS_SEND_QUEUE_MAX_BYTES": str(BOUND),
            "WS_RATE_BURST": "1000",
        }
    )
    with httpx.Client(base_url=srv.http, timeout=10) as http:
        # History to resume: 5 updates, about 10 KB, well inside the 16 KiB bound.
        history = [post(http, "tasks", i) for i in range(5)]
        with Client(srv.ws + "?subscriptions=agents") as c:
            assert c.recv()["type"] == "connection_established"
            # Live updates on another subscription, held for the write delay (1 s).
            started = time.monotonic()
            live = [post(http, "agents", i) for i in range(HELD)]
            c.send(
                {
                    "type": "subscribe",
                    "subscriptions": ["agents", "tasks"],
                    "resume": {"tasks": history[0] - 1},
                }
            )
            sent_within = time.monotonic() - started
            frames = []
            deadline = time.monotonic() + 10
            while (
                time.monotonic() < deadline
                and sum(f.get("type") == "task_update" for f in frames) < 5
            ):
                try:
                    frames.append(c.recv(timeout=3))
                except Exception:
                    break
            assert sent_within < 0.8, f"the machine was too slow ({sent_within:.2f} s) to test this"
            kinds = [f["type"] for f in frames]
            assert "resync_required" not in kinds, frames
            assert [f["seq"] for f in frames if f["type"] == "task_update"] == history
            assert [f["seq"] for f in frames if f["type"] == "agent_update"] == live
    assert metric(srv, "leanvibe_ws_backpressure_disconnects_total") == 0


def test_a_runtime_bound_change_does_not_cut_off_a_reader_for_frames_held_for_the_flush(
    server_factory: Any,
) -> None:
    srv = server_factory(
        {
            "WS_WRITE_DELAY_SECONDS": "1",
            "WS_SEND_QUEUE_MAX_BYTES": str(BOUND),
            "WS_RATE_BURST": "1000",
            "WS_ADMIN_TOKEN": ADMIN,
        }
    )
    admin = {"Authorization": f"Bearer {ADMIN}"}
    with (
        httpx.Client(base_url=srv.http, timeout=10, headers=admin) as http,
        Client(srv.ws + "?subscriptions=agents") as c,
    ):
        assert c.recv()["type"] == "connection_established"
        started = time.monotonic()
        live = [post(http, "agents", i) for i in range(HELD)]
        r = http.patch(
            "/api/dashboard/websocket/limits",
            content=json.dumps({"send_queue_max_bytes": 8192}),
            headers={"Content-Type": "application/json"},
        )
        sent_within = time.monotonic() - started
        assert r.status_code == 200, r.text
        assert sent_within < 0.8, f"the machine was too slow ({sent_within:.2f} s) to test this"
        got = [c.recv(timeout=5) for _ in live]
        assert [f.get("seq") for f in got] == live, got
        assert r.json()["cut_off"] == 0
    assert metric(srv, "leanvibe_ws_backpressure_disconnects_total") == 0
