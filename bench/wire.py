"""A lean WebSocket client on a raw asyncio transport: the load generators' end of the wire.

Why our own instead of the `websockets` client: that client builds an event object per
frame and wakes a coroutine per message. Here the load generators share 2 cores with the
server under test and must take in 200,000+ frames/s, so a subscriber walks the unmasked
server frames (RFC 6455 §5.2) with slicing inside `data_received` and reads two numbers
from each frame with `find`: the `seq` the server gave it and the `bt` publish timestamp
the publisher put in the payload.
"""

from __future__ import annotations

import asyncio
import base64
import os
import re
import time
from collections.abc import Callable
from typing import cast

__all__ = [
    "HIST_BINS",
    "OP_CLOSE",
    "OP_PING",
    "OP_PONG",
    "OP_TEXT",
    "Subscriber",
    "client_frame",
    "handshake_request",
    "hist_bin",
    "hist_value",
    "parse_stamp",
]

OP_TEXT, OP_CLOSE, OP_PING, OP_PONG = 0x1, 0x8, 0x9, 0xA

# Latency histogram: 10 µs bins below 100 ms, then 10 ms bins up to 10 s (the last bin
# holds everything slower). Bins merge across processes by adding, unlike samples' quantiles.
_FINE_BINS = 10_000
_COARSE_BINS = 1_000
_FINE_SPAN_SECONDS = 0.1  # fine bins cover 0–100 ms, where latencies matter
_FINE_PER_SECOND = 100_000  # fine bins are 10 µs wide
_COARSE_PER_SECOND = 100  # coarse bins are 10 ms wide, up to 10.1 s
HIST_BINS = _FINE_BINS + _COARSE_BINS
_SEQ = re.compile(rb'"seq":(\d+)')
#: How every server under test begins an update frame (ours puts `type` first too).
_UPDATE = b'{"type":"agent_update"'


def hist_bin(latency: float) -> int:
    """The histogram bin of `latency` seconds (negative clock skew counts as zero)."""
    if latency < _FINE_SPAN_SECONDS:
        return int(latency * _FINE_PER_SECOND) if latency > 0 else 0
    coarse = int((latency - _FINE_SPAN_SECONDS) * _COARSE_PER_SECOND)
    return _FINE_BINS + min(coarse, _COARSE_BINS - 1)


def hist_value(index: int) -> float:
    """The latency in seconds that bin `index` stands for (its middle)."""
    if index < _FINE_BINS:
        return (index + 0.5) / _FINE_PER_SECOND  # + 0.5: the bin's middle
    return _FINE_SPAN_SECONDS + (index - _FINE_BINS + 0.5) / _COARSE_PER_SECOND


def handshake_request(host: str, port: int, target: str) -> bytes:
    """The HTTP/1.1 upgrade request for `target` (path and query), without compression."""
    key = base64.b64encode(os.urandom(16)).decode()
    return (
        f"GET {target} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    ).encode()


def client_frame(opcode: int, payload: bytes) -> bytes:
    """One final client frame. RFC 6455 §5.3 requires a mask; an all-zero key is a valid
    key that leaves the payload as is, so nothing is XORed on the hot path."""
    size = len(payload)
    if size < 126:
        head = bytes((0x80 | opcode, 0x80 | size))
    elif size < 65_536:
        head = bytes((0x80 | opcode, 0x80 | 126)) + size.to_bytes(2, "big")
    else:
        head = bytes((0x80 | opcode, 0x80 | 127)) + size.to_bytes(8, "big")
    return head + b"\x00\x00\x00\x00" + payload


def parse_stamp(payload: bytes) -> tuple[int, float] | None:
    """`(seq, bt)` of an update frame, or None for any other frame.

    The publisher puts `"bt":T` first in the data and every server under test puts
    `"seq":N` near the end of the frame, so both are found without decoding the JSON.
    """
    at = payload.find(b'"bt":')
    seq = _SEQ.match(payload, payload.rfind(b'"seq":'))
    if at < 0 or seq is None:
        return None
    return int(seq[1]), float(payload[at + 5 : payload.find(b",", at)])


class Subscriber(asyncio.Protocol):
    """One client connection that counts update frames and records their latency.

    Args:
        request: the upgrade request to send.
        hist: the worker's shared latency histogram (`HIST_BINS` counters).
        sample_every: record the latency of one update in this many (1 records all).
        on_close: called with the close code (1006 when the TCP connection just ended).

    After `opened` resolves the connection is open. Every update frame is counted; one in
    `sample_every` (and the first) is parsed for its latency and seq. Between two samples
    the seq must advance by the number of updates counted: `gaps` adds up seq numbers
    skipped, `disorder` counts samples whose seq came out lower (repeats or reordering).
    """

    def __init__(
        self,
        request: bytes,
        hist: list[int],
        sample_every: int = 1,
        on_close: Callable[[int], None] | None = None,
    ) -> None:
        self.request = request
        self.hist = hist
        self.sample_every = sample_every
        self.on_close = on_close
        self.transport: asyncio.Transport | None = None
        self.opened: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.closed: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self.buf = b""
        self.count = 0
        self.frames = 0
        self.last_seq = -1
        self.last_count = 0
        self.gaps = 0
        self.disorder = 0
        self.first_at = 0.0
        self.last_at = 0.0
        self.writable = asyncio.Event()
        self.writable.set()
        #: (arrival time, seq) of every sampled update, when enabled by the caller.
        self.timeline: list[tuple[float, int]] | None = None

    # -- asyncio.Protocol -----------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self.transport = cast(asyncio.Transport, transport)
        self.transport.write(self.request)

    def connection_lost(self, exc: Exception | None) -> None:
        self.writable.set()
        if not self.opened.done():
            self.opened.set_exception(exc or ConnectionError("closed during the handshake"))
        self._closed(1006)

    def pause_writing(self) -> None:
        self.writable.clear()

    def resume_writing(self) -> None:
        self.writable.set()

    def data_received(self, data: bytes) -> None:
        buf = self.buf + data if self.buf else data
        if not self.opened.done():
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                self.buf = buf
                return
            status = buf[: buf.find(b"\r\n")]
            if b" 101 " not in status:
                self.opened.set_exception(ConnectionError(status.decode("latin-1")))
                self._abort()
                return
            self.opened.set_result(None)
            buf = buf[end + 4 :]
        self.buf = self._frames(buf)

    # -- frames ---------------------------------------------------------------------------

    def _frames(self, buf: bytes) -> bytes:
        before = self.count
        size = len(buf)
        i = 0
        while size - i >= 2:
            length = buf[i + 1] & 0x7F
            if length < 126:
                start = i + 2
            elif length == 126:
                if size - i < 4:
                    break
                length = int.from_bytes(buf[i + 2 : i + 4], "big")
                start = i + 4
            else:
                if size - i < 10:
                    break
                length = int.from_bytes(buf[i + 2 : i + 10], "big")
                start = i + 10
            end = start + length
            if end > size:
                break
            opcode = buf[i] & 0x0F
            i = end
            if opcode == OP_TEXT:
                self.frames += 1
                if buf.startswith(_UPDATE, start):
                    self.count += 1
                    if self.count % self.sample_every == 0 or not self.first_at:
                        self._sample(buf[start:end])
            elif opcode == OP_PING:
                self.send(OP_PONG, buf[start:end])
            elif opcode == OP_CLOSE:
                code = int.from_bytes(buf[start : start + 2], "big") if length >= 2 else 1005
                self.send(OP_CLOSE, buf[start : start + 2])
                self._closed(code)
                self._abort()
                return b""
        if self.count != before:
            self.last_at = time.time()
        return buf[i:]

    def _sample(self, payload: bytes) -> None:
        """Time one update and check its seq against the count since the last sample."""
        stamp = parse_stamp(payload)
        if stamp is None:
            return
        now = time.time()
        seq, bt = stamp
        if self.first_at:
            # Every update between two samples was counted, so the seq must have moved
            # by exactly as many: more means updates were skipped, less means repeats.
            expected = self.last_seq + self.count - self.last_count
            if seq > expected:
                self.gaps += seq - expected
            elif seq < expected:
                self.disorder += 1
        else:
            self.first_at = now
        self.last_seq, self.last_count = seq, self.count
        self.hist[hist_bin(now - bt)] += 1
        if self.timeline is not None:
            self.timeline.append((now, seq))

    def send(self, opcode: int, payload: bytes) -> None:
        """Write one frame (no-op once the connection is gone)."""
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(client_frame(opcode, payload))

    def stall(self) -> None:
        """Stop reading: the server's writes to this client back up into its buffers."""
        if self.transport is not None:
            self.transport.pause_reading()

    def reset(self) -> None:
        """Zero the counters before a measured phase."""
        self.count = self.frames = self.gaps = self.disorder = self.last_count = 0
        self.first_at = self.last_at = 0.0
        self.last_seq = -1
        if self.timeline is not None:
            self.timeline.clear()

    def _closed(self, code: int) -> None:
        if not self.closed.done():
            self.closed.set_result(code)
            if self.on_close is not None:
                self.on_close(code)

    def _abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()
