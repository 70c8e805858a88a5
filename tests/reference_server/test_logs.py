"""Every log line is JSON, and a client cannot flood the logs.

The filter and formatter are tested as plain calls (time passed in); the promise itself
through a real server process whose standard error is read back.
"""

from __future__ import annotations

import json
import logging
import socket
import sys
import time
from collections.abc import Callable
from typing import Any

import pytest

from reference_server.logs import MAX_KINDS, JsonFormatter, RepeatFilter
from tests.procs import ServerProcess
from tests.wsclient import Client, metric


def record(msg: str, *args: object, name: str = "uvicorn.error", exc: bool = False) -> Any:
    exc_info = None
    if exc:
        try:
            b"\xff".decode()
        except UnicodeDecodeError:
            exc_info = sys.exc_info()
    return logging.LogRecord(name, logging.ERROR, __file__, 1, msg, args or None, exc_info)


@pytest.mark.unit
def test_one_record_per_kind_passes_per_window_and_the_next_counts_the_dropped() -> None:
    now = [0.0]
    keep = RepeatFilter(10.0, clock=lambda: now[0])
    assert keep.filter(record("Invalid UTF-8 sequence received from client."))
    assert [
        keep.filter(record("Invalid UTF-8 sequence received from client.")) for _ in range(50)
    ] == [False] * 50
    assert keep.filter(record("Another kind %s", 1))  # kinds are independent
    now[0] = 10.0
    passed = record("Invalid UTF-8 sequence received from client.")
    assert keep.filter(passed) and passed.suppressed == 50


@pytest.mark.unit
def test_the_filter_remembers_a_bounded_number_of_kinds() -> None:
    keep = RepeatFilter(10.0, clock=lambda: 0.0)
    for i in range(MAX_KINDS * 3):
        assert keep.filter(record(f"message {i}"))  # f-strings: every message a new kind
    assert len(keep._seen) == MAX_KINDS


@pytest.mark.unit
def test_a_client_fault_is_one_warning_line_without_traceback() -> None:
    line = JsonFormatter().format(record("Invalid UTF-8 sequence received from client.", exc=True))
    assert "\n" not in line
    event = json.loads(line)
    assert (event["event"], event["level"], event["logger"]) == (
        "invalid_utf8_text_frame",
        "warning",
        "uvicorn.error",
    )
    assert "exception" not in event and event["timestamp"].endswith("Z")


@pytest.mark.unit
def test_a_server_error_keeps_its_traceback_in_one_line_and_odd_records_never_raise() -> None:
    event = json.loads(JsonFormatter().format(record("Exception in ASGI application\n", exc=True)))
    assert event["level"] == "error" and "UnicodeDecodeError" in event["exception"]
    odd = json.loads(JsonFormatter().format(record("two %s %s", "args?")))  # wrong arity
    assert "two %s %s" in odd["event"]
    lone = JsonFormatter().format(record("text \ud800 here"))
    assert "\n" not in lone and json.loads(lone)["event"] == "text \ud800 here"


BANNER = ("reference server: ", "  health:", "  metrics:", "  api:")


def log_events(server: ServerProcess) -> list[dict[str, Any]]:
    """Every line the server wrote; fails on any line (banner aside) that is not JSON."""
    events = []
    for line in server.log.read_text().splitlines():
        if line.startswith(BANNER):
            continue  # the start-up banner on standard output, not a log line
        try:
            events.append(json.loads(line))
        except ValueError:
            pytest.fail(f"a log line is not JSON: {line!r}")
    return events


def wait_for(server: ServerProcess, found: Callable[[list[dict[str, Any]]], bool]) -> list[Any]:
    deadline = time.monotonic() + 15
    while True:
        events = log_events(server)
        if found(events) or time.monotonic() > deadline:
            return events
        time.sleep(0.05)


def named(events: list[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    return [e for e in events if e["event"] == name]


def bad_frames(server: ServerProcess, count: int) -> None:
    for _ in range(count):
        with Client(server.ws + "?subscriptions=") as c:
            c.recv()
            c.send_text_bytes(b'{"type":"ping","pad":"\xc3\x28"}')
            assert c.close_code() == 1007


@pytest.mark.integration
def test_invalid_utf8_frames_make_one_json_line_per_window_and_no_traceback(
    server_factory: Callable[..., ServerProcess],
) -> None:
    # Issue 11: an ERROR line and a five-line traceback on stderr per frame.
    srv = server_factory({"WS_LOG_REPEAT_WINDOW_SECONDS": "2"})
    started = time.monotonic()
    bad_frames(srv, 20)
    # A request that is not HTTP is answered 400 and counted, never logged per request
    # (the handshake module drops uvicorn's line: a client could flood the log with it).
    refused = {"reason": "invalid"}
    before = metric(srv, "leanvibe_ws_handshakes_refused_total", refused)
    with socket.create_connection(("127.0.0.1", srv.port), timeout=10) as s:
        s.sendall(b"NOT HTTP\r\n\r\n")
        assert s.recv(1024).startswith(b"HTTP/1.1 400")
    assert metric(srv, "leanvibe_ws_handshakes_refused_total", refused) == before + 1
    events = wait_for(srv, lambda e: bool(named(e, "invalid_utf8_text_frame")))
    flood = named(events, "invalid_utf8_text_frame")
    if time.monotonic() - started < 2:  # all 20 within one window (a slow machine may not be)
        assert len(flood) == 1
    assert all(e["level"] == "warning" and "exception" not in e for e in flood)
    assert not named(events, "invalid_http_request")
    # After the window the next line says how many it kept quiet.
    time.sleep(2.1)  # the window itself, in server time: nothing to synchronise with
    bad_frames(srv, 1)
    events = wait_for(srv, lambda e: len(named(e, "invalid_utf8_text_frame")) == len(flood) + 1)
    flood = named(events, "invalid_utf8_text_frame")
    assert sum(e.get("suppressed", 0) for e in flood) + len(flood) == 21
    assert not any("Traceback" in json.dumps(e) for e in events)


@pytest.mark.integration
def test_client_text_cannot_forge_log_lines_or_reach_a_terminal(server: ServerProcess) -> None:
    # CVE-2020-7694 (uvicorn#723): ANSI escapes in a request path went raw into the logs.
    # Here a correlation id carries a newline, a forged JSON event and an escape sequence.
    forged = 'x\n{"event": "forged"}\x1b[31m'
    with Client(server.ws + "?subscriptions=") as c:
        c.recv()
        c.send({"type": "teleport", "correlation_id": forged})
        assert c.recv()["correlation_id"] == forged  # echoed to its sender, as sent
    events = wait_for(server, lambda e: any(x.get("correlation_id") == forged for x in e))
    assert [e["event"] for e in events if e.get("correlation_id") == forged] == ["frame_refused"]
    assert not named(events, "forged")
    assert "\x1b" not in server.log.read_text()


@pytest.mark.integration
def test_refused_frames_are_logged_once_per_window_per_connection_and_all_counted(
    server: ServerProcess,
) -> None:
    before = metric(server, "leanvibe_ws_errors_sent_total")
    with Client(server.ws + "?subscriptions=") as c:
        cid = c.recv()["connection_id"]
        for i in range(30):
            c.send({"type": "teleport", "correlation_id": f"r-{i}"})
        assert [c.recv()["code"] for _ in range(30)] == ["unknown_message_type"] * 30
        assert c.request({"type": "ping"})["type"] == "pong"
    events = wait_for(
        server,
        lambda e: any(x.get("connection_id") == cid and x["event"] == "disconnected" for x in e),
    )
    refused = [e for e in named(events, "frame_refused") if e["connection_id"] == cid]
    assert len(refused) == 1 and refused[0]["correlation_id"] == "r-0"  # one 10 s window
    assert metric(server, "leanvibe_ws_errors_sent_total") - before == 30
