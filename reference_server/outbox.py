"""A connection's bounded outbound queue and the task that drains it to the socket.

The broadcaster calls `Outbox.put` (or `Outbox.offer`) and moves on: it never awaits a
client. The queue is bounded twice: in frames, and in bytes counting everything that waits
for the client, the queue and the transport's write buffer together (a count of frames is
not a memory bound: 1,024 frames of 32 KiB are 32 MiB). When either bound would be passed
the put fails and the caller cuts the client off (close 1013).

The writer task sends what is queued, in order, and counts sends, bytes and
publish-to-send latency once per batch, so a busy fan-out pays for the metrics once per
wake-up, not once per frame.

Two optional fast paths skip ASGI for text frames (`transport.transport_writers` builds
them): while no writer task runs, a queued frame waits for the end of the event-loop turn,
when the `Flusher` writes everything the outbox holds with one `write_many` call; and the
writer task hands everything queued to one `send_batch` call. Each frame sent through ASGI
costs three wrapper layers, a task wake-up and a write system call; these cost one write
for every frame due in the turn.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from .flusher import count
from .messages import utf8_length
from .metrics import Metrics
from .transport import FrameCache, SendBatch, WriteDirect, WriteMany

if TYPE_CHECKING:
    from .flusher import Flusher

__all__ = ["Outbox"]

SendText = Callable[[str], Awaitable[None]]
CloseWith = Callable[[int], Awaitable[None]]
Buffered = Callable[[], int]
"""Bytes written to the transport and not yet handed to the kernel."""
_NOTHING = (0, 0, 0.0)  # what a flush that wrote nothing reports: frames, bytes, oldest stamp
# The queue of every outbox with nothing queued. A deque keeps a 64-slot block (over
# 500 bytes) even when empty, so each outbox holds one only while frames wait: an idle
# client costs no queue. Nothing is ever appended to this one (see `_queue`).
_IDLE: deque[tuple[str | None, float, int]] = deque(maxlen=0)


class Outbox:
    """Bounded FIFO of encoded frames for one client, plus its writer.

    Args:
        send: writes one text frame to the client.
        close: sends the close frame with a code.
        capacity: frames the queue holds at most (`send_queue_max_messages`).
        max_bytes: UTF-8 bytes that may wait for the client at most, queued frames and the
            transport's write buffer together (`send_queue_max_bytes`). One frame always
            passes when nothing waits, so a frame larger than the bound is not refused
            alone.
        failure_threshold: consecutive send failures after which `on_failures` is called.
        metrics: where sends are counted.
        on_failures: called once when sends keep failing (the app closes with 1013).
        send_batch: writes many queued text frames at once (see `transport_writers`);
            without it each frame goes through `send`.
        write_many: writes what is queued at once, without a task, when the `flusher`
            calls `flush` (see `transport_writers`).
        flusher: collects the outboxes holding frames in this event-loop turn and flushes
            each once at its end (only together with `write_many`); with or without it,
            the updates the hub holds for this client are queued first whenever this
            outbox's queue or bounds are used (`Flusher.settle`), so they keep their order.
        write_direct: writes the shared wire bytes of held updates at once when nothing
            waits (see `offer_direct`, `transport_writers`).
        buffered: bytes in the transport's write buffer (see `transport_writers`);
            without it only the queue counts (plain ASGI sends wait for the buffer to
            drain below its high-water mark, so it stays small).
    """

    __slots__ = (
        "_buffered",
        "_close",
        "_failures",
        "_flusher",
        "_metrics",
        "_on_failures",
        "_pending",
        "_send",
        "_send_batch",
        "_task",
        "_threshold",
        "_turn",
        "_write_direct",
        "_write_many",
        "capacity",
        "closing",
        "max_bytes",
        "queue",
        "queued_bytes",
        "send_started",
    )

    def __init__(
        self,
        send: SendText,
        close: CloseWith,
        *,
        capacity: int,
        failure_threshold: int,
        metrics: Metrics,
        on_failures: Callable[[], None],
        max_bytes: int,
        send_batch: SendBatch | None = None,
        write_many: WriteMany | None = None,
        flusher: Flusher | None = None,
        buffered: Buffered | None = None,
        write_direct: WriteDirect | None = None,
    ) -> None:
        self._send = send
        self._send_batch = send_batch
        self._write_many = write_many
        self._flusher = flusher if write_many is not None else None
        self._turn = flusher
        self._write_direct = write_direct if write_many is not None else None
        # True while this outbox waits in the flusher's list for the end of the turn.
        self._pending = False
        self._buffered = buffered
        self._close = close
        self._threshold = failure_threshold
        self._metrics = metrics
        self._on_failures = on_failures
        self._failures = 0
        # The writer task exists only while frames wait: an idle client costs no task.
        self._task: asyncio.Task[None] | None = None
        self.capacity = capacity
        self.max_bytes = max_bytes
        #: (text, published_at, UTF-8 size) triples; text None means "close with code
        #: published_at".
        self.queue = _IDLE
        #: UTF-8 bytes of the frames in `queue`.
        self.queued_bytes = 0
        self.closing = False
        #: monotonic time the current send began, 0.0 while no send is in progress.
        self.send_started = 0.0

    def waiting_bytes(self) -> int:
        """Bytes waiting for the client: queued frames plus the transport's write buffer."""
        buffered = self._buffered
        return self.queued_bytes + (buffered() if buffered is not None else 0)

    def room(self) -> tuple[int, int]:
        """(bytes, frames) that may still be queued before a bound is passed.

        Frames held for the flush are written first: without coalescing they would already
        be with the kernel, so a client that reads everything must not find them counted
        against it. Every decision that compares the bounds with what waits goes through
        here or `_fits` (`Connection` sizes a resume replay with it; `retune` uses it).

        Returns:
            (`max_bytes` minus the bytes still waiting, `capacity` minus the frames still
            queued); either may be negative when a bound was lowered below what waits.
        """
        if self._turn is not None:
            self._turn.settle(self)
        if self._pending:
            self._write_pending()
        return self.max_bytes - self.waiting_bytes(), self.capacity - len(self.queue)

    def retune(self, capacity: int, max_bytes: int) -> bool:
        """Bound the queue to `capacity` frames and `max_bytes` bytes from now on.

        Frames held for the flush are written before the new bounds are compared with what
        waits (see `room`).

        Returns:
            True when what waits now passes a new bound (more frames queued than
            `capacity`, or more bytes waiting than `max_bytes`): the caller cuts the client
            off at once (close 1013) rather than wait for its next frame.
        """
        self.capacity = capacity
        self.max_bytes = max_bytes
        spare_bytes, spare_frames = self.room()
        return spare_frames < 0 or spare_bytes < 0

    def _fits(self, size: int) -> bool:
        if len(self.queue) >= self.capacity:
            return False
        waiting = self.waiting_bytes()
        # One frame always passes when nothing waits (a bound below one frame would cut
        # off every client); otherwise the bound holds exactly.
        return waiting == 0 or waiting + size <= self.max_bytes

    def put(self, text: str, published_at: float = 0.0, size: int = -1) -> bool:
        """Queue a frame; False (and nothing queued) when a bound would be passed or closing.

        Args:
            text: the encoded frame.
            published_at: wall-clock seconds of its publish (0.0: not an update).
            size: `utf8_length(text)` when the caller knows it (fan-out computes it once
                per update); measured here otherwise.
        """
        if self._turn is not None:
            self._turn.settle(self)  # updates held for the hub go first, in publish order
        if self.closing:  # (settling may have cut this client off)
            return False
        if size < 0:
            size = utf8_length(text)
        flusher = self._flusher
        if self.queue is _IDLE and flusher is not None and self._task is None:
            # The common case in fan-out, kept short: nothing queued, no writer, so only the
            # transport's buffer can count against the byte bound (`_fits`).
            buffered = self._buffered
            waiting = buffered() if buffered is not None else 0
            if waiting and waiting + size > self.max_bytes:
                return False
            self.queue = deque(((text, published_at, size),))
            self.queued_bytes = size
            self._pending = True
            flusher.touch(self, reply=not published_at)
            return True
        # Frames held for the end of the turn would have been written already without
        # coalescing: when they are in the way, write them now and look again, so that
        # holding them never cuts off a client that keeps reading.
        if not self._fits(size) and (
            not self._pending or self._write_pending() == 0 or not self._fits(size)
        ):
            return False
        self._queue().append((text, published_at, size))
        self.queued_bytes += size
        if self._task is None:
            if flusher is None:
                self._task = asyncio.get_running_loop().create_task(self.run())
            elif not self._pending:
                self._pending = True
                flusher.touch(self, reply=not published_at)
            elif not published_at:
                flusher.expedite()  # a reply behind held updates: the window holds neither
        return True

    def offer_direct(self, data: bytes, size: int) -> bool:
        """Write held updates' shared wire bytes now, if this outbox is idle; else False.

        The hub's flush calls this for every subscriber: an outbox with nothing queued, no
        writer, no close and no failed send, over a transport with nothing waiting, takes
        the bytes in one write with no queueing; any other answers False and the hub queues
        the frames with `put`, where every bound applies.

        Args:
            data: the frames' wire bytes (`transport.wire_bytes`).
            size: their UTF-8 text bytes, as `put` counts them; more than `max_bytes` goes
                through `put` (one frame larger than the bound passes there alone).
        """
        direct = self._write_direct
        if (
            direct is None
            or self.queue is not _IDLE
            or self._task is not None
            or self.closing
            or self._failures
            or size > self.max_bytes
        ):
            return False
        return direct(data)

    def _queue(self) -> deque[tuple[str | None, float, int]]:
        """The queue to append to: a fresh one when the outbox holds none."""
        queue = self.queue
        if queue is _IDLE:
            queue = self.queue = deque()
        return queue

    def flush(self, cache: FrameCache) -> tuple[int, int, float]:
        """Write everything queued with one `write_many` call (the flusher calls this).

        Nothing is written while a writer task runs (it sends the queue in order itself) or
        after a close. When the transport has no room or the write fails, a writer task is
        started: it waits for room, or meets the failure again and counts it.

        Args:
            cache: the flush's shared wire bytes (see `transport.FrameCache`).

        Returns:
            (frames written, their UTF-8 bytes, the oldest publish time among them or 0.0),
            for the caller to count once for every outbox of the flush.
        """
        self._pending = False
        queue = self.queue
        write = self._write_many
        if write is None or self._task is not None or self.closing or not queue:
            return _NOTHING
        # With no writer task, nothing is in flight and no close is queued: the queue holds
        # text frames only, and `queued_bytes` is exactly theirs.
        if len(queue) == 1:  # the common case: one update fanned out this turn
            text, oldest, _ = queue[0]
            texts: list[str] = [text]  # type: ignore[list-item]  # a close is never queued here
        else:
            oldest = 0.0
            texts = []
            for text, stamp, _ in queue:
                texts.append(text)  # type: ignore[arg-type]  # a close is never queued here
                if stamp and not oldest:
                    oldest = stamp
        try:
            written = write(texts, cache)
        except Exception:
            written = False  # the writer task meets the same failure and counts it
        if not written:
            self._task = asyncio.get_running_loop().create_task(self.run())
            return _NOTHING
        size = self.queued_bytes
        self.queue = _IDLE
        self.queued_bytes = 0
        self._failures = 0
        return len(texts), size, oldest

    def _write_pending(self) -> int:
        """Flush this outbox alone, now, counting what it wrote; return the frames written."""
        sent, size, oldest = self.flush({})
        count(self._metrics, sent, size, (oldest,) if oldest else ())
        return sent

    def close_after(self, notice: str, code: int, *, discard_pending: bool) -> None:
        """Send `notice`, then close with `code`; nothing can be queued after this.

        With `discard_pending`, frames not yet written are dropped first (a client cut off
        for not reading would never read them).
        """
        if self._turn is not None:
            self._turn.settle(self)  # held updates go before the notice, as if queued
        if self.closing:  # (settling may have cut this client off: its close is queued)
            return
        self._pending = False  # the writer task below sends what is queued, in order
        if discard_pending:
            self.queue.clear()  # in place: a running writer holds this very deque
            self.queued_bytes = 0
        # The notice and the close pass every bound: they are the last frames.
        size = utf8_length(notice)
        queue = self._queue()
        queue.append((notice, 0.0, size))
        queue.append((None, float(code), 0))
        self.queued_bytes += size
        self.closing = True
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self.run())

    async def finish(self, grace: float) -> None:
        """Stop the writer: let a pending close go out for up to `grace` seconds, then cancel.

        Raises:
            Exception: whatever made the writer fail, for the caller to log.
        """
        closing = self.closing
        # The client is gone or closed: frames still held for the flush are never written.
        self.closing = True
        task = self._task
        if task is None:
            return
        if closing and not task.done():
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(asyncio.shield(task), grace)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    async def run(self) -> None:
        """Write queued frames until the queue is empty, a close is written or sends fail.

        Started by `put` and `close_after`; it clears its own handle when it ends, so the
        next frame queued starts a new one.
        """
        try:
            await self._drain()
        finally:
            self._task = None
            if not self.queue:
                self.queue = _IDLE

    async def _drain(self) -> None:
        queue = self.queue
        metrics = self._metrics
        while queue:
            if self._send_batch is not None and queue[0][0] is not None:
                if not await self._write_batch(self._send_batch):
                    return
                continue
            sent = 0
            size = 0
            oldest = 0.0
            for _ in range(len(queue)):
                text, stamp, length = queue.popleft()
                if text is None:
                    self._flush(sent, size, oldest)
                    self.send_started = time.monotonic()
                    # The client may already be gone; the close is then moot.
                    with contextlib.suppress(Exception):
                        await self._close(int(stamp))
                    self.send_started = 0.0
                    return
                self.send_started = time.monotonic()
                try:
                    await self._send(text)
                except (asyncio.CancelledError, KeyboardInterrupt):
                    raise
                except Exception:
                    self.queued_bytes -= length
                    # Starlette raises WebSocketDisconnect/RuntimeError, uvicorn its own
                    # ClientDisconnected, the OS an OSError: all mean this send failed.
                    metrics.send_failures.inc()
                    self._failures += 1
                    if self._failures >= self._threshold:
                        self._flush(sent, size, oldest)
                        self.send_started = 0.0
                        self.closing = True  # nothing more goes to this client
                        self._on_failures()
                        return
                    continue
                # Counted until written, like a batch (see `_write_batch`).
                self.queued_bytes -= length
                self._failures = 0
                sent += 1
                size += length
                if stamp and not oldest:
                    oldest = stamp
            self.send_started = 0.0
            self._flush(sent, size, oldest)

    async def _write_batch(self, send_batch: SendBatch) -> bool:
        """Send every text frame up to the next close with one write; False to stop."""
        queue = self.queue
        texts: list[str] = []
        oldest = 0.0
        size = 0
        while queue and queue[0][0] is not None:
            text, stamp, length = queue.popleft()
            texts.append(text)  # type: ignore[arg-type]  # checked non-None just above
            size += length
            if stamp and not oldest:
                oldest = stamp
        self.send_started = time.monotonic()
        try:
            await send_batch(texts)
        except (asyncio.CancelledError, KeyboardInterrupt):
            raise
        except Exception:
            # Every frame of the batch failed, as each would have one by one.
            self.queued_bytes -= size
            self.send_started = 0.0
            self._metrics.send_failures.inc(len(texts))
            self._failures += len(texts)
            if self._failures >= self._threshold:
                self.closing = True  # nothing more goes to this client
                self._on_failures()
                return False
            return True
        # The batch stays counted while `send_batch` waits for the transport to drain; from
        # here its bytes sit in the transport's buffer, which `buffered` counts.
        self.queued_bytes -= size
        self.send_started = 0.0
        self._failures = 0
        self._flush(len(texts), size, oldest)
        return True

    def _flush(self, sent: int, size: int, oldest: float) -> None:
        count(self._metrics, sent, size, (oldest,) if oldest else ())
