"""The reference server over real sockets: frames, errors, limits, REST, metrics.

Every test talks to a real `python -m reference_server` process through real uvicorn; every
frame received is validated against the schema by `tests.wsclient.Client`.
"""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from websockets.exceptions import ConnectionClosed

from reference_server.messages import SUBSCRIPTIONS
from tests.procs import ServerProcess
from tests.wsclient import Client, metric

pytestmark = pytest.mark.integration


def publish(server: ServerProcess, subscription: str, data: dict[str, Any], **params: str) -> Any:
    response = httpx.post(
        f"{server.http}/api/dashboard/websocket/broadcast",
        params={"subscription": subscription, **params},
        json=data,
        headers={"X-Correlation-ID": "pub-1"},
        timeout=10,
    )
    response.raise_for_status()
    return response.json()


def test_connection_established_comes_first(server: ServerProcess) -> None:
    with Client(server.ws) as c:
        first = c.recv()
        assert first["type"] == "connection_established"
        assert first["subscriptions"] == ["agents", "coordination", "system", "tasks"]
        assert first["contract_version"] == "1.2.0"


def test_connection_ids_are_chosen_by_the_server_and_unique(server: ServerProcess) -> None:
    with Client(server.ws + "?connection_id=mine") as a, Client(server.ws) as b:
        ids = {a.recv()["connection_id"], b.recv()["connection_id"]}
    assert len(ids) == 2 and "mine" not in ids


def test_query_subscriptions_are_validated_like_a_subscribe(server: ServerProcess) -> None:
    with Client(server.ws + "?subscriptions=alerts,bogus") as c:
        assert c.recv()["subscriptions"] == ["alerts"]
        err = c.recv()
        assert (err["code"], err["message"]) == (
            "invalid_subscription",
            "Invalid subscription(s): bogus",
        )


def test_ping_subscribe_unsubscribe_and_errors_keep_the_connection(server: ServerProcess) -> None:
    with Client(server.ws + "?subscriptions=") as c:
        c.recv()
        pong = c.request({"type": "ping"})
        assert pong["type"] == "pong"
        c.send(
            {"type": "subscribe", "subscriptions": ["tasks", "x", "agents"], "correlation_id": "s1"}
        )
        err, upd = c.recv(), c.recv()
        assert (err["type"], err["message"], err["correlation_id"]) == (
            "error",
            "Invalid subscription(s): x",
            "s1",
        )
        assert (upd["type"], upd["subscriptions"]) == ("subscription_updated", ["agents", "tasks"])
        upd = c.request({"type": "unsubscribe", "subscriptions": ["tasks", "nope"]})
        assert upd["subscriptions"] == ["agents"]
        assert c.request({"type": "subscribe", "subscriptions": 42})["code"] == "invalid_field"
        unknown = c.request({"type": "launch_rockets"})
        assert unknown["message"] == "Unknown message type: launch_rockets"
        c.send("{not json")
        assert c.recv()["message"] == "Invalid JSON message format"
        c.send("[1,2,3]")
        assert c.recv()["message"] == "Invalid JSON message format"
        c.send(b"\x89PNG")
        assert c.recv()["code"] == "binary_not_supported"
        c.send("[" * 20_000 + "]" * 20_000)
        assert c.recv()["code"] == "invalid_json"
        c.send('{"type":"ping","n":' + "1" * 10_000 + "}")
        assert c.recv()["code"] == "invalid_json"
        assert c.request({"type": "ping"})["type"] == "pong"


def test_the_64_kib_boundary(server: ServerProcess) -> None:
    with Client(server.ws, max_size=None) as c:
        c.recv()
        head = '{"type":"ping","correlation_id":"big","pad":"'
        exact = head + "x" * (65_536 - len(head) - 2) + '"}'
        assert len(exact.encode()) == 65_536
        c.send(exact)
        assert c.recv_until("pong")["correlation_id"] == "big"
        c.send(exact[:-2] + 'x"}')
        assert c.recv_until("error")["message"] == "Message too large"
        assert c.request({"type": "ping"})["type"] == "pong"
        c.send("x" * 1_000_000)  # far over: the transport refuses it
        assert c.close_code() == 1009


def test_updates_reach_subscribers_with_the_publisher_correlation_id(server: ServerProcess) -> None:
    with (
        Client(server.ws + "?subscriptions=tasks") as a,
        Client(server.ws + "?subscriptions=tasks") as b,
    ):
        a.recv(), b.recv()
        ack = publish(server, "tasks", {"task_id": "t-1", "status": "done"})
        assert ack["status"] == "published" and ack["seq"] >= 1
        for c in (a, b):
            frame = c.recv_until("task_update")
            assert frame["data"] == {"task_id": "t-1", "status": "done"}
            assert (frame["correlation_id"], frame["seq"]) == ("pub-1", ack["seq"])


def test_broadcast_refuses_bad_input_with_clear_4xx(server: ServerProcess) -> None:
    url = f"{server.http}/api/dashboard/websocket/broadcast"
    r = httpx.post(url, params={"subscription": "weather"}, json={})
    assert r.status_code == 422 and set(r.json()["valid_subscriptions"]) == set(SUBSCRIPTIONS)
    json_type = {"Content-Type": "application/json"}
    r = httpx.post(url, params={"subscription": "agents"}, content=b"[1]", headers=json_type)
    assert r.status_code == 422
    r = httpx.post(url, params={"subscription": "agents", "message_type": "pong"}, json={})
    assert r.status_code == 422
    r = httpx.post(url, params={"subscription": "alerts"}, json={"no": "alerts"})
    assert r.status_code == 422
    r = httpx.post(
        url,
        params={"subscription": "agents"},
        content=b'{"a":"' + b"x" * 70_000 + b'"}',
        headers=json_type,
    )
    assert r.status_code == 413


def test_request_data_answers_from_live_state(server: ServerProcess) -> None:
    publish(server, "agents", {"agent_id": "agent-x", "status": "busy"})
    with Client(server.ws) as c:
        c.recv()
        reply = c.request(
            {"type": "request_data", "data_type": "agent_status", "params": {"agent_id": "agent-x"}}
        )
        assert reply["type"] == "data_response"
        assert reply["data"]["agents"][0]["status"] == "busy"
        metrics = c.request({"type": "request_data", "data_type": "coordination_metrics"})
        assert metrics["data"]["connections"] >= 1
        assert metrics["data"]["subscribers"]["agents"] >= 1
        health = c.request({"type": "request_data", "data_type": "system_health"})
        assert health["data"]["status"] == "healthy"
        missing = c.request(
            {"type": "request_data", "data_type": "agent_status", "params": {"agent_id": "nobody"}}
        )
        assert missing["type"] == "data_error"


def test_a_snapshot_carries_its_positions_and_a_resume_from_them_gets_exactly_what_follows(
    server: ServerProcess,
) -> None:
    seqs = [publish(server, "agents", {"agent_id": f"p-{i}", "n": i})["seq"] for i in range(3)]
    with Client(server.ws + "?subscriptions=") as c:
        c.recv()
        snap = c.request({"type": "request_data", "data_type": "agent_status"})
        assert snap["positions"] == {"agents": seqs[-1]}
        assert {"p-0", "p-1", "p-2"} <= {a["agent_id"] for a in snap["data"]["agents"]}
        rest = httpx.get(f"{server.http}/api/dashboard/data/agent_status").json()
        assert (rest["data"], rest["positions"]) == (snap["data"], snap["positions"])
        health = c.request({"type": "request_data", "data_type": "system_health"})
        assert health["positions"] == {}
        metrics = c.request({"type": "request_data", "data_type": "coordination_metrics"})
        assert sorted(metrics["positions"]) == sorted(SUBSCRIPTIONS)
        assert metrics["positions"]["agents"] == seqs[-1]
        assert metrics["data"]["latest_seq"] == metrics["positions"]
        # Published after the snapshot, before the subscribe: the resume replays it.
        later = publish(server, "agents", {"agent_id": "p-3"})["seq"]
        c.request({"type": "subscribe", "subscriptions": ["agents"], "resume": snap["positions"]})
        after = publish(server, "agents", {"agent_id": "p-4"})["seq"]
        got = [c.recv_until("agent_update")["seq"] for _ in range(2)]
        assert got == [later, after] == [seqs[-1] + 1, seqs[-1] + 2]
        with pytest.raises(TimeoutError):
            c.recv(timeout=0.3)  # nothing repeated


def test_a_resume_from_a_position_ahead_of_every_update_gets_resync_required_then_live(
    server: ServerProcess,
) -> None:
    latest = publish(server, "agents", {"agent_id": "ahead"})["seq"]
    ahead = 2**53 - 1  # the largest position the schema allows; no update has it
    with Client(server.ws + "?subscriptions=") as c:
        c.recv()
        c.request({"type": "subscribe", "subscriptions": ["agents"], "resume": {"agents": ahead}})
        resync = c.recv_until("resync_required")
        assert (resync["last_seq"], resync["latest_seq"]) == (ahead, latest)
        nxt = publish(server, "agents", {"agent_id": "ahead"})["seq"]
        assert c.recv_until("agent_update")["seq"] == nxt == latest + 1


def test_the_rest_snapshot_refuses_unknown_types_and_agents_by_name(server: ServerProcess) -> None:
    base = f"{server.http}/api/dashboard/data"
    weather = httpx.get(f"{base}/weather")
    assert (weather.status_code, weather.json()["detail"]) == (404, "Unknown data type: weather")
    nobody = httpx.get(f"{base}/agent_status", params={"agent_id": "nobody"})
    assert (nobody.status_code, nobody.json()["detail"]) == (404, "Unknown agent: nobody")
    health = httpx.get(f"{base}/system_health").json()
    assert (health["data"]["status"], health["positions"]) == ("healthy", {})


def test_rest_endpoints(server: ServerProcess) -> None:
    health = httpx.get(f"{server.http}/health").json()
    assert health["status"] == "healthy"
    assert health["ws_contract_version"] == health["contract_version"]
    assert health["components"]["broker"]["kind"] == "memory"
    limits = httpx.get(f"{server.http}/api/dashboard/websocket/limits").json()
    for key in (
        "rate_limit_tokens_per_second",
        "rate_limit_burst_capacity",
        "rate_limit_notify_cooldown_seconds",
        "max_inbound_message_bytes",
        "max_subscriptions_per_connection",
        "backpressure_disconnect_threshold",
        "idle_disconnect_seconds",
        "send_queue_max_messages",
        "contract_version",
    ):
        assert key in limits
    contract = httpx.get(f"{server.http}/api/dashboard/websocket/contract").json()
    assert "1.0.0" in contract["supported_versions"]
    assert contract["current_version"] in contract["supported_versions"]
    stats = httpx.get(f"{server.http}/api/dashboard/websocket/stats").json()
    assert set(stats["subscriptions"]) == set(SUBSCRIPTIONS)


def test_metrics_are_prometheus_text_with_real_values(server: ServerProcess) -> None:
    before = metric(server, "leanvibe_ws_messages_sent_total")
    with Client(server.ws) as c:
        c.recv()
        c.request({"type": "ping"})
        c.send("oops")
        c.recv()
    text = httpx.get(f"{server.http}/api/dashboard/metrics/websockets").text
    families = {f.name: f for f in text_string_to_metric_families(text)}
    for name in (
        "leanvibe_ws_messages_sent",
        "leanvibe_ws_messages_send_failures",
        "leanvibe_ws_messages_received",
        "leanvibe_ws_messages_dropped_rate_limit",
        "leanvibe_ws_errors_sent",
        "leanvibe_ws_connections",
        "leanvibe_ws_disconnections",
        "leanvibe_ws_backpressure_disconnects",
        "leanvibe_ws_auth_denied",
        "leanvibe_ws_origin_denied",
        "leanvibe_ws_idle_disconnects",
        "leanvibe_ws_bytes_sent",
        "leanvibe_ws_bytes_received",
    ):
        assert families[name].type == "counter", name
    assert families["leanvibe_ws_active_connections"].type == "gauge"
    assert families["leanvibe_ws_publish_to_send_seconds"].type == "histogram"
    gauges = [f.name for f in families.values() if f.type == "gauge"]
    assert not [g for g in gauges if g.endswith("_total")]
    assert metric(server, "leanvibe_ws_messages_sent_total") >= before + 2
    assert metric(server, "leanvibe_ws_errors_sent_total") >= 1


def test_rate_limit_drops_then_notifies_once_then_cuts_off_a_flood(server_factory: Any) -> None:
    # A refill slow enough that a loaded machine sending the 60 frames slowly still sees
    # exactly the burst pass; the defaults are covered by the session's unit tests.
    server = server_factory({"WS_RATE_TOKENS_PER_SEC": "0.01"})
    dropped_before = metric(server, "leanvibe_ws_messages_dropped_rate_limit_total")
    with Client(server.ws + "?subscriptions=") as c:
        c.recv()
        for _ in range(60):
            c.send('{"type":"ping"}')
        replies = [c.recv() for _ in range(41)]
        kinds = [r["type"] for r in replies]
        assert kinds.count("pong") == 40
        assert [r["message"] for r in replies if r["type"] == "error"] == ["Rate limit exceeded"]
        for _ in range(400):
            try:
                c.send('{"type":"ping"}')
            except ConnectionClosed:
                break
        notice = c.recv_until("disconnect_notice", timeout=10)
        assert notice["reason"] == "rate_limited"
        assert c.close_code() == 1008
    assert metric(server, "leanvibe_ws_messages_dropped_rate_limit_total") >= dropped_before + 200


def test_a_flooding_client_does_not_disturb_its_neighbours(server: ServerProcess) -> None:
    stop = threading.Event()

    def flood() -> None:
        with Client(server.ws + "?subscriptions=") as f:
            f.recv()
            while not stop.is_set():
                try:
                    f.send('{"type":"ping"}')
                except ConnectionClosed:
                    return

    with Client(server.ws + "?subscriptions=system") as calm:
        calm.recv()
        flooder = threading.Thread(target=flood)
        flooder.start()
        try:
            seqs = [publish(server, "system", {"n": i})["seq"] for i in range(50)]
            got = [calm.recv_until("system_update")["seq"] for _ in seqs]
            assert got == seqs
            assert calm.request({"type": "ping"})["type"] == "pong"
        finally:
            stop.set()
            flooder.join(10)


def test_auth_is_checked_after_accept_so_browsers_can_read_4401(server_factory: Any) -> None:
    srv = server_factory({"WS_AUTH_REQUIRED": "true", "WS_AUTH_TOKEN": "tok-123"})
    with Client(srv.ws) as c:
        assert c.recv()["reason"] == "unauthorized"
        assert c.close_code() == 4401
    with Client(srv.ws + "?access_token=wrong") as c:
        assert c.close_code() == 4401
    with Client(srv.ws + "?access_token=tok-123") as c:
        assert c.recv()["type"] == "connection_established"
    with Client(srv.ws, additional_headers={"Authorization": "Bearer tok-123"}) as c:
        assert c.recv()["type"] == "connection_established"
    url = f"{srv.http}/api/dashboard/websocket/broadcast"
    assert httpx.post(url, params={"subscription": "agents"}, json={}).status_code == 401
    ok = httpx.post(
        url, params={"subscription": "agents"}, json={}, headers={"Authorization": "Bearer tok-123"}
    )
    assert ok.status_code == 200
    assert metric(srv, "leanvibe_ws_auth_denied_total") == 2
    # The snapshot route shows state only to a client that may connect.
    data = f"{srv.http}/api/dashboard/data/agent_status"
    assert httpx.get(data).status_code == 401
    assert httpx.get(data, headers={"Authorization": "Bearer wrong"}).status_code == 401
    snap = httpx.get(data, headers={"Authorization": "Bearer tok-123"})
    assert (snap.status_code, snap.json()["positions"]) == (200, {"agents": ok.json()["seq"]})


def test_origin_allowlist_closes_4403(server_factory: Any) -> None:
    srv = server_factory({"WS_ALLOWED_ORIGINS": "https://dash.example"})
    with Client(srv.ws, origin="https://evil.example") as c:  # type: ignore[arg-type]
        assert c.recv()["reason"] == "forbidden_origin"
        assert c.close_code() == 4403
    with Client(srv.ws, origin="https://dash.example") as c:  # type: ignore[arg-type]
        assert c.recv()["type"] == "connection_established"
    assert metric(srv, "leanvibe_ws_origin_denied_total") == 1


def test_idle_clients_are_closed_1000(server_factory: Any) -> None:
    srv = server_factory({"WS_IDLE_DISCONNECT_SECONDS": "1"})
    with Client(srv.ws) as c:
        c.recv()
        notice = c.recv_until("disconnect_notice", timeout=10)
        assert notice["reason"] == "idle_timeout"
        assert c.close_code() == 1000


def test_resume_replays_missed_updates_then_continues_live(server: ServerProcess) -> None:
    seqs = [publish(server, "coordination", {"n": i})["seq"] for i in range(5)]
    last_seen = seqs[1]
    with Client(server.ws + f"?subscriptions=coordination&resume=coordination:{last_seen}") as c:
        c.recv()
        replayed = [c.recv_until("coordination_update")["seq"] for _ in seqs[2:]]
        assert replayed == seqs[2:]
        live = publish(server, "coordination", {"n": "live"})["seq"]
        assert c.recv_until("coordination_update")["seq"] == live == seqs[-1] + 1


def test_resume_older_than_history_gets_resync_required(server_factory: Any) -> None:
    srv = server_factory({"WS_HISTORY_MAX_MESSAGES": "3"})
    seqs = [publish(srv, "agents", {"agent_id": f"a{i}"})["seq"] for i in range(6)]
    with Client(srv.ws + "?subscriptions=") as c:
        c.recv()
        c.send({"type": "subscribe", "subscriptions": ["agents"], "resume": {"agents": seqs[0]}})
        assert c.recv()["type"] == "subscription_updated"
        resync = c.recv()
        assert resync["type"] == "resync_required"
        assert (resync["last_seq"], resync["oldest_seq"], resync["latest_seq"]) == (
            seqs[0],
            seqs[3],
            seqs[5],
        )
        assert [c.recv()["seq"] for _ in range(3)] == seqs[3:]


def test_a_seq_from_before_a_restart_is_never_reused(server_factory: Any) -> None:
    first = server_factory()
    old = publish(first, "tasks", {"n": 1})["seq"]
    first.stop()
    second = server_factory()
    new = publish(second, "tasks", {"n": 2})["seq"]
    assert new > old
    with Client(second.ws + f"?subscriptions=tasks&resume=tasks:{old}") as c:
        c.recv()
        assert c.recv()["type"] == "resync_required"


def test_json_logs_carry_connection_ids(server: ServerProcess) -> None:
    with Client(server.ws) as c:
        cid = c.recv()["connection_id"]
    time.sleep(0.3)
    lines = [
        json.loads(line) for line in server.log.read_text().splitlines() if line.startswith("{")
    ]
    assert any(line.get("connection_id") == cid and line["event"] == "connected" for line in lines)


@pytest.mark.parametrize("deflate", ["true", "false"])
def test_fan_out_is_correct_with_and_without_permessage_deflate(
    server_factory: Any, deflate: str
) -> None:
    srv = server_factory({"WS_PER_MESSAGE_DEFLATE": deflate})
    clients = [Client(srv.ws + "?subscriptions=system") for _ in range(3)]
    try:
        for c in clients:
            c.recv()
        negotiated = {bool(c.ws.protocol.extensions) for c in clients}
        assert negotiated == {deflate == "true"}
        seqs = [publish(srv, "system", {"i": i, "pad": "z" * i * 50})["seq"] for i in range(30)]
        for c in clients:
            got = [c.recv_until("system_update") for _ in seqs]
            assert [f["seq"] for f in got] == seqs
            assert [f["data"]["i"] for f in got] == list(range(30))
    finally:
        for c in clients:
            c.ws.close()
