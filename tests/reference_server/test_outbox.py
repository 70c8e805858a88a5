"""The outbound queue of one client, without sockets: writers are plain recording callables."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from reference_server.flusher import Flusher
from reference_server.metrics import Metrics
from reference_server.outbox import Outbox
from reference_server.transport import FrameCache

pytestmark = pytest.mark.unit

#: A publish time: frames that carry one are updates, which the window may hold.
STAMP = 1_795_000_000.0


def sample(metrics: Metrics, name: str) -> float:
    value = metrics.registry.get_sample_value(name)
    return 0.0 if value is None else value


class Wire:
    """Records what the outbox writes: text frames, batches, close codes."""

    def __init__(self, *, fail: bool = False, room: bool = True) -> None:
        self.sent: list[str] = []
        self.batches: list[list[str]] = []
        self.closed: list[int] = []
        self.written_now: list[list[str]] = []
        self.fail = fail
        self.room = room
        self.failures_reported = 0

    async def send(self, text: str) -> None:
        await asyncio.sleep(0)
        if self.fail:
            raise ConnectionError("gone")
        self.sent.append(text)

    async def close(self, code: int) -> None:
        self.closed.append(code)

    async def send_batch(self, texts: list[str]) -> None:
        await asyncio.sleep(0)
        if self.fail:
            raise ConnectionError("gone")
        self.batches.append(list(texts))

    def write_many(self, texts: list[str], cache: FrameCache) -> bool:
        if not self.room:
            return False
        self.written_now.append(list(texts))
        return True

    def on_failures(self) -> None:
        self.failures_reported += 1


def make(
    wire: Wire,
    *,
    capacity: int = 4,
    threshold: int = 2,
    batch: bool = False,
    now: bool = False,
    max_bytes: int = 1 << 20,
    buffered: Callable[[], int] | None = None,
    delay: float = 0.0,
    window: float = 0.0,
) -> tuple[Outbox, Metrics]:
    metrics = Metrics()
    outbox = Outbox(
        wire.send,
        wire.close,
        capacity=capacity,
        failure_threshold=threshold,
        metrics=metrics,
        on_failures=wire.on_failures,
        max_bytes=max_bytes,
        send_batch=wire.send_batch if batch else None,
        write_many=wire.write_many if now else None,
        flusher=Flusher(metrics, delay, window) if now else None,
        buffered=buffered,
    )
    return outbox, metrics


def run(scenario: Callable[[], Awaitable[Any]]) -> Any:
    return asyncio.run(scenario())


async def until(done: Callable[[], bool]) -> None:
    """Let the writer task run until `done()` holds (a bounded number of loop turns)."""
    for _ in range(100):
        if done():
            await asyncio.sleep(0)
            return
        await asyncio.sleep(0)
    raise AssertionError("the writer never got there")


async def settle(outbox: Outbox) -> None:
    """Let the writer task run until the queue is drained."""
    await until(lambda: not outbox.queue and outbox.send_started == 0.0)


def test_frames_are_sent_in_order_and_counted_once_each() -> None:
    async def scenario() -> None:
        wire = Wire()
        outbox, metrics = make(wire)
        for text in ("a", "bb", "ccc"):
            assert outbox.put(text)
        await settle(outbox)
        await outbox.finish(grace=0.1)
        assert wire.sent == ["a", "bb", "ccc"]
        assert sample(metrics, "leanvibe_ws_messages_sent_total") == 3
        assert sample(metrics, "leanvibe_ws_bytes_sent_total") == 6

    run(scenario)


def test_bytes_sent_are_counted_in_utf8_bytes_not_characters() -> None:
    async def scenario() -> None:
        wire = Wire()
        outbox, metrics = make(wire)
        outbox.put("é€")  # 2 + 3 bytes
        await settle(outbox)
        assert sample(metrics, "leanvibe_ws_bytes_sent_total") == 5

    run(scenario)


def test_a_full_queue_refuses_the_next_frame_and_queues_nothing() -> None:
    async def scenario() -> None:
        wire = Wire()
        outbox, _ = make(wire, capacity=2)
        assert outbox.put("1") and outbox.put("2")
        assert not outbox.put("3")
        assert [t for t, _, _ in outbox.queue] == ["1", "2"]
        await settle(outbox)
        assert wire.sent == ["1", "2"]

    run(scenario)


def test_close_after_discarding_pending_sends_only_the_notice_then_the_code() -> None:
    async def scenario() -> None:
        wire = Wire()
        outbox, _ = make(wire)
        outbox.put("stale-1")
        outbox.put("stale-2")
        outbox.close_after("notice", 1013, discard_pending=True)
        assert not outbox.put("late")  # nothing can be queued after a close
        await outbox.finish(grace=1.0)
        assert wire.sent == ["notice"]
        assert wire.closed == [1013]

    run(scenario)


def test_close_after_keeping_pending_sends_them_before_the_notice() -> None:
    async def scenario() -> None:
        wire = Wire()
        outbox, _ = make(wire)
        outbox.put("update")
        outbox.close_after("notice", 1001, discard_pending=False)
        outbox.close_after("second notice", 1000, discard_pending=False)  # ignored
        await outbox.finish(grace=1.0)
        assert wire.sent == ["update", "notice"]
        assert wire.closed == [1001]

    run(scenario)


def test_sends_that_keep_failing_report_once_and_stop_the_client() -> None:
    async def scenario() -> None:
        wire = Wire(fail=True)
        outbox, metrics = make(wire, threshold=2)
        for text in ("a", "b", "c"):
            outbox.put(text)
        await until(lambda: wire.failures_reported > 0)
        assert wire.failures_reported == 1
        assert outbox.closing
        assert not outbox.put("d")
        assert sample(metrics, "leanvibe_ws_messages_send_failures_total") == 2
        assert sample(metrics, "leanvibe_ws_messages_sent_total") == 0

    run(scenario)


def test_frames_put_in_one_turn_leave_in_one_write_at_its_end() -> None:
    async def scenario() -> None:
        wire = Wire()
        outbox, metrics = make(wire, now=True, capacity=10)
        for text in ("a", "bb", "ccc"):
            assert outbox.put(text, 1.0)
        assert wire.written_now == []  # nothing before the end of the turn
        await asyncio.sleep(0)
        assert wire.written_now == [["a", "bb", "ccc"]]
        assert not outbox.queue and outbox.queued_bytes == 0
        # Counted by the flush: frames, bytes, one latency for the write's oldest frame.
        assert sample(metrics, "leanvibe_ws_messages_sent_total") == 3
        assert sample(metrics, "leanvibe_ws_bytes_sent_total") == 6
        assert sample(metrics, "leanvibe_ws_publish_to_send_seconds_count") == 1

    run(scenario)


def test_the_write_delay_holds_frames_for_that_long_and_then_writes_them_together() -> None:
    async def scenario() -> None:
        wire = Wire()
        outbox, _ = make(wire, now=True, capacity=10, delay=0.05)
        outbox.put("a")
        await asyncio.sleep(0)
        outbox.put("b")  # a later turn, within the delay
        await asyncio.sleep(0)
        assert wire.written_now == []
        await asyncio.sleep(0.2)  # nothing else runs on this loop: the timer fires in time
        assert wire.written_now == [["a", "b"]]

    run(scenario)


def test_the_coalesce_window_writes_a_quiet_flush_at_once_and_holds_a_busy_one() -> None:
    async def scenario() -> None:
        wire = Wire()
        outbox, _ = make(wire, now=True, capacity=10, window=0.05)
        outbox.put("a", STAMP)
        await asyncio.sleep(0)
        assert wire.written_now == [["a"]]  # no flush before: written at the turn's end
        outbox.put("b", STAMP)  # a later turn, within the window since "a": close, not yet a rate
        await asyncio.sleep(0)
        assert wire.written_now == [["a"], ["b"]]
        outbox.put("c", STAMP)  # the second flush in a row within the window: held
        await asyncio.sleep(0)
        outbox.put("d", STAMP)
        await asyncio.sleep(0)
        assert wire.written_now == [["a"], ["b"]]
        await asyncio.sleep(0.2)  # nothing else runs on this loop: the timer fires in time
        assert wire.written_now == [["a"], ["b"], ["c", "d"]]
        await asyncio.sleep(0.1)  # past the window: quiet again, written at once
        outbox.put("e", STAMP)
        await asyncio.sleep(0)
        assert wire.written_now == [["a"], ["b"], ["c", "d"], ["e"]]

    run(scenario)


def test_frames_held_for_the_window_are_written_rather_than_pass_a_bound() -> None:
    async def scenario() -> None:
        wire = Wire()
        outbox, _ = make(wire, now=True, capacity=100, max_bytes=10, window=10.0)
        for text in ("a", "b"):
            outbox.put(text, STAMP)
            await asyncio.sleep(0)  # two flushes in a row: from here the window holds frames
        for text in ("bbbbb", "ccccc", "ddddd"):
            assert outbox.put(text, STAMP)
        assert wire.written_now == [["a"], ["b"], ["bbbbb", "ccccc"]]
        assert list(outbox.queue) == [("ddddd", STAMP, 5)]

    run(scenario)


def test_a_reply_is_never_held_by_the_window() -> None:
    # A client paging through a snapshot waits for each answer: a window per round trip made
    # the paging slow enough for the updates it buffered meanwhile to overflow its buffer.
    async def scenario() -> None:
        wire = Wire()
        outbox, _ = make(wire, now=True, capacity=10, window=10.0)
        for text in ("a", "b"):
            outbox.put(text, STAMP)
            await asyncio.sleep(0)  # two flushes in a row: from here the window holds updates
        outbox.put("c", STAMP)
        await asyncio.sleep(0)
        assert wire.written_now == [["a"], ["b"]]  # the update is held
        outbox.put("reply")  # published_at 0.0: an answer to the client's own frame
        await asyncio.sleep(0)
        assert wire.written_now == [["a"], ["b"], ["c", "reply"]]  # both, in order, at once

    run(scenario)


def test_room_writes_held_frames_before_it_is_measured() -> None:
    async def scenario() -> None:
        wire = Wire()
        outbox, _ = make(wire, now=True, capacity=10, max_bytes=100, delay=10.0)
        outbox.put("x" * 40)
        outbox.put("y" * 40)
        assert outbox.room() == (100, 10)
        assert wire.written_now == [["x" * 40, "y" * 40]]
        outbox.put("z" * 40)
        assert not outbox.retune(capacity=1, max_bytes=10)  # "z" written, nothing waits
        assert wire.written_now[-1] == ["z" * 40]

    run(scenario)


def test_room_counts_what_the_transport_cannot_take() -> None:
    async def scenario() -> None:
        wire = Wire(room=False)
        outbox, _ = make(wire, now=True, capacity=10, max_bytes=100, delay=10.0)
        outbox.put("x" * 40)
        assert outbox.room() == (60, 9)  # still waiting: a writer task now waits for room
        assert outbox.retune(capacity=10, max_bytes=39)
        await outbox.finish(grace=0.1)

    run(scenario)


def test_frames_queue_behind_a_writer_waiting_for_room_and_never_overtake() -> None:
    async def scenario() -> None:
        wire = Wire(room=False)
        outbox, _ = make(wire, now=True)
        assert outbox.put("first")
        await asyncio.sleep(0)  # the flush finds no room and starts the writer task
        wire.room = True
        # A writer is running for "first": "second" must queue behind it.
        assert outbox.put("second")
        await settle(outbox)
        assert wire.written_now == []
        assert wire.sent == ["first", "second"]

    run(scenario)


def test_frames_held_for_the_flush_are_written_early_rather_than_pass_a_bound() -> None:
    async def scenario() -> None:
        wire = Wire()
        outbox, metrics = make(wire, now=True, capacity=2, max_bytes=100)
        assert outbox.put("1") and outbox.put("2")
        # The queue is full of frames that only wait for the end of the turn: they are
        # written now, and the third frame is queued instead of refused.
        assert outbox.put("3")
        assert wire.written_now == [["1", "2"]]
        assert sample(metrics, "leanvibe_ws_messages_sent_total") == 2
        assert outbox.put("x" * 98)  # 1 + 98 <= 100 bytes
        assert outbox.put("y" * 99)  # over 100 with "3" and "x": those are written first
        await asyncio.sleep(0)
        assert wire.written_now == [["1", "2"], ["3", "x" * 98], ["y" * 99]]

    run(scenario)


def test_a_bound_still_refuses_when_the_transport_cannot_take_the_held_frames() -> None:
    async def scenario() -> None:
        wire = Wire(room=False)
        outbox, _ = make(wire, now=True, capacity=2)
        assert outbox.put("1") and outbox.put("2")
        assert not outbox.put("3")  # no room: the early write fails, the bound holds
        assert [t for t, _, _ in outbox.queue] == ["1", "2"]

    run(scenario)


def test_held_frames_never_pass_the_byte_bound_however_long_the_burst() -> None:
    # erebe/wstunnel#538: a write buffer meant to save system calls grew to 32 MB per
    # stream and the server was OOM-killed. Held frames count against the byte bound.
    async def scenario() -> None:
        wire = Wire(room=False)
        outbox, _ = make(wire, now=True, capacity=10_000, max_bytes=1_000)
        accepted = sum(outbox.put("z" * 100) for _ in range(1_000))
        assert accepted == 10 and outbox.queued_bytes == 1_000

    run(scenario)


def test_frames_held_for_the_flush_are_dropped_when_the_client_is_gone() -> None:
    async def scenario() -> None:
        wire = Wire()
        outbox, _ = make(wire, now=True)
        outbox.put("a")
        await outbox.finish(grace=0.1)  # the read loop ended: the client left
        await asyncio.sleep(0)
        assert wire.written_now == [] and wire.sent == []
        assert not outbox.put("b")

    run(scenario)


def test_send_batch_writes_everything_queued_in_one_call() -> None:
    async def scenario() -> None:
        wire = Wire()
        outbox, metrics = make(wire, batch=True, capacity=10)
        for text in ("a", "b", "c"):
            outbox.put(text, 1.0)
        await settle(outbox)
        assert wire.batches == [["a", "b", "c"]]
        assert wire.sent == []
        assert sample(metrics, "leanvibe_ws_messages_sent_total") == 3
        assert sample(metrics, "leanvibe_ws_bytes_sent_total") == 3
        # Latency is observed once per batch, for its oldest frame.
        assert sample(metrics, "leanvibe_ws_publish_to_send_seconds_count") == 1

    run(scenario)


def test_send_batch_stops_at_a_close_and_sends_the_close_after_the_batch() -> None:
    async def scenario() -> None:
        wire = Wire()
        outbox, _ = make(wire, batch=True)
        outbox.put("a")
        outbox.close_after("notice", 1000, discard_pending=False)
        await outbox.finish(grace=1.0)
        assert wire.batches == [["a", "notice"]]
        assert wire.closed == [1000]

    run(scenario)


def test_a_failed_batch_counts_every_frame_as_failed() -> None:
    async def scenario() -> None:
        wire = Wire(fail=True)
        outbox, metrics = make(wire, batch=True, threshold=10)
        outbox.put("a")
        outbox.put("b")
        await settle(outbox)
        assert sample(metrics, "leanvibe_ws_messages_send_failures_total") == 2
        assert wire.failures_reported == 0
        assert not outbox.closing

    run(scenario)


def test_the_writer_task_exists_only_while_frames_wait() -> None:
    async def scenario() -> None:
        wire = Wire()
        outbox, _ = make(wire)
        outbox.put("a")
        await settle(outbox)
        await asyncio.sleep(0)
        outbox.put("b")  # a new writer starts for it
        await settle(outbox)
        assert wire.sent == ["a", "b"]

    run(scenario)


def test_the_byte_bound_refuses_a_frame_that_would_pass_it_and_keeps_the_ones_before() -> None:
    async def scenario() -> None:
        wire = Wire()
        outbox, _ = make(wire, capacity=100, max_bytes=10)
        assert outbox.put("aaaa") and outbox.put("bbbb")  # 8 bytes waiting
        assert not outbox.put("ccc")  # 11 > 10: refused, nothing queued
        assert outbox.put("dd")  # exactly 10
        assert outbox.queued_bytes == 10 and len(outbox.queue) == 3
        await settle(outbox)
        assert wire.sent == ["aaaa", "bbbb", "dd"] and outbox.queued_bytes == 0

    run(scenario)


def test_the_byte_bound_counts_utf8_bytes_not_characters() -> None:
    async def scenario() -> None:
        outbox, _ = make(Wire(), capacity=100, max_bytes=8)
        assert outbox.put("€€")  # 6 bytes, 2 characters
        assert not outbox.put("€")  # 9 bytes > 8

    run(scenario)


def test_the_transport_buffer_counts_against_the_byte_bound() -> None:
    async def scenario() -> None:
        wire = Wire()
        in_kernel_queue = [0]
        outbox, _ = make(
            wire, capacity=100, max_bytes=100, now=True, buffered=lambda: in_kernel_queue[0]
        )
        in_kernel_queue[0] = 95  # written earlier, the client has not read it
        assert not outbox.put("x" * 6)  # 95 + 6 > 100: neither written nor queued
        assert wire.written_now == [] and not outbox.queue
        assert outbox.put("x" * 5)
        await asyncio.sleep(0)
        assert wire.written_now == [["x" * 5]]

    run(scenario)


def test_one_frame_larger_than_the_bound_passes_when_nothing_waits() -> None:
    async def scenario() -> None:
        wire = Wire()
        outbox, _ = make(wire, capacity=100, max_bytes=4)
        assert outbox.put("x" * 50)
        assert not outbox.put("y")
        await settle(outbox)
        assert wire.sent == ["x" * 50]

    run(scenario)


def test_a_batch_stays_counted_until_the_transport_takes_it() -> None:
    async def scenario() -> None:
        gate = asyncio.Event()
        taken: list[list[str]] = []

        async def slow_batch(texts: list[str]) -> None:
            await gate.wait()  # the transport's buffer is over its high-water mark
            taken.append(texts)

        metrics = Metrics()
        wire = Wire()
        outbox = Outbox(
            wire.send,
            wire.close,
            capacity=100,
            failure_threshold=2,
            metrics=metrics,
            on_failures=wire.on_failures,
            max_bytes=10,
            send_batch=slow_batch,
        )
        assert outbox.put("a" * 8)
        await until(lambda: not outbox.queue)  # popped into the waiting batch
        assert outbox.queued_bytes == 8
        assert not outbox.put("b" * 3)  # still 8 waiting: 11 > 10
        gate.set()
        await until(lambda: bool(taken))
        assert outbox.queued_bytes == 0

    run(scenario)


def test_the_closing_notice_passes_the_byte_bound_after_a_discard() -> None:
    async def scenario() -> None:
        wire = Wire()
        outbox, _ = make(wire, capacity=100, max_bytes=10)
        assert outbox.put("x" * 10)
        outbox.close_after("notice-longer-than-the-bound", 1013, discard_pending=True)
        await settle(outbox)
        await outbox.finish(grace=0.1)
        assert (wire.sent, wire.closed) == (["notice-longer-than-the-bound"], [1013])

    run(scenario)


def test_retune_below_the_backlog_reports_it_and_keeps_what_is_queued() -> None:
    async def scenario() -> tuple[bool, bool, int, int]:
        outbox, _ = make(Wire(), capacity=10)
        for i in range(5):
            assert outbox.put(f"frame-{i}")
        over_frames = outbox.retune(capacity=4, max_bytes=1 << 20)
        over_bytes = outbox.retune(capacity=10, max_bytes=len("frame-0") * 5 - 1)
        return over_frames, over_bytes, len(outbox.queue), outbox.capacity

    assert run(scenario) == (True, True, 5, 10)


def test_retune_at_or_above_the_backlog_is_not_over_and_binds_the_next_put() -> None:
    async def scenario() -> tuple[bool, bool, bool]:
        outbox, _ = make(Wire(), capacity=10)
        for i in range(3):
            outbox.put(f"frame-{i}")
        over = outbox.retune(capacity=3, max_bytes=1 << 20)
        return over, outbox.put("one more"), outbox.retune(capacity=4, max_bytes=21)

    assert run(scenario) == (False, False, False)


def test_retune_counts_the_transport_buffer_as_backlog() -> None:
    outbox, _ = make(Wire(), buffered=lambda: 5_000)
    assert outbox.retune(capacity=4, max_bytes=4_999)
    assert not outbox.retune(capacity=4, max_bytes=5_000)
