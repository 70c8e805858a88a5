"""The request head and the WebSocket handshake over raw sockets: limits, a deadline, refusals.

Before these limits, a WebSocket upgrade with a 9 KB cookie, a 9 KB URL or 150 headers got
no answer and its socket stayed open forever, invisible to /stats and the metrics; a client
that connected and sent nothing, or half a request, held its socket forever (slowloris);
httptools put no bound at all on a plain HTTP request's head.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import threading
import time
from collections.abc import Iterator

import pytest
import uvicorn
from hypothesis import given, settings
from hypothesis import strategies as st

from reference_server.app import create_app
from reference_server.handshake import protocols
from reference_server.metrics import Metrics
from reference_server.settings import Settings
from tests.procs import WS_PATH, ServerProcess, free_port
from tests.wsclient import Client, metric

pytestmark = pytest.mark.integration

TIMEOUT_SECONDS = 2.0
PADDED = "".join(f"X-Pad-{i}: {'p' * 7000}\r\n" for i in range(6))  # 42 KB of short lines
UPGRADE = (
    "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n{extra}\r\n"
)


def exchange(port: int, request: bytes, wait: float = 10.0) -> tuple[bytes, float]:
    """Send `request` on a fresh socket; read until the server closes; (bytes, seconds).

    Raises TimeoutError when the server neither answers nor closes within `wait` seconds.
    """
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=wait) as sock:
        if request:
            sock.sendall(request)
        received = b""
        while True:
            try:
                chunk = sock.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            received += chunk
    return received, time.monotonic() - started


def status(response: bytes) -> int:
    assert response.startswith(b"HTTP/1.1 "), response[:80]
    return int(response.split(b" ", 2)[1])


@pytest.fixture(scope="module")
def limited() -> Iterator[ServerProcess]:
    from tests.procs import start_server

    proc = start_server({"WS_HTTP_REQUEST_TIMEOUT_SECONDS": str(TIMEOUT_SECONDS)})
    yield proc
    proc.stop()


@pytest.mark.parametrize(
    ("path", "extra", "code", "reason"),
    [
        (WS_PATH, "Cookie: session=" + "c" * 9000 + "\r\n", 431, "header_too_large"),
        (WS_PATH + "?x=" + "u" * 9000, "", 414, "uri_too_long"),
        (WS_PATH, "".join(f"X-Extra-{i}: v\r\n" for i in range(150)), 431, "too_many_headers"),
        # Many lines under the line limit, over the whole head's 32 KiB.
        (WS_PATH, PADDED, 431, "header_too_large"),
    ],
    ids=["9KB-cookie", "9KB-url", "150-headers", "40KB-head"],
)
def test_an_oversized_upgrade_is_answered_at_once_and_closed(
    limited: ServerProcess, path: str, extra: str, code: int, reason: str
) -> None:
    before = metric(limited, "leanvibe_ws_handshakes_refused_total", {"reason": reason})
    response, _ = exchange(limited.port, UPGRADE.format(path=path, extra=extra).encode())
    assert status(response) == code
    assert b"connection: close" in response.lower()
    # At once: had the deadline closed it, the answer would be a 408, not this status.
    after = metric(limited, "leanvibe_ws_handshakes_refused_total", {"reason": reason})
    assert after == before + 1


def test_the_same_limits_hold_for_a_plain_http_request(limited: ServerProcess) -> None:
    request = f"GET /health HTTP/1.1\r\nHost: x\r\n{PADDED}\r\n"
    response, _ = exchange(limited.port, request.encode())
    assert status(response) == 431
    response, _ = exchange(limited.port, f"GET /health?{'q' * 9000} HTTP/1.1\r\n\r\n".encode())
    assert status(response) == 414


def _rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))


def test_an_endless_header_line_is_refused_without_buffering_it(limited: ServerProcess) -> None:
    # One header value that never ends: httptools alone buffers it all, waiting for its CRLF.
    before = _rss_kib(limited.proc.pid)
    answer = b""
    sent = 0
    with socket.create_connection(("127.0.0.1", limited.port), timeout=10) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nX-Endless: ")
        sock.setblocking(False)
        deadline = time.monotonic() + 30
        while not answer and sent < 8 * 1024 * 1024 and time.monotonic() < deadline:
            try:
                sent += sock.send(b"e" * 16384)
            except BlockingIOError:
                time.sleep(0.01)
            except (BrokenPipeError, ConnectionResetError):
                break
            with contextlib.suppress(BlockingIOError):
                answer += sock.recv(65536)
    grown = _rss_kib(limited.proc.pid) - before
    assert status(answer) == 431, f"no 431 after {sent} bytes of one header line"
    assert grown < 2048, f"the server grew {grown} KiB reading one head"
    print(f"an endless header line got 431 after the client sent {sent} bytes; RSS +{grown} KiB")


def test_a_silent_connection_is_closed_after_the_request_timeout(limited: ServerProcess) -> None:
    before = metric(limited, "leanvibe_ws_handshakes_refused_total", {"reason": "timeout"})
    response, seconds = exchange(limited.port, b"", wait=TIMEOUT_SECONDS * 5)
    assert response == b""
    assert TIMEOUT_SECONDS * 0.9 <= seconds < TIMEOUT_SECONDS * 5
    after = metric(limited, "leanvibe_ws_handshakes_refused_total", {"reason": "timeout"})
    assert after == before + 1


@pytest.mark.parametrize(
    "partial",
    [
        b"GET /health HTTP/1.1\r\nHost: x\r\n",  # slowloris: the head never ends
        UPGRADE.format(path=WS_PATH, extra="")[:60].encode(),  # half a handshake
        b"POST /api/dashboard/websocket/broadcast?subscription=agents HTTP/1.1\r\n"
        b"Host: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{",
    ],
    ids=["half-head", "half-upgrade", "half-body"],
)
def test_a_half_sent_request_gets_408_after_the_request_timeout(
    limited: ServerProcess, partial: bytes
) -> None:
    response, seconds = exchange(limited.port, partial, wait=TIMEOUT_SECONDS * 5)
    assert status(response) == 408
    assert TIMEOUT_SECONDS * 0.9 <= seconds < TIMEOUT_SECONDS * 5


def test_a_trickle_of_bytes_does_not_extend_the_deadline(limited: ServerProcess) -> None:
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", limited.port), timeout=10) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\n")
        closed = False
        while time.monotonic() - started < TIMEOUT_SECONDS * 5:
            try:
                sock.sendall(b"X-A: b\r\n")
            except (BrokenPipeError, ConnectionResetError):
                closed = True
                break
            sock.settimeout(0.2)
            try:
                if not sock.recv(65536):
                    closed = True
                    break
            except TimeoutError:
                continue
            except ConnectionResetError:
                closed = True
                break
    assert closed, "a client trickling header lines kept its socket"
    assert time.monotonic() - started < TIMEOUT_SECONDS * 5


def test_stray_line_breaks_between_requests_do_not_keep_a_socket(limited: ServerProcess) -> None:
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", limited.port), timeout=10) as sock:
        closed = False
        while time.monotonic() - started < TIMEOUT_SECONDS * 5 and not closed:
            try:
                sock.sendall(b"\r\n")
                sock.settimeout(0.2)
                closed = sock.recv(65536) == b"" or closed
            except TimeoutError:
                continue
            except (BrokenPipeError, ConnectionResetError):
                closed = True
    assert closed


def test_normal_requests_and_websockets_pass_the_limits(limited: ServerProcess) -> None:
    cookie = "Cookie: session=" + "c" * 7000 + "\r\n"  # big, but under the line limit
    request = f"GET /health HTTP/1.1\r\nHost: x\r\n{cookie}Connection: close\r\n\r\n"
    response, _ = exchange(limited.port, request.encode())
    assert status(response) == 200
    with Client(limited.ws, additional_headers={"Cookie": "s=" + "c" * 7000}) as c:
        assert c.recv()["type"] == "connection_established"
        time.sleep(TIMEOUT_SECONDS * 1.5)  # past the request timeout: a WebSocket keeps living
        assert c.request({"type": "ping"})["type"] == "pong"


def test_a_keep_alive_connection_serves_several_requests(limited: ServerProcess) -> None:
    with socket.create_connection(("127.0.0.1", limited.port), timeout=10) as sock:
        reader = sock.makefile("rb")
        for _ in range(3):
            sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
            # One whole response (head, then exactly its body), however TCP cuts it up.
            head = b""
            while not head.endswith(b"\r\n\r\n"):
                line = reader.readline(65536)
                assert line, "the server closed a keep-alive connection"
                head += line
            assert status(head) == 200
            length = next(
                int(line.split(b":", 1)[1])
                for line in head.split(b"\r\n")
                if line.lower().startswith(b"content-length:")
            )
            assert len(reader.read(length)) == length


def test_head_limits_are_settings_refused_above_the_handshake_parser() -> None:
    from reference_server.errors import SettingsError

    for key, value in (("max_headers", 129), ("max_header_line_bytes", 8191)):
        with pytest.raises(SettingsError, match=f"WS_{key.upper()}"):
            Settings(**{key: value})
    with pytest.raises(SettingsError, match="WS_MAX_URL_BYTES"):
        Settings(max_url_bytes=8178)


def test_a_handshake_websockets_refuses_is_answered_and_closed_under_any_http_parser() -> None:
    """Under h11 (no line limit of its own) a 9 KB cookie reaches `websockets`' parser,
    which refuses it; uvicorn alone would write nothing and keep the socket open."""
    metrics = Metrics()
    settings = Settings()
    _, ws = protocols(settings, metrics)
    port = free_port()
    config = uvicorn.Config(
        create_app(settings), host="127.0.0.1", port=port, http="h11", ws=ws, log_level="error"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=lambda: asyncio.run(server.serve()), daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 20
        while not server.started:
            assert time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.05)
        extra = "Cookie: session=" + "c" * 9000 + "\r\n"
        response, seconds = exchange(port, UPGRADE.format(path=WS_PATH, extra=extra).encode())
        assert status(response) == 431 and seconds < 5
        value = metrics.registry.get_sample_value(
            "leanvibe_ws_handshakes_refused_total", {"reason": "header_too_large"}
        )
        assert value == 1
    finally:
        server.should_exit = True
        thread.join(20)


@pytest.mark.parametrize(
    "framing",
    [
        "Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",  # CL.TE
        "Content-Length: 2\r\nContent-Length: 60\r\n\r\n{}",  # two lengths that differ
    ],
    ids=["cl-and-te", "two-lengths"],
)
def test_an_ambiguous_body_length_is_refused_and_nothing_after_it_is_served(
    limited: ServerProcess, framing: str
) -> None:
    # Request smuggling (RFC 9112 §6.1, §11.2): the second request must never be answered.
    smuggled = "GET /api/dashboard/websocket/stats HTTP/1.1\r\nHost: x\r\n\r\n"
    request = (
        "POST /api/dashboard/websocket/broadcast?subscription=system HTTP/1.1\r\nHost: x\r\n"
        f"Content-Type: application/json\r\n{framing}{smuggled}"
    )
    response, _ = exchange(limited.port, request.encode())
    assert status(response) == 400
    assert response.count(b"HTTP/1.1 ") == 1


@pytest.mark.parametrize(
    ("after", "code"),
    [
        ("GARBAGE\r\n\r\n", 400),  # a body longer than its Content-Length
        ("GET /health HTTP/1.1\r\nHost: x\r\nCookie: " + "c" * 9000 + "\r\n\r\n", 431),
    ],
    ids=["longer-body", "pipelined-oversized-head"],
)
def test_a_refusal_after_a_whole_publish_comes_after_the_publishs_answer(
    limited: ServerProcess, after: str, code: int
) -> None:
    # Before: the refusal was written (and the stream ended) while the app was still
    # answering the publish, so the publish, done, was answered 400 and the app's own answer
    # failed with "Cannot call write() after write_eof()" in the log.
    logged = limited.log.stat().st_size
    request = (
        "POST /api/dashboard/websocket/broadcast?subscription=system HTTP/1.1\r\nHost: x\r\n"
        'Content-Type: application/json\r\nContent-Length: 8\r\n\r\n{"a": 1}' + after
    )
    response, _ = exchange(limited.port, request.encode())
    assert status(response) == 200 and b'"status":"published"' in response, response[:300]
    second = response[response.index(b"HTTP/1.1 ", 1) :]
    assert status(second) == code and b"connection: close" in second.lower()
    assert response.count(b"HTTP/1.1 ") == 2
    with limited.log.open("rb") as log:
        log.seek(logged)
        assert b"Traceback" not in log.read()


def test_pipelined_requests_are_all_answered_in_order(limited: ServerProcess) -> None:
    paths = ["/health", "/api/dashboard/websocket/stats", "/api/dashboard/websocket/contract"]
    request = "".join(f"GET {p} HTTP/1.1\r\nHost: x\r\n\r\n" for p in paths[:-1])
    request += f"GET {paths[-1]} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    response, _ = exchange(limited.port, request.encode())
    assert response.count(b"HTTP/1.1 200 OK") == 3
    assert response.index(b'"status"') < response.index(b'"uptime_seconds"')


def test_a_handshake_sent_in_pieces_within_the_deadline_is_accepted(
    limited: ServerProcess,
) -> None:
    request = UPGRADE.format(path=WS_PATH, extra="").encode()
    with socket.create_connection(("127.0.0.1", limited.port), timeout=10) as sock:
        for start in range(0, len(request), 40):
            sock.sendall(request[start : start + 40])
            time.sleep(TIMEOUT_SECONDS / 20)  # five pieces: a quarter of the deadline in all
        assert sock.recv(65536).startswith(b"HTTP/1.1 101 ")


def test_refused_and_silent_sockets_give_their_descriptors_back(limited: ServerProcess) -> None:
    # Before: 150 refused upgrades held 150 descriptors for as long as anyone watched.
    def descriptors() -> int:
        return len(os.listdir(f"/proc/{limited.proc.pid}/fd"))

    baseline = descriptors()
    upgrade = UPGRADE.format(path=WS_PATH, extra="Cookie: s=" + "c" * 9000 + "\r\n").encode()
    socks = [socket.create_connection(("127.0.0.1", limited.port), timeout=10) for _ in range(100)]
    try:
        for sock in socks[:50]:
            sock.sendall(upgrade)  # refused at once; the other 50 stay silent
        for sock in socks[:50]:
            assert status(sock.recv(65536)) == 431
        deadline = time.monotonic() + TIMEOUT_SECONDS * 10
        while descriptors() > baseline:
            assert time.monotonic() < deadline, f"{descriptors() - baseline} descriptors held"
            time.sleep(0.1)
    finally:
        for sock in socks:
            sock.close()


@settings(max_examples=40, deadline=None)
@given(
    count=st.integers(min_value=0, max_value=130),
    length=st.integers(min_value=1, max_value=9_000),
    url=st.integers(min_value=0, max_value=8_200),
    upgrade=st.booleans(),
)
def test_any_head_gets_an_answer_that_follows_the_limits(
    limited: ServerProcess, count: int, length: int, url: int, upgrade: bool
) -> None:
    """Whatever the head's shape, the answer comes at once and follows the three limits."""
    defaults = Settings()
    path = (WS_PATH if upgrade else "/health") + ("?q=" + "u" * url if url else "")
    extra = "".join(f"X-H-{i:03d}: {'v' * length}\r\n" for i in range(count))
    if upgrade:
        request = UPGRADE.format(path=path, extra=extra)
        fixed = UPGRADE.format(path=path, extra="").count("\r\n") - 2  # its own header lines
    else:
        request = f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n{extra}\r\n"
        fixed = 2
    line = len(f"X-H-000: {'v' * length}") if count else 0
    head = len(path) + sum(len(h) + 2 for h in request.split("\r\n")[1:] if h)
    if len(path) > defaults.max_url_bytes:
        expected = 414
    elif (
        count + fixed > defaults.max_headers
        or line > defaults.max_header_line_bytes
        or head > defaults.max_header_bytes
    ):
        expected = 431
    else:
        expected = 101 if upgrade else 200
    with socket.create_connection(("127.0.0.1", limited.port), timeout=10) as sock:
        sock.sendall(request.encode())
        answer = sock.recv(65536)
    assert status(answer) == expected, (count, length, url, upgrade)
