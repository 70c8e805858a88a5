"""The transport's shared encoded-frame cache and its straight writes, as plain calls."""

from __future__ import annotations

import asyncio

import pytest
from websockets.frames import Frame, Opcode

from reference_server.transport import _frame_bytes, transport_writers, wire_bytes

pytestmark = pytest.mark.unit


def test_the_cache_builds_each_frame_once_and_gives_the_same_bytes_to_every_recipient() -> None:
    text = '{"type":"agent_update","n":1}'
    first = _frame_bytes(text)
    assert first == Frame(Opcode.TEXT, text.encode()).serialize(mask=False)
    assert _frame_bytes(text) is first


def test_a_frame_that_cannot_be_encoded_leaves_nothing_cached_to_serve_stale() -> None:
    # Issue 11: the text was remembered before encoding raised, so the next call with the
    # same text returned the previous frame's bytes: subscribers got copies of old frames.
    earlier = _frame_bytes('{"i":1}')
    poisoned = '{"x":"\ud800"}'
    for _ in range(2):
        with pytest.raises(UnicodeEncodeError):
            _frame_bytes(poisoned)
    assert _frame_bytes('{"i":1}') == earlier


class _Transport:
    def __init__(self) -> None:
        self.data: list[bytes] = []
        self.buffered = 0
        self.closing = False

    def write(self, data: bytes) -> None:
        self.data.append(data)

    def get_write_buffer_size(self) -> int:
        return self.buffered

    def is_closing(self) -> bool:
        return self.closing


class _Conn:
    def __init__(self, extensions: list[object]) -> None:
        self.extensions = extensions

    def send_text(self, data: bytes) -> None:  # pragma: no cover - never reached here
        raise AssertionError("a straight write must not frame per connection")

    def data_to_send(self) -> list[bytes]:  # pragma: no cover
        return []


class _Protocol:
    def __init__(self, extensions: list[object] | None = None) -> None:
        self.conn = _Conn(extensions or [])
        self.transport = _Transport()
        self.writable = asyncio.Event()
        self.writable.set()
        self.disconnected = False
        self.close_sent = False


@pytest.mark.parametrize(
    "spoil",
    ["deflate", "disconnected", "close_sent", "buffered", "closing"],
)
def test_a_straight_write_is_refused_unless_the_connection_is_open_plain_and_drained(
    spoil: str,
) -> None:
    frame = Frame(Opcode.TEXT, b'{"i":1}').serialize(mask=False)
    ok = _Protocol()
    writers = transport_writers(ok)
    assert writers is not None
    assert writers[2](frame) is True and ok.transport.data == [frame]

    bad = _Protocol(["permessage-deflate"] if spoil == "deflate" else None)
    if spoil == "disconnected":
        bad.disconnected = True
    elif spoil == "close_sent":
        bad.close_sent = True  # RFC 6455 §5.5.1: no data frame after a close
    elif spoil == "buffered":
        bad.transport.buffered = 1
    elif spoil == "closing":
        bad.transport.closing = True
    writers = transport_writers(bad)
    assert writers is not None
    assert writers[2](frame) is False and bad.transport.data == []


def test_wire_bytes_of_several_frames_are_the_frames_in_a_row_built_once() -> None:
    texts = ['{"i":1}', '{"é":"€"}']
    cache: dict[object, tuple[object, bytes]] = {}
    data = wire_bytes(texts, cache)
    assert data == b"".join(Frame(Opcode.TEXT, t.encode()).serialize(mask=False) for t in texts)
    assert wire_bytes(list(texts), cache) is data
