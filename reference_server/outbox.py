"""A connection's bounded outbound queue and the task that drains it to the socket.

The broadcaster calls `Outbox.put` and moves on: it never awaits a client. When the queue
is full the put fails and the caller cuts the client off (close 1013). The writer task
sends what is queued, in order, and counts sends, bytes and publish-to-send latency once
per batch, so a busy fan-out pays for the metrics once per wake-up, not once per frame.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Awaitable, Callable

from .metrics import Metrics

__all__ = ["Outbox"]

SendText = Callable[[str], Awaitable[None]]
CloseWith = Callable[[int], Awaitable[None]]


class Outbox:
    """Bounded FIFO of encoded frames for one client, plus its writer.

    Args:
        send: writes one text frame to the client.
        close: sends the close frame with a code.
        capacity: frames the queue holds at most (`send_queue_max_messages`).
        failure_threshold: consecutive send failures after which `on_failures` is called.
        metrics: where sends are counted.
        on_failures: called once when sends keep failing (the app closes with 1013).
    """

    __slots__ = (
        "_close",
        "_failures",
        "_metrics",
        "_on_failures",
        "_send",
        "_threshold",
        "_waiter",
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
    ) -> None:
        self._send = send
        self._close = close
        self._threshold = failure_threshold
        self._metrics = metrics
        self._on_failures = on_failures
        self._failures = 0
        self._waiter: asyncio.Future[None] | None = None
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
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            if not waiter.done():
                waiter.set_result(None)
        return True

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
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
        self._waiter = None

    async def run(self) -> None:
        """Write queued frames until a close is written or the client goes away."""
        queue = self.queue
        metrics = self._metrics
        loop = asyncio.get_running_loop()
        while True:
            if not queue:
                waiter = loop.create_future()
                self._waiter = waiter
                await waiter
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
                        self._on_failures()
                        return
                    continue
                self._failures = 0
                sent += 1
                size += len(text) if text.isascii() else len(text.encode())
                if stamp and not oldest:
                    oldest = stamp
            self.send_started = 0.0
            self._flush(sent, size, oldest)

    def _flush(self, sent: int, size: int, oldest: float) -> None:
        if sent:
            self._metrics.messages_sent.inc(sent)
            self._metrics.bytes_sent.inc(size)
        if oldest:
            self._metrics.publish_to_send.observe(max(0.0, time.time() - oldest))
