"""Runtime limit controls on a real server: the admin token, bad input, live connections."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.procs import ServerProcess, start_server
from tests.wsclient import Client, StalledClient, check_server_frame, metric

pytestmark = pytest.mark.integration

ADMIN = "admin-secret"
CLIENT = "client-secret"
LIMITS = "/api/dashboard/websocket/limits"
CONNECTIONS = "/api/dashboard/websocket/connections"
AS_ADMIN = {"Authorization": f"Bearer {ADMIN}"}
# The client token is set without being required, so test clients connect without one.
TOKENS = {"WS_ADMIN_TOKEN": ADMIN, "WS_AUTH_TOKEN": CLIENT}


@pytest.fixture(scope="module")
def admin_server() -> Iterator[ServerProcess]:
    """A server with an admin token, shared by the tests that change nothing lasting."""
    proc = start_server(TOKENS)
    yield proc
    proc.stop()


def patch(srv: ServerProcess, body: Any, headers: dict[str, str] | None = None) -> httpx.Response:
    content = body if isinstance(body, bytes | str) else json.dumps(body)
    return httpx.patch(
        srv.http + LIMITS,
        content=content,
        headers={"Content-Type": "application/json", **(AS_ADMIN if headers is None else headers)},
        timeout=10,
    )


def listing(srv: ServerProcess, **params: str) -> dict[str, Any]:
    r = httpx.get(srv.http + CONNECTIONS, params=params, headers=AS_ADMIN, timeout=10)
    assert r.status_code == 200, r.text
    page: dict[str, Any] = r.json()
    return page


def wait_for(check: Any, what: str, timeout: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def audit_lines(srv: ServerProcess) -> list[dict[str, Any]]:
    lines = [json.loads(x) for x in srv.log.read_text().splitlines() if x.startswith("{")]
    return [line for line in lines if line.get("event") == "limits_changed"]


def test_no_token_a_wrong_one_and_the_client_token_are_refused(
    admin_server: ServerProcess,
) -> None:
    before = httpx.get(admin_server.http + LIMITS, timeout=10).json()
    cases = {
        "none": ({}, 401),
        "wrong": ({"Authorization": "Bearer nope"}, 401),
        "other scheme": ({"Authorization": f"Basic {ADMIN}"}, 401),
        "client token": ({"Authorization": f"Bearer {CLIENT}"}, 403),
    }
    for name, (headers, status) in cases.items():
        r = patch(admin_server, {"rate_burst": 2}, headers)
        assert r.status_code == status, (name, r.text)
        listed = httpx.get(admin_server.http + CONNECTIONS, headers=headers, timeout=10)
        assert listed.status_code == status, (name, listed.text)
        if status == 401:
            assert r.headers["www-authenticate"] == "Bearer"
    assert httpx.get(admin_server.http + LIMITS, timeout=10).json() == before
    assert audit_lines(admin_server) == []


def test_without_an_admin_token_the_admin_routes_are_off(server: ServerProcess) -> None:
    r = patch(server, {"rate_burst": 2}, {})
    assert r.status_code == 403
    assert "WS_ADMIN_TOKEN" in r.json()["detail"]
    assert httpx.get(server.http + CONNECTIONS, timeout=10).status_code == 403


BAD_BODIES: list[tuple[str, bytes | str, str]] = [
    ("empty", b"", ""),
    ("not json", b"rate_burst=10", ""),
    ("array", b"[1]", ""),
    ("number", b"7", ""),
    ("empty object", b"{}", ""),
    ("unknown key", b'{"rate_brust": 10}', "rate_brust"),
    ("start-up only", b'{"max_frame_bytes": 10}', "max_frame_bytes"),
    ("a word", b'{"rate_burst": "ten"}', "rate_burst"),
    ("a boolean", b'{"send_queue_max_bytes": true}', "send_queue_max_bytes"),
    ("a fraction of frames", b'{"send_queue_max_messages": 2.5}', "send_queue_max_messages"),
    ("below one", b'{"rate_burst": 0.5}', "rate_burst"),
    ("zero", b'{"idle_disconnect_seconds": 0}', "idle_disconnect_seconds"),
    ("negative", b'{"rate_tokens_per_sec": -1}', "rate_tokens_per_sec"),
    ("infinite", b'{"idle_disconnect_seconds": 1e999}', "idle_disconnect_seconds"),
    ("one good one bad", b'{"rate_burst": 5, "send_queue_max_bytes": -1}', "send_queue_max_bytes"),
    ("twice", b'{"rate_burst": 5, "rate_burst": 6}', "rate_burst"),
    ("a lone surrogate", b'{"\\ud800": 1}', "\\ud800"),
]


def test_bad_bodies_get_400_naming_the_key_and_change_nothing(
    admin_server: ServerProcess,
) -> None:
    before = httpx.get(admin_server.http + LIMITS, timeout=10).json()
    for name, body, key in BAD_BODIES:
        r = patch(admin_server, body)
        assert r.status_code == 400, (name, r.text)
        answer = r.json()
        assert answer["key"] == key, (name, answer)
        assert key in answer["detail"], (name, answer)
    too_big = json.dumps({"rate_burst": 5, "pad": "x" * 70_000})
    assert patch(admin_server, too_big).status_code == 413
    r = httpx.patch(
        admin_server.http + LIMITS,
        content=b'{"rate_burst": 5}',
        headers={**AS_ADMIN, "Content-Type": "text/plain"},
        timeout=10,
    )
    assert r.status_code == 415
    assert httpx.get(admin_server.http + LIMITS, timeout=10).json() == before
    assert audit_lines(admin_server) == []


def test_bad_page_queries_get_400_naming_the_parameter(server_factory: Any) -> None:
    srv = server_factory({**TOKENS, "WS_CONNECTIONS_PAGE_MAX": "3"})
    for params, key in [
        ({"limit": "4"}, "limit"),
        ({"limit": "0"}, "limit"),
        ({"limit": "two"}, "limit"),
        ({"cursor": "x"}, "cursor"),
        # Review 14: int() reads an Arabic-Indic 1 and a fullwidth 5; neither is an integer.
        ({"limit": "\u0661"}, "limit"),
        ({"limit": "\uff15"}, "limit"),
        ({"cursor": "\u0661"}, "cursor"),
    ]:
        r = httpx.get(srv.http + CONNECTIONS, params=params, headers=AS_ADMIN, timeout=10)
        assert (r.status_code, r.json()["key"]) == (400, key), params
    # Not UTF-8: refused before the route reads it (Starlette would make it U+FFFD).
    r = httpx.get(srv.http + CONNECTIONS + "?limit=%FF", headers=AS_ADMIN, timeout=10)
    assert (r.status_code, r.json()["key"]) == (400, "limit")


def test_a_change_is_shown_audited_counted_and_taken_by_live_and_new_connections(
    server_factory: Any,
) -> None:
    srv = server_factory(TOKENS)
    with Client(srv.ws + "?subscriptions=agents") as live:
        assert live.recv()["type"] == "connection_established"
        assert listing(srv)["connections"][0]["tokens_left"] == 40
        r = patch(
            srv, {"rate_burst": 2, "rate_tokens_per_sec": 0.01, "send_queue_max_messages": 64}
        )
        assert r.status_code == 200, r.text
        answer = r.json()
        assert answer["changed"] == {
            "rate_burst": {"old": 40.0, "new": 2.0},
            "rate_tokens_per_sec": {"old": 20.0, "new": 0.01},
            "send_queue_max_messages": {"old": 1024, "new": 64},
        }
        assert (answer["connections"], answer["cut_off"]) == (1, 0)
        limits = httpx.get(srv.http + LIMITS, timeout=10).json()
        assert answer["limits"] == limits
        assert limits["rate_limit_burst_capacity"] == 2
        assert limits["rate_limit_tokens_per_second"] == 0.01
        assert limits["send_queue_max_messages"] == 64
        # The live connection's bucket now holds two tokens: two pongs, then the limit.
        assert listing(srv)["connections"][0]["tokens_left"] <= 2
        assert live.request({"type": "ping"})["type"] == "pong"
        assert live.request({"type": "ping"})["type"] == "pong"
        live.send({"type": "ping"})
        refused = live.recv_until("error")
        assert refused["message"] == "Rate limit exceeded"
        with Client(srv.ws) as late:
            assert late.recv()["type"] == "connection_established"
            tokens = sorted(c["tokens_left"] for c in listing(srv)["connections"])
            assert tokens[-1] == pytest.approx(2, abs=0.05)  # a new connection: the new burst
    for key in ("rate_burst", "rate_tokens_per_sec", "send_queue_max_messages"):
        assert metric(srv, "leanvibe_ws_limit_changes_total", {"setting": key}) == 1
    (line,) = audit_lines(srv)
    assert line["who"] == "admin" and line["peer"].startswith("127.0.0.1:")
    assert line["changed"]["rate_burst"] == {"old": 40.0, "new": 2.0}
    assert (line["connections"], line["cut_off"]) == (1, 0)


def test_the_answer_and_the_audit_line_report_the_value_in_force_with_its_type(
    server_factory: Any,
) -> None:
    # Review 14: LimitChange.new is "the value in force now"; 9007199254740993 came back as
    # 9007199254740992.0, and 1024 as 1024.0.
    srv = server_factory(TOKENS)
    value = 2**53 + 1
    r = patch(srv, {"send_queue_max_messages": value})
    assert r.status_code == 200, r.text
    assert httpx.get(srv.http + LIMITS, timeout=10).json()["send_queue_max_messages"] == value
    assert '"old":1024,' in r.text.replace(" ", "")
    assert r.json()["changed"]["send_queue_max_messages"] == {"old": 1024, "new": value}
    (line,) = audit_lines(srv)
    assert line["changed"]["send_queue_max_messages"] == {"old": 1024, "new": value}
    # The same values again change nothing: audited as such, never as a change.
    again = patch(srv, {"send_queue_max_messages": value})
    assert (again.status_code, again.json()["changed"]) == (200, {})
    assert len(audit_lines(srv)) == 1
    lines = [json.loads(x) for x in srv.log.read_text().splitlines() if x.startswith("{")]
    (unchanged,) = [x for x in lines if x.get("event") == "limits_unchanged"]
    assert unchanged["changed"] == {}
    assert (
        metric(srv, "leanvibe_ws_limit_changes_total", {"setting": "send_queue_max_messages"}) == 1
    )


def test_a_number_too_long_to_read_is_refused_naming_its_key(admin_server: ServerProcess) -> None:
    # Review 14: valid JSON that int() refuses (over 4300 digits) got "not valid JSON text"
    # with key "".
    r = patch(admin_server, b'{"rate_burst": 1' + b"0" * 5000 + b"}")
    assert r.status_code == 400
    assert r.json()["key"] == "rate_burst", r.text


def test_a_shorter_idle_timeout_closes_a_quiet_live_client(server_factory: Any) -> None:
    srv = server_factory(TOKENS)
    with Client(srv.ws) as quiet:
        assert quiet.recv()["type"] == "connection_established"
        wait_for(lambda: listing(srv)["connections"][0]["idle_seconds"] >= 1, "a second of quiet")
        started = time.monotonic()
        assert patch(srv, {"idle_disconnect_seconds": 1}).status_code == 200
        notice = quiet.recv_until("disconnect_notice", timeout=5)
        assert notice["reason"] == "idle_timeout"
        assert quiet.close_code() == 1000
        # The watchdog passes at least once a second.
        assert time.monotonic() - started < 3
    assert metric(srv, "leanvibe_ws_idle_disconnects_total") == 1


def test_the_listing_pages_through_every_connection_and_shows_nothing_secret(
    server_factory: Any,
) -> None:
    srv = server_factory({**TOKENS, "WS_CONNECTIONS_PAGE_MAX": "2"})
    subs = ["agents", "tasks", "system", "alerts", "agents,alerts"]
    clients = [Client(f"{srv.ws}?subscriptions={s}") for s in subs]
    try:
        ids = [c.recv()["connection_id"] for c in clients]
        seen: list[dict[str, Any]] = []
        cursor: str | None = None
        pages = 0
        while True:
            page = listing(srv, **({"cursor": cursor} if cursor else {}))
            pages += 1
            assert len(page["connections"]) <= 2 and page["total"] == 5
            seen += page["connections"]
            cursor = page["next_cursor"]
            if cursor is None:
                break
            assert pages < 10, "the cursor never ended"
        assert pages == 3
        assert [c["connection_id"] for c in seen] == ids  # accept order, each once
        assert [",".join(c["subscriptions"]) for c in seen] == subs
        for entry in seen:
            assert set(entry) == {
                "connection_id",
                "subscriptions",
                "tokens_left",
                "backlog_frames",
                "backlog_bytes",
                "idle_seconds",
            }
            assert entry["backlog_frames"] == entry["backlog_bytes"] == 0
        # A client that leaves between two pages makes the next page skip nobody.
        first = listing(srv, limit="2")
        clients[0].__exit__(None, None, None)
        wait_for(lambda: listing(srv)["total"] == 4, "the first client to leave")
        rest = listing(srv, cursor=first["next_cursor"])
        assert [c["connection_id"] for c in rest["connections"]] == ids[2:4]
        text = httpx.get(srv.http + CONNECTIONS, headers=AS_ADMIN, timeout=10).text
        assert ADMIN not in text and CLIENT not in text
    finally:
        for client in clients[1:]:
            client.__exit__(None, None, None)


@pytest.mark.slow
def test_a_queue_bound_lowered_below_a_backlog_is_backpressure_at_once(
    server_factory: Any,
) -> None:
    srv = server_factory({**TOKENS, "WS_SEND_TIMEOUT_SECONDS": "60"})
    stalled = StalledClient(srv.ws + "?subscriptions=system")
    pad = "y" * 30_000
    try:
        with (
            # max_queue=None: the client's reader thread never stops reading, so this one
            # client's backlog stays empty while the test publishes.
            Client(srv.ws + "?subscriptions=system", max_queue=None) as healthy,
            httpx.Client(base_url=srv.http, headers=AS_ADMIN, timeout=10) as http,
        ):
            assert healthy.recv()["type"] == "connection_established"
            stalled_id = listing(srv)["connections"][0]["connection_id"]

            def backlog() -> int:
                for entry in listing(srv)["connections"]:
                    if entry["connection_id"] == stalled_id:
                        return int(entry["backlog_bytes"])
                raise AssertionError("the stalled client is gone")

            sent = 0
            while backlog() < 100_000:
                http.post(
                    "/api/dashboard/websocket/broadcast",
                    params={"subscription": "system"},
                    json={"n": sent, "pad": pad},
                ).raise_for_status()
                sent += 1
                assert sent < 500, "the stalled client's backlog never grew"
            # The healthy client reads everything, so only the stalled one has a backlog.
            for _ in range(sent):
                assert healthy.recv_until("system_update")["type"] == "system_update"
            r = patch(srv, {"send_queue_max_bytes": 65_536})
            assert r.status_code == 200, r.text
            assert (r.json()["connections"], r.json()["cut_off"]) == (2, 1)
            remaining = listing(srv)
            assert [c["connection_id"] for c in remaining["connections"]] != [stalled_id]
            assert remaining["total"] == 1
            assert healthy.request({"type": "ping"})["type"] == "pong"
        frames = list(stalled.drain(timeout=20))
    finally:
        stalled.close()
    code, notice = frames[-1], frames[-2]
    assert isinstance(notice, dict)
    check_server_frame(notice)
    assert (notice["type"], notice["reason"], code) == ("disconnect_notice", "backpressure", 1013)
    assert metric(srv, "leanvibe_ws_backpressure_disconnects_total") == 1


def test_a_change_applies_to_the_instance_that_takes_it_not_its_redis_peers(
    server_factory: Any, redis_server: Any
) -> None:
    shared = {**TOKENS, "REDIS_URL": redis_server.url}
    first, second = server_factory(shared), server_factory(shared)
    with Client(second.ws + "?subscriptions=agents") as elsewhere:
        assert elsewhere.recv()["type"] == "connection_established"
        r = patch(first, {"rate_burst": 3})
        assert (r.status_code, r.json()["connections"]) == (200, 0)
        assert httpx.get(first.http + LIMITS, timeout=10).json()["rate_limit_burst_capacity"] == 3
        assert httpx.get(second.http + LIMITS, timeout=10).json()["rate_limit_burst_capacity"] == 40
        assert listing(second)["connections"][0]["tokens_left"] == 40
        assert listing(first)["total"] == 0  # each instance lists its own connections
    assert audit_lines(second) == []
