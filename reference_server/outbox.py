"""A connection's bounded outbound queue and the task that drains it to the socket.

The broadcaster calls `Outbox.put` (or `Outbox.offer`) and moves on: it never awaits a
client. When the queue is full the put fails and the caller cuts the client off (close
1013). The writer task sends what is queued, in order, and counts sends, bytes and
publish-to-send latency once per batch, so a busy fan-out pays for the metrics once per
wake-up, not once per frame.

Two optional fast paths skip ASGI for text frames (`transport.transport_writers` builds
them): `offer` writes a frame at once when the writer is idle and the transport has room,
and the writer hands everything queued to one `send_batch` call, one write for many frames.
Each frame sent through ASGI costs three wrapper layers, a task wake-up and a write system
call; these cost one write.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Awaitable, Callable

from .messages import utf8_length
from .metrics import Metrics
from .transport import SendBatch, WriteNow

__all__ = ["FULL", "QUEUED", "WRITTEN", "Outbox"]

SendText = Callable[[str], Awaitable[None]]
CloseWith = Callable[[int], Awaitable[None]]

FULL = 0
"""`Outbox.offer` did nothing: the queue is full or closing."""
QUEUED = 1
"""`Outbox.offer` queued the frame for the writer task."""
WRITTEN = 2
"""`Outbox.offer` wrote the frame at once; the caller counts it as sent."""


class Outbox:
    """Bounded FIFO of encoded frames for one client, plus its writer.

    Args:
        send: writes one text frame to the client.
        close: sends the close frame with a code.
        capacity: frames the queue holds at most (`send_queue_max_messages`).
        failure_threshold: consecutive send failures after which `on_failures` is called.
        metrics: where sends are counted.
        on_failures: called once when sends keep failing (the app closes with 1013).
        send_batch: writes many queued text frames at once (see `transport_writers`);
            without it each frame goes through `send`.
        write_now: lets `offer` write a frame at once while the writer is idle.
    """

    __slots__ = (
        "_close",
        "_failures",
        "_metrics",
        "_on_failures",
        "_send",
        "_send_batch",
        "_task",
        "_threshold",
        "_write_now",
        "capacity",
        "closing",
        "queue",
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
        send_batch: SendBatch | None = None,
        write_now: WriteNow | None = None,
    ) -> None:
        self._send = send
        self._send_batch = send_batch
        self._write_now = write_now
        self._close = close
        self._threshold = failure_threshold
        self._metrics = metrics
        self._on_failures = on_failures
        self._failures = 0
        # The writer task exists only while frames wait: an idle client costs no task.
        self._task: asyncio.Task[None] | None = None
        self.capacity = capacity
        #: (text, published_at) pairs; text None means "close with code published_at".
        self.queue: deque[tuple[str | None, float]] = deque()
        self.closing = False
        #: monotonic time the current send began, 0.0 while no send is in progress.
        self.send_started = 0.0

    def put(self, text: str, published_at: float = 0.0) -> bool:
        """Queue a frame; False (and nothing queued) when the queue is full or closing."""
        if self.closing or len(self.queue) >= self.capacity:
            return False
        self.queue.append((text, published_at))
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self.run())
        return True

    def offer(self, text: str, published_at: float = 0.0) -> int:
        """Write `text` now if nothing is ahead of it, else queue it like `put`.

        Returns:
            `WRITTEN` (the caller counts it as sent), `QUEUED`, or `FULL` (nothing done:
            the queue is full or closing, as when `put` returns False).
        """
        # Only while no writer runs (nothing queued or in flight), so frames never overtake.
        if self._write_now is not None and self._task is None and not self.closing:
            try:
                if self._write_now(text):
                    return WRITTEN
            except Exception:
                pass  # the queued path below meets the same failure and counts it
        return QUEUED if self.put(text, published_at) else FULL

    def close_after(self, notice: str, code: int, *, discard_pending: bool) -> None:
        """Send `notice`, then close with `code`; nothing can be queued after this.

        With `discard_pending`, frames not yet written are dropped first (a client cut off
        for not reading would never read them).
        """
        if self.closing:
            return
        if discard_pending:
            self.queue.clear()
        self.queue.append((notice, 0.0))
        self.queue.append((None, float(code)))
        self.closing = True
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self.run())

    async def finish(self, grace: float) -> None:
        """Stop the writer: let a pending close go out for up to `grace` seconds, then cancel.

        Raises:
            Exception: whatever made the writer fail, for the caller to log.
        """
        task = self._task
        if task is None:
            return
        if self.closing and not task.done():
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
                text, stamp = queue.popleft()
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
                self._failures = 0
                sent += 1
                size += utf8_length(text)
                if stamp and not oldest:
                    oldest = stamp
            self.send_started = 0.0
            self._flush(sent, size, oldest)

    async def _write_batch(self, send_batch: SendBatch) -> bool:
        """Send every text frame up to the next close with one write; False to stop."""
        queue = self.queue
        texts: list[str] = []
        oldest = 0.0
        while queue and queue[0][0] is not None:
            text, stamp = queue.popleft()
            texts.append(text)  # type: ignore[arg-type]  # checked non-None just above
            if stamp and not oldest:
                oldest = stamp
        self.send_started = time.monotonic()
        try:
            await send_batch(texts)
        except (asyncio.CancelledError, KeyboardInterrupt):
            raise
        except Exception:
            # Every frame of the batch failed, as each would have one by one.
            self.send_started = 0.0
            self._metrics.send_failures.inc(len(texts))
            self._failures += len(texts)
            if self._failures >= self._threshold:
                self.closing = True  # nothing more goes to this client
                self._on_failures()
                return False
            return True
        self.send_started = 0.0
        self._failures = 0
        size = sum(map(utf8_length, texts))
        self._flush(len(texts), size, oldest)
        return True

    def _flush(self, sent: int, size: int, oldest: float) -> None:
        if sent:
            self._metrics.messages_sent.inc(sent)
            self._metrics.bytes_sent.inc(size)
        if oldest:
            self._metrics.publish_to_send.observe(max(0.0, time.time() - oldest))
