"""`finish_within`: the deadline every shutdown step of the Redis link is waited for with.

The link itself runs against real Redis in `test_redis.py`; these tests pin the one helper
whose job is to survive work that ignores its cancellation (CPython gh-86296).
"""

from __future__ import annotations

import asyncio
import contextlib
import time

import pytest

from reference_server.broker.link import finish_within

pytestmark = pytest.mark.unit


async def stubborn(seconds: float, stop: asyncio.Event) -> None:
    """Work that loses every cancellation, as a task can inside redis-py on Python 3.11."""
    while not stop.is_set():
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.sleep(seconds)


def test_work_that_finishes_in_time_is_reported_finished_even_when_it_failed() -> None:
    async def fails() -> None:
        raise ConnectionError("a dead connection")

    async def scenario() -> None:
        assert await finish_within(1.0, asyncio.sleep(0))
        assert await finish_within(1.0, fails())

    asyncio.run(scenario())


def test_work_that_ignores_its_cancellation_is_left_behind_after_the_deadline() -> None:
    async def scenario() -> None:
        stop = asyncio.Event()
        began = time.monotonic()
        assert not await finish_within(0.2, stubborn(0.05, stop))
        assert time.monotonic() - began < 2.0  # the deadline, not the work, decided
        stop.set()  # let the abandoned work end, so the loop closes cleanly

    asyncio.run(scenario())
