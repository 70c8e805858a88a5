"""Test clients for the dashboard protocol over real sockets.

`Client` wraps the `websockets` synchronous client and checks every frame it receives
against `schemas/ws_messages.schema.json` (ServerFrame), so every integration test also
proves that the server only sends frames the schema allows. `StalledClient` completes the
handshake on a raw socket with a tiny receive buffer and then stops reading, like a phone
whose app froze.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from typing import Any

import httpx
import jsonschema
from prometheus_client.parser import text_string_to_metric_families
from websockets.client import ClientProtocol
from websockets.frames import Frame, Opcode
from websockets.http11 import Response
from websockets.sync.client import ClientConnection, connect
from websockets.uri import parse_uri

from reference_server.messages import SCHEMA
from tests.procs import ServerProcess

_SERVER = jsonschema.Draft7Validator(
    {"$ref": "#/definitions/ServerFrame", **SCHEMA}, format_checker=jsonschema.FormatChecker()
)


def check_server_frame(frame: dict[str, Any]) -> None:
    """Raise `jsonschema.ValidationError` unless `frame` is a valid server frame."""
    _SERVER.validate(frame)


class Client:
    """A protocol client that validates each received frame against the schema."""

    def __init__(self, url: str, **kwargs: Any) -> None:
        self._connect = connect(url, open_timeout=10, **kwargs)
        self.ws: ClientConnection = self._connect.__enter__()
        self.frames: list[dict[str, Any]] = []

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self._connect.__exit__(None, None, None)

    def send(self, frame: dict[str, Any] | str | bytes) -> None:
        self.ws.send(frame if isinstance(frame, str | bytes) else json.dumps(frame))

    def send_text_bytes(self, data: bytes) -> None:
        """Send `data` as one text frame as is, even when it is not UTF-8 (a hostile client)."""
        with self.ws.protocol_mutex:
            self.ws.protocol.send_frame(Frame(Opcode.TEXT, data))
            self.ws.send_data()

    def recv(self, timeout: float = 5.0) -> dict[str, Any]:
        raw = self.ws.recv(timeout=timeout)
        assert isinstance(raw, str), f"server sent a binary frame: {raw!r}"
        frame = json.loads(raw)
        check_server_frame(frame)
        self.frames.append(frame)
        return dict(frame)

    def recv_until(self, kind: str, timeout: float = 5.0) -> dict[str, Any]:
        """Receive until a frame of type `kind` arrives; return it (earlier ones are kept)."""
        deadline = time.monotonic() + timeout
        while True:
            frame = self.recv(max(0.01, deadline - time.monotonic()))
            if frame["type"] == kind:
                return frame

    def request(self, frame: dict[str, Any], timeout: float = 5.0) -> dict[str, Any]:
        """Send `frame` with a fresh correlation id; return the reply that echoes it."""
        cid = f"t-{time.monotonic_ns()}"
        self.send({**frame, "correlation_id": cid})
        deadline = time.monotonic() + timeout
        while True:
            reply = self.recv(max(0.01, deadline - time.monotonic()))
            if reply.get("correlation_id") == cid:
                return reply

    def close_code(self, timeout: float = 5.0) -> int | None:
        """Read until the server closes; return the close code it sent."""
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline:
                self.recv(max(0.01, deadline - time.monotonic()))
        except Exception:
            pass
        self.ws.close()
        rcvd = self.ws.protocol.close_rcvd
        return rcvd.code if rcvd else None


class StalledClient:
    """Handshakes on a raw socket with a small receive buffer, then reads nothing."""

    def __init__(self, url: str, rcvbuf: int = 4096) -> None:
        uri = parse_uri(url)
        self.protocol = ClientProtocol(uri, max_size=None)
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.connect((uri.host, uri.port))
        self.protocol.send_request(self.protocol.connect())
        self.sock.sendall(b"".join(self.protocol.data_to_send()))
        while not any(isinstance(e, Response) for e in self._events(self.sock.recv(1))):
            pass
        self.frames: list[Frame] = []

    def _events(self, data: bytes) -> list[Any]:
        self.protocol.receive_data(data)
        return list(self.protocol.events_received())

    def drain(self, timeout: float = 10.0) -> Iterator[dict[str, Any] | int]:
        """Read everything now: yield each text frame (parsed) and finally the close code."""
        self.sock.settimeout(timeout)
        while True:
            data = self.sock.recv(65536)
            if not data:
                return
            for event in self._events(data):
                if isinstance(event, Frame) and event.opcode is Opcode.TEXT:
                    yield json.loads(event.data)
                elif isinstance(event, Frame) and event.opcode is Opcode.CLOSE:
                    rcvd = self.protocol.close_rcvd
                    yield rcvd.code if rcvd else 1005
                    return

    def close(self) -> None:
        self.sock.close()


def metric(server: ServerProcess, name: str, labels: dict[str, str] | None = None) -> float:
    """The value of metric sample `name` (with exactly `labels`, when given) on `server`."""
    text = httpx.get(f"{server.http}/api/dashboard/metrics/websockets", timeout=10).text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and (labels is None or sample.labels == labels):
                return float(sample.value)
    raise AssertionError(f"metric {name} {labels} not exposed")
