"""Hostile text at every edge, over real sockets: client frames, publishes, headers, queries
and the Redis producer channels.

Each case is one a careful operator found (issue 11) or one from other servers' public bug
reports: JSON may legally escape lone surrogates (`"\\ud800"`), which Python decodes to a
`str` with no UTF-8 form; `json.loads` accepts NaN, Infinity, a BOM and UTF-16; a text frame
may hold bytes that are not UTF-8. Every one must be refused where it enters, with an error
that names it, and must leave the connection, the next frame and every other client as if
it had never been sent.
"""

from __future__ import annotations

import json
import socket
import struct
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
import redis
from hypothesis import given, settings
from websockets.frames import Frame, Opcode

from tests.hostile import client_frames, expected_refusal, publish_bodies
from tests.procs import RedisProcess, ServerProcess, start_server
from tests.wsclient import Client, metric

pytestmark = pytest.mark.integration

PUBLISH = "/api/dashboard/websocket/broadcast"


def post(server: ServerProcess, body: bytes, **headers: str) -> httpx.Response:
    return httpx.post(
        f"{server.http}{PUBLISH}",
        params={"subscription": "agents"},
        content=body,
        headers={"Content-Type": "application/json", **headers},
        timeout=10,
    )


@pytest.fixture
def subscriber(server: ServerProcess) -> Iterator[Client]:
    with Client(server.ws + "?subscriptions=agents") as c:
        c.recv()
        yield c


def test_a_lone_surrogate_publish_is_refused_and_the_next_update_arrives_exactly(
    server: ServerProcess, subscriber: Client
) -> None:
    # Issue 11: this body was acknowledged (200), never delivered, and the subscriber then
    # received copies of an earlier frame from the shared encoded-frame cache.
    first = post(server, b'{"i": 1}').json()
    assert subscriber.recv_until("agent_update")["data"] == {"i": 1}
    refused = post(server, b'{"x": "\\ud800"}')
    assert refused.status_code == 422
    assert "$.x" in refused.json()["detail"] and "not valid Unicode" in refused.json()["detail"]
    second = post(server, b'{"i": 2}').json()
    frame = subscriber.recv_until("agent_update")
    assert (frame["data"], frame["seq"]) == ({"i": 2}, second["seq"])
    assert second["seq"] == first["seq"] + 1, "a refused publish must not use up a seq"


@pytest.mark.parametrize(
    ("body", "named"),
    [
        (b'{"x": "\\udc00\\ud83d"}', "$.x"),
        (b'{"\\ud800": 1}', "(a key)"),
        (b'{"x": "\xed\xa0\x80"}', "byte 7"),  # a surrogate encoded in UTF-8 (CESU-8)
        (b'{"x": "\xff"}', "byte 7"),
        ('{"x": 1}'.encode("utf-16"), "byte 0"),
        (b'\xef\xbb\xbf{"x": 1}', "char 0"),
        (b'{"x": NaN}', "NaN"),
        (b'{"x": -Infinity}', "Infinity"),
        (b'{"x": 1e999}', "1e999"),
        (b'{"x": ' + b"9" * 5000 + b"}", "4300 digits"),
        (b'{"x":' + b"[" * 40 + b"]" * 40 + b"}", "nested deeper than 32"),
        (b'{"x":' + b"[" * 900 + b"]" * 900 + b"}", "nested deeper than 32"),
    ],
)
def test_publish_bodies_that_are_not_valid_json_text_get_a_422_naming_the_problem(
    server: ServerProcess, subscriber: Client, body: bytes, named: str
) -> None:
    refused = post(server, body)
    assert refused.status_code == 422, refused.text
    assert named in refused.json()["detail"]
    ack = post(server, b'{"after": true}').json()
    frame = subscriber.recv_until("agent_update")
    assert (frame["data"], frame["seq"]) == ({"after": True}, ack["seq"])


@pytest.mark.parametrize("header", ["abc\xff", "x" * 129, ""])
def test_a_correlation_id_header_that_is_not_short_printable_ascii_gets_a_422(
    server: ServerProcess, subscriber: Client, header: str
) -> None:
    refused = httpx.post(
        f"{server.http}{PUBLISH}",
        params={"subscription": "agents"},
        content=b'{"i": 0}',
        headers=[
            ("Content-Type", "application/json"),
            ("X-Correlation-ID", header.encode("latin-1")),
        ],
        timeout=10,
    )
    assert refused.status_code == 422 and "X-Correlation-ID" in refused.json()["detail"]
    ack = post(server, b'{"i": 1}', **{"X-Correlation-ID": "pub-ok"}).json()
    frame = subscriber.recv_until("agent_update")
    assert (frame["data"], frame["correlation_id"], frame["seq"]) == (
        {"i": 1},
        "pub-ok",
        ack["seq"],
    )


CLIENT_FRAMES: list[tuple[str, str, str | None]] = [
    # Issue 11: no pong and a stalled connection.
    ('{"type":"ping","correlation_id":"\\udc00"}', "invalid_text", None),
    # Issue 11: close 1006.
    ('{"type":"\\ud83d"}', "invalid_text", None),
    ('{"type":"ping","correlation_id":"c-2","pad":"\\ud800"}', "invalid_text", "c-2"),
    (
        '{"type":"subscribe","subscriptions":["\\udfff"],"correlation_id":"c-3"}',
        "invalid_text",
        "c-3",
    ),
    ('{"type":"unsubscribe","subscriptions":["a\\ud800b"]}', "invalid_text", None),
    ('{"type":"request_data","data_type":"\\ud800","correlation_id":"c-4"}', "invalid_text", "c-4"),
    (
        '{"type":"request_data","data_type":"system_health","params":{"\\udc80":1}}',
        "invalid_text",
        None,
    ),
    (
        '{"type":"subscribe","subscriptions":["agents"],"resume":{"\\ud800":1}}',
        "invalid_text",
        None,
    ),
    # Review 11: numbers the strict decoder refuses still let a valid correlation id echo.
    ('{"type":"ping","correlation_id":"c-5","n":NaN}', "invalid_json", "c-5"),
    ('{"type":"ping","correlation_id":"c-6","n":1e999}', "invalid_json", "c-6"),
    ('{"type":"ping","correlation_id":"c-7","n":' + "9" * 5000 + "}", "invalid_json", "c-7"),
    ('{"type":"ping","n":1e999}', "invalid_json", None),
    ('{"type":"ping","p":' + "[" * 33 + "]" * 33 + "}", "invalid_json", None),
    ('\ufeff{"type":"ping"}', "invalid_json", None),
]


@pytest.mark.parametrize(("raw", "code", "cid"), CLIENT_FRAMES)
def test_client_frames_with_hostile_text_get_an_error_and_the_connection_lives(
    server: ServerProcess, raw: str, code: str, cid: str | None
) -> None:
    with Client(server.ws + "?subscriptions=") as c:
        c.recv()
        c.send(raw)
        error = c.recv()
        assert (error["type"], error["code"]) == ("error", code)
        if cid is not None:
            assert error["correlation_id"] == cid
        else:
            assert "\\" not in error["correlation_id"] and error["correlation_id"]
        assert c.request({"type": "ping"})["type"] == "pong"


def test_a_text_frame_that_is_not_utf8_closes_1007_and_nobody_else_notices(
    server: ServerProcess, subscriber: Client
) -> None:
    with Client(server.ws + "?subscriptions=") as hostile:
        hostile.recv()
        hostile.send_text_bytes(b'{"type":"ping","correlation_id":"\xff\xfe"}')
        assert hostile.close_code() == 1007  # RFC 6455 §8.1: fail the connection
    assert subscriber.request({"type": "ping"})["type"] == "pong"
    ack = post(server, b'{"i": 3}').json()
    assert subscriber.recv_until("agent_update")["seq"] == ack["seq"]


def test_hostile_query_text_is_refused_with_an_error_not_a_crash(server: ServerProcess) -> None:
    # "²".isdigit() is true but int("²") raises: a resume parser trusting isdigit crashed;
    # int("٣") reads an Arabic-Indic 3. Only ASCII digits are a seq.
    query = "?subscriptions=agents&resume=agents:%C2%B2,tasks:%D9%A3,alerts:%EF%BC%95"
    with Client(server.ws + query) as c:
        first = c.recv()
        assert (first["type"], first["subscriptions"]) == ("connection_established", ["agents"])
        errors = [c.recv() for _ in range(3)]
        assert [e["code"] for e in errors] == ["invalid_field"] * 3
        assert c.request({"type": "ping"})["type"] == "pong"


@pytest.mark.parametrize(
    ("query", "name"),
    [
        ("subscriptions=%FF", "subscriptions"),
        ("subscriptions=%ED%A0%80", "subscriptions"),  # an encoded surrogate
        ("subscriptions=agents,%ED%A0%80", "subscriptions"),
        ("subscriptions=agents&resume=agents:%FF", "resume"),
    ],
)
def test_a_query_that_is_not_utf8_gets_invalid_text_naming_it(
    server: ServerProcess, query: str, name: str
) -> None:
    # Review 11: Starlette decoded these bytes to U+FFFD, echoed back as an unknown
    # subscription name (invalid_subscription). protocol.md: `invalid_text` "the … query
    # is not valid Unicode"; the parameter is then taken as empty.
    with Client(f"{server.ws}?{query}") as c:
        c.recv()
        reply = c.recv()
        assert (reply["type"], reply["code"]) == ("error", "invalid_text"), reply
        assert name in reply["message"] and "\ufffd" not in reply["message"]
        assert c.request({"type": "ping"})["type"] == "pong"


@pytest.mark.parametrize(
    ("path", "query", "name"),
    [
        (PUBLISH, "subscription=%FF", "subscription"),
        (PUBLISH, "subscription=agents%ED%A0%80", "subscription"),  # an encoded surrogate
        (PUBLISH, "subscription=agents&message_type=%ED%A0%80", "message_type"),
        ("/api/dashboard/websocket/stats", "x=%FF", "x"),
    ],
)
def test_an_http_query_that_is_not_utf8_gets_400_naming_the_parameter(
    server: ServerProcess, subscriber: Client, path: str, query: str, name: str
) -> None:
    method = "POST" if path == PUBLISH else "GET"
    refused = httpx.request(
        method,
        f"{server.http}{path}?{query}",
        content=b'{"i": 0}' if method == "POST" else None,
        headers={"Content-Type": "application/json"},
        timeout=10,
    )
    assert refused.status_code == 400, refused.text
    assert refused.json()["key"] == name and "UTF-8" in refused.json()["detail"]
    ack = post(server, b'{"i": 1}').json()
    assert subscriber.recv_until("agent_update")["seq"] == ack["seq"]


def test_producer_messages_that_are_not_valid_text_are_refused_counted_and_skipped(
    redis_server: RedisProcess, server_factory: Callable[..., ServerProcess]
) -> None:
    srv = server_factory({"REDIS_URL": redis_server.url})
    producer = redis.Redis.from_url(redis_server.url)
    hostile = [
        b'{"x": "\xff\xfe"}',  # not UTF-8: once turned into U+FFFD and delivered
        b'{"x": "\\ud800"}',  # a lone surrogate escape
        b'{"x": NaN}',
        b'{"x":' + b"[" * 100 + b"]" * 100 + b"}",
        b"[" * 50_000 + b"]" * 50_000,  # RecursionError in json.loads
    ]
    try:
        with Client(srv.ws + "?subscriptions=system") as c:
            c.recv()
            before = _refused(srv)
            for payload in hostile:
                producer.publish("system_events", payload)
            producer.publish("system_events", b'{"event": "after", "note": "\xc3\xa9"}')
            frame = c.recv_until("system_event", timeout=10)
            assert frame["data"] == {"event": "after", "note": "é"}
            deadline = time.monotonic() + 10
            while _refused(srv) - before < len(hostile) and time.monotonic() < deadline:
                time.sleep(0.05)
            assert _refused(srv) - before == len(hostile)
            assert c.request({"type": "ping"})["type"] == "pong"
    finally:
        producer.close()


def _refused(server: ServerProcess) -> float:
    labels: dict[str, Any] = {"reason": "invalid"}
    try:
        return metric(server, "leanvibe_ws_producer_messages_dropped_total", labels)
    except AssertionError:
        return 0.0  # not counted yet: the labelled sample appears with its first increment


@pytest.fixture(scope="module")
def roomy_server() -> Iterator[ServerProcess]:
    """A server whose rate limit lets a property test send hundreds of frames quickly."""
    srv = start_server({"WS_RATE_TOKENS_PER_SEC": "100000", "WS_RATE_BURST": "100000"})
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def pair(roomy_server: ServerProcess) -> Iterator[tuple[Client, Client]]:
    """A hostile client (no subscriptions) and a bystander subscribed to agents."""
    with (
        Client(roomy_server.ws + "?subscriptions=") as hostile,
        Client(roomy_server.ws + "?subscriptions=agents") as bystander,
    ):
        hostile.recv(), bystander.recv()
        yield hostile, bystander


def reply_then_pong(c: Client, cid: str) -> list[dict[str, Any]]:
    """Frames up to the pong answering `cid` (within 2 s); updates in between are skipped."""
    c.send({"type": "ping", "correlation_id": cid})
    deadline = time.monotonic() + 2.0
    got = []
    while True:
        frame = c.recv(max(0.01, deadline - time.monotonic()))
        if frame["type"] == "pong" and frame["correlation_id"] == cid:
            return got
        if frame.get("subscription") is None:
            got.append(frame)


@settings(max_examples=60, deadline=None)
@given(frame=client_frames(), body=publish_bodies())
def test_hostile_frames_and_publishes_over_real_sockets_get_an_error_or_exact_delivery(
    roomy_server: ServerProcess, pair: tuple[Client, Client], frame: str, body: bytes
) -> None:
    hostile, bystander = pair
    cid = f"p-{time.monotonic_ns()}"
    hostile.send(frame)
    answers = reply_then_pong(hostile, cid)  # never a stall: the next ping is answered
    refusal = expected_refusal(frame)
    if refusal:
        assert [(a["type"], a["code"] in refusal) for a in answers] == [("error", True)]
    response = post(roomy_server, body)
    if expected_refusal(body) or response.status_code != 200:
        assert response.status_code in (413, 422), response.text
        assert expected_refusal(body) or not isinstance(json.loads(body.decode()), dict)
    else:
        ack = response.json()
        update = bystander.recv_until("agent_update", timeout=2)
        assert (update["data"], update["seq"]) == (json.loads(body.decode()), ack["seq"])
    assert reply_then_pong(bystander, cid) == []  # nothing else reached the bystander


# Failure kinds from other servers' public bug reports, each as a test here.


def test_a_text_message_fragmented_inside_a_character_is_reassembled_and_answered(
    server: ServerProcess,
) -> None:
    # websockets#1695 and the review of uvicorn#2540: fragments may split a UTF-8 sequence
    # (RFC 6455 §5.6); only the whole message must be valid.
    with Client(server.ws + "?subscriptions=") as c:
        c.recv()
        message = '{"type":"ping","correlation_id":"frag-é😀"}'.encode()
        cut = message.index("é".encode()) + 1
        with c.ws.protocol_mutex:
            c.ws.protocol.send_frame(Frame(Opcode.TEXT, message[:cut], fin=False))
            c.ws.protocol.send_frame(Frame(Opcode.CONT, message[cut:], fin=True))
            c.ws.send_data()
        assert c.recv()["correlation_id"] == "frag-é😀"


def test_a_close_reason_that_is_not_utf8_closes_1007_and_nobody_else_notices(
    server: ServerProcess, subscriber: Client
) -> None:
    with Client(server.ws + "?subscriptions=") as c:
        c.recv()
        with c.ws.protocol_mutex:
            c.ws.protocol.send_frame(Frame(Opcode.CLOSE, struct.pack("!H", 1000) + b"\xff\xfe"))
            c.ws.send_data()
        assert c.close_code() == 1007
    assert subscriber.request({"type": "ping"})["type"] == "pong"


HANDSHAKE = (
    b"GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n%s\r\n"
)


def handshake(server: ServerProcess, target: bytes, headers: bytes, until: bytes) -> bytes:
    """Send an upgrade request; read until `until` arrives or the server closes (10 s)."""
    got = b""
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as s:
        s.sendall(HANDSHAKE % (target, headers))
        while until not in got:
            chunk = s.recv(4096)
            if not chunk:
                break
            got += chunk
    return got


def test_raw_non_ascii_bytes_in_the_handshake_url_get_a_400_not_a_crash(
    server: ServerProcess, subscriber: Client
) -> None:
    # daphne#150, uvicorn#961, waitress#127: a URL with raw high bytes crashed the decoder.
    reply = handshake(server, b"/api/dashboard/ws/dashboard?subscriptions=\xff", b"", b"\r\n\r\n")
    assert reply.startswith(b"HTTP/1.1 400")
    assert subscriber.request({"type": "ping"})["type"] == "pong"


def test_latin1_header_bytes_in_a_handshake_are_accepted_and_logged_as_json(
    server: ServerProcess,
) -> None:
    # uvicorn#968: a User-Agent with non-ASCII bytes made the websockets protocol raise.
    reply = handshake(
        server,
        b"/api/dashboard/ws/dashboard?subscriptions=",
        b"User-Agent: NetType/MOB\xc4\xb0LE\r\nOrigin: http://caf\xe9.example\r\n",
        b"connection_established",
    )
    assert reply.startswith(b"HTTP/1.1 101") and b"connection_established" in reply
    deadline = time.monotonic() + 10
    while "caf\\u00e9" not in server.log.read_text() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert '"origin": "http://caf\\u00e9.example"' in server.log.read_text()


def test_a_binary_body_with_a_missing_query_gets_a_422_not_a_500(server: ServerProcess) -> None:
    # fastapi#13111: the validation error echoed the raw body, and encoding it raised.
    response = httpx.post(
        f"{server.http}{PUBLISH}",
        content=b"\x80\x81\xff",
        headers={"Content-Type": "application/json"},
        timeout=10,
    )
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["query", "subscription"]


@pytest.mark.parametrize(
    "data",
    [b'{"x": "\xff"}', b'{"x": "\\ud800"}', b'{"x": NaN}', b"[" * 900 + b"]" * 900],
)
def test_a_stream_entry_that_is_not_valid_json_text_is_skipped_and_the_link_stays_up(
    redis_server: RedisProcess, server_factory: Callable[..., ServerProcess], data: bytes
) -> None:
    # Entries are written by the brokers, but anything with access to Redis can add one. A
    # 900-deep one parsed, then raised RecursionError past the decoder and ended the link
    # again and again.
    srv = server_factory({"REDIS_URL": redis_server.url})
    writer = redis.Redis.from_url(redis_server.url)
    try:
        with Client(srv.ws + "?subscriptions=agents") as c:
            c.recv()
            epoch = int(writer.get("hive:ws:epoch") or 0)
            n = writer.incr(f"hive:ws:{epoch}:n:agents")
            fields = {"t": "agent_update", "d": data, "c": "evil", "w": "0"}
            writer.xadd(f"hive:ws:{epoch}:s:agents", fields, id=f"{n}-0")  # type: ignore[arg-type]
            ack = post(srv, b'{"after": 1}').json()
            notice = c.recv_until("resync_required", timeout=10)
            assert notice["latest_seq"] == ack["seq"] - 1  # the gap is the skipped entry
            update = c.recv_until("agent_update", timeout=10)
            assert (update["data"], update["seq"]) == ({"after": 1}, ack["seq"])
        health = httpx.get(f"{srv.http}/health", timeout=10).json()
        assert health["status"] == "healthy" and not health["components"]["broker"]["last_error"]
    finally:
        writer.close()


@pytest.mark.parametrize(
    ("query", "named"),
    [
        ("subscription=agentz", "Unknown subscription"),
        ("subscription=agents&message_type=agent%F0%9F%98%80", "Invalid message_type"),
        ("subscription=agents&message_type=%00", "Invalid message_type"),
    ],
)
def test_hostile_publish_query_text_gets_a_422_naming_the_parameter(
    server: ServerProcess, subscriber: Client, query: str, named: str
) -> None:
    response = httpx.post(
        f"{server.http}{PUBLISH}?{query}",
        content=b'{"i": 1}',
        headers={"Content-Type": "application/json"},
        timeout=10,
    )
    assert response.status_code == 422 and named in response.json()["detail"]
    ack = post(server, b'{"i": 2}').json()
    assert subscriber.recv_until("agent_update")["seq"] == ack["seq"]  # nothing else came
