"""HTTP edges over real sockets: HEAD, the content type and Origin of writes, body size.

Before: HEAD on a GET endpoint got 405 (health checkers read "down"); any web page could
publish a fake `critical_alert` as `text/plain`, a CORS simple request without preflight;
a 200 MB POST grew the server by about 350 MB before its 413.
"""

from __future__ import annotations

import contextlib
import socket
import time
from typing import Any

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reference_server.app import create_app
from tests.procs import ServerProcess
from tests.wsclient import Client, metric

pytestmark = pytest.mark.integration

PUBLISH = "/api/dashboard/websocket/broadcast"
ALERT = b'{"alerts": [{"id": "fake", "message": "evacuate"}]}'
# GET routes for the admin token only: off (403) on a server without one, HEAD included.
ADMIN_ONLY = frozenset({"/api/dashboard/websocket/connections"})


def _get_paths() -> list[str]:
    """Every GET route of the app, read from the app itself (none can be forgotten)."""
    paths = []
    for route in create_app().routes:
        methods = getattr(route, "methods", None) or set()
        if "GET" in methods and "{" not in route.path:  # type: ignore[attr-defined]
            paths.append(route.path)  # type: ignore[attr-defined]
    return sorted(paths)


def test_every_get_endpoint_is_listed() -> None:
    assert "/health" in _get_paths() and "/api/dashboard/metrics/websockets" in _get_paths()


@pytest.mark.parametrize("path", _get_paths())
def test_head_answers_like_get_without_a_body(server: ServerProcess, path: str) -> None:
    get = httpx.get(server.http + path, timeout=10)
    head = httpx.head(server.http + path, timeout=10)
    assert head.status_code == get.status_code == (403 if path in ADMIN_ONLY else 200)
    assert head.headers["content-type"] == get.headers["content-type"]
    assert head.content == b""
    assert int(head.headers["content-length"]) > 0  # the length GET's body would have


def test_head_on_a_post_only_path_is_405_like_get(server: ServerProcess) -> None:
    assert httpx.head(server.http + PUBLISH, timeout=10).status_code == 405


@pytest.mark.parametrize(
    "content_type",
    [
        "text/plain",  # what a page's fetch() or a form with enctype=text/plain sends
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
        None,  # fetch() with a Blob body of no type sends none, and needs no preflight
        "application/jsonx",
    ],
)
def test_publish_refuses_every_type_but_json_and_publishes_nothing(
    server: ServerProcess, content_type: str | None
) -> None:
    headers = {"Content-Type": content_type} if content_type else {}
    with Client(server.ws + "?subscriptions=alerts") as c:
        c.recv_until("connection_established")
        r = httpx.post(
            server.http + PUBLISH,
            params={"subscription": "alerts"},
            content=ALERT,
            headers=headers,
            timeout=10,
        )
        assert r.status_code == 415, r.text
        assert "application/json" in r.json()["detail"]
        # The next update is the first this subscriber sees: the refused one went nowhere.
        ok = httpx.post(
            server.http + PUBLISH,
            params={"subscription": "alerts"},
            content=b'{"alerts": [{"id": "real"}]}',
            headers={"Content-Type": "application/json; charset=utf-8"},
            timeout=10,
        )
        assert ok.status_code == 200
        frame = c.recv_until("critical_alert")
        assert frame["data"]["alerts"][0]["id"] == "real"


def test_a_write_from_another_origin_is_refused_when_an_allowlist_is_set(
    server_factory: Any,
) -> None:
    srv = server_factory({"WS_ALLOWED_ORIGINS": "https://dash.example"})
    json_type = {"Content-Type": "application/json"}

    def post(extra: dict[str, str]) -> int:
        return httpx.post(
            srv.http + PUBLISH,
            params={"subscription": "system"},
            content=b"{}",
            headers={**json_type, **extra},
            timeout=10,
        ).status_code

    assert post({"Origin": "https://evil.example"}) == 403
    assert post({"Origin": "null"}) == 403  # sandboxed frames and file: pages
    assert post({"Origin": "https://dash.example"}) == 200
    assert post({}) == 200  # no Origin: not a browser (a producer script)
    assert metric(srv, "leanvibe_ws_publishes_refused_total", {"reason": "forbidden_origin"}) == 2


def _answer(sock: socket.socket, wait: float) -> bytes:
    sock.settimeout(wait)
    data = b""
    with contextlib.suppress(TimeoutError, ConnectionResetError):
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    return data


def _head(length: str) -> bytes:
    return (
        f"POST {PUBLISH}?subscription=agents HTTP/1.1\r\nHost: x\r\n"
        f"Content-Type: application/json\r\n{length}\r\n"
    ).encode()


def test_a_declared_200_mb_body_gets_413_before_any_of_it_is_sent(server: ServerProcess) -> None:
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(_head("Content-Length: 200000000\r\n"))
        answer = _answer(sock, 10)
    assert answer.startswith(b"HTTP/1.1 413 "), answer[:100]


def _chunk(size: int) -> bytes:
    return f"{size:x}\r\n".encode() + b"a" * size + b"\r\n"


def test_a_chunked_body_gets_413_after_the_limit_plus_one_chunk(server: ServerProcess) -> None:
    limit = 65_536
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(_head("Transfer-Encoding: chunked\r\n"))
        sock.sendall(_chunk(limit))  # exactly the limit: still admissible
        sock.sendall(_chunk(16_384))  # one chunk over it; then nothing more is sent
        answer = _answer(sock, 10)
    assert answer.startswith(b"HTTP/1.1 413 "), answer[:100]


def _rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))


def test_a_200_mb_chunked_post_is_cut_short_and_costs_no_memory(server: ServerProcess) -> None:
    before = _rss_kib(server.proc.pid)
    sent = 0
    answer = b""
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(_head("Transfer-Encoding: chunked\r\n"))
        chunk = _chunk(256 * 1024)
        sock.setblocking(False)
        deadline = time.monotonic() + 60
        while b"\r\n\r\n" not in answer and sent < 200_000_000 and time.monotonic() < deadline:
            with contextlib.suppress(BlockingIOError):
                sent += sock.send(chunk)
            with contextlib.suppress(BlockingIOError):
                answer += sock.recv(65536)
    grown = _rss_kib(server.proc.pid) - before
    print(f"chunked POST: 413 after the client sent {sent} bytes; server RSS +{grown} KiB")
    assert answer.startswith(b"HTTP/1.1 413 "), answer[:100]
    assert grown < 4096


def test_a_body_within_the_limit_is_published(server: ServerProcess) -> None:
    body = b'{"pad": "' + b"p" * 60_000 + b'"}'
    r = httpx.post(
        server.http + PUBLISH,
        params={"subscription": "agents"},
        content=iter([body[:30_000], body[30_000:]]),  # an iterator: sent chunked
        headers={"Content-Type": "application/json"},
        timeout=10,
    )
    assert r.status_code == 200, r.text


@settings(max_examples=30, deadline=None)
@given(
    size=st.integers(min_value=8, max_value=200_000),
    pieces=st.integers(min_value=1, max_value=5),
    declared=st.booleans(),
)
def test_any_body_size_is_published_or_413_by_the_limit(
    server: ServerProcess, size: int, pieces: int, declared: bool
) -> None:
    body = b'{"p":"' + b"x" * (size - 8) + b'"}'
    assert len(body) == size
    step = -(-size // pieces)
    parts = [body[i : i + step] for i in range(0, size, step)]
    r = httpx.post(
        server.http + PUBLISH,
        params={"subscription": "tasks"},
        content=body if declared else iter(parts),  # bytes: Content-Length; iterator: chunked
        headers={"Content-Type": "application/json"},
        timeout=10,
    )
    assert r.status_code == (413 if size > 65_536 else 200), (size, pieces, declared)


def test_a_huge_declared_chunk_is_refused_by_what_arrives(server: ServerProcess) -> None:
    # A chunk size near 2**63 (libhv#874 crashed on one): nothing is reserved for it; the
    # bytes are counted as they come and the limit cuts them.
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(_head("Transfer-Encoding: chunked\r\n") + b"7fffffffffffffff\r\n")
        sock.sendall(b"a" * (65_536 + 16_384))
        answer = _answer(sock, 10)
    assert answer.startswith(b"HTTP/1.1 413 "), answer[:100]


def test_an_endless_chunk_extension_is_cut_by_the_request_timeout(server_factory: Any) -> None:
    # twisted#1563: the line of a chunk's size and extensions was buffered without bound.
    srv = server_factory({"WS_HTTP_REQUEST_TIMEOUT_SECONDS": "2"})
    before = _rss_kib(srv.proc.pid)
    closed = False
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", srv.port), timeout=10) as sock:
        sock.sendall(_head("Transfer-Encoding: chunked\r\n") + b"10;ext=")
        while time.monotonic() - started < 20:
            try:
                sock.sendall(b"e" * 16_384)
            except (BrokenPipeError, ConnectionResetError):
                closed = True
                break
            time.sleep(0.005)
    grown = _rss_kib(srv.proc.pid) - before
    assert closed and time.monotonic() - started < 20
    assert grown < 4096, f"the server grew {grown} KiB reading one chunk line"


@pytest.mark.parametrize(
    "head", ["Content-Length: 100\r\n", "Transfer-Encoding: chunked\r\n"], ids=["length", "chunked"]
)
def test_a_publisher_that_leaves_mid_body_is_one_info_line_and_publishes_nothing(
    server_factory: Any, head: str
) -> None:
    # Before: Starlette's ClientDisconnect reached uvicorn, which logged an error with a
    # traceback for what is a client's choice, on every route that reads a body.
    server = server_factory()
    with Client(server.ws + "?subscriptions=agents") as c:
        c.recv_until("connection_established")
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
            sock.sendall(_head(head) + (b"5\r\n" if "chunked" in head else b"") + b'{"a":')
            time.sleep(0.2)  # the server has read the partial body and waits for the rest
        deadline = time.monotonic() + 10
        while "request_abandoned" not in server.log.read_text():
            assert time.monotonic() < deadline, server.log.read_text()[-2000:]
            time.sleep(0.05)
        text = server.log.read_text()
        assert "Traceback" not in text and '"level": "error"' not in text, text[-2000:]
        # The subscriber is still served, and got nothing from the half-sent publish.
        c.send({"type": "ping"})
        c.recv_until("pong")
        assert [f["type"] for f in c.frames] == ["connection_established", "pong"]


def test_trace_is_a_safe_method_and_gets_405_not_415(server: ServerProcess) -> None:
    # RFC 9110 §9.2.1 lists TRACE among the safe methods; it was taken for a write and
    # refused for its missing content type. No route serves it: FastAPI's 405.
    with httpx.Client(timeout=10) as http:
        answer = http.request("TRACE", server.http + "/health")
    assert answer.status_code == 405, answer.text
