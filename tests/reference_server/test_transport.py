"""The transport's shared encoded-frame cache, as plain function calls."""

from __future__ import annotations

import pytest
from websockets.frames import Frame, Opcode

from reference_server.transport import _frame_bytes

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
