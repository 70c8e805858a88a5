"""Coalesced writes: every frame due to one connection within one event-loop turn, in one write.

Under uvloop one `transport.write` is one `write(2)`, and that system call is most of what
fan-out costs: about 2.6 µs of CPU per write to one of 1,000 loopback sockets, against
about 0.44 µs per frame when 8 frames go in one write (docs/explanation/performance.md).
Several WebSocket frames in one TCP write are invisible to every client (RFC 6455 §5.4:
frames are delimited by their own headers, not by segments), so no protocol change is
needed.

An outbox that receives a frame while no writer task runs does not write it: it queues it
and asks the `Flusher` for a flush. The flusher collects the outboxes touched during the
turn and, at the end of it (`loop.call_soon`, or `write_delay_seconds` later), writes each
once, with everything it holds, in order. Under load one publish arrives per turn (each
HTTP publish is read in a turn of its own), so the end of the turn alone would still make
every delivery one write: a flush due less than `write_coalesce_window_seconds` after the
previous one waits for that window to end, and the publishes of the window leave together.
A quiet instance (a flush more than a window ago, e.g. 10 updates/s) adds no latency.
Updates fanned out in the same turn, a batch read from Redis (one `XREAD COUNT n`,
delivered in one turn), a resume replay and the replies to a client's frames all leave
that way. Frames that wait for the flush stay in the outbox's
queue, so they count against its bounds until the transport takes them; an outbox that
would pass a bound with frames waiting for the flush writes them first (`Outbox.put`), so
coalescing never cuts off a client that writing at once would have kept.

Fan-out to connections without extensions shares the wire bytes: one `FrameCache` per
flush gives every connection that holds the same frames in the same order the same `bytes`
object (`transport.wire_bytes`), so a flush to N connections costs N writes and one join.

Fan-out does not even queue per connection in the common case: the hub holds the turn's
updates once (`Broadcasts`, `hub.Hub`), and the flush writes their joined bytes straight to
every subscriber whose outbox holds nothing else; only the others get the frames queued.
Anything that would see one client's outbox out of step with that (a reply, a subscription
change, a resume, a bound measured) first has the hub queue that client's share of what it
holds (`Flusher.settle`), so frames keep their order and count against the bounds as before.
"""

from __future__ import annotations

import asyncio
import time
from typing import Protocol

from .metrics import Metrics
from .transport import FrameCache

__all__ = ["Broadcasts", "Flushable", "Flusher", "count"]


class Flushable(Protocol):
    """What the flusher flushes: an `outbox.Outbox`."""

    def flush(self, cache: FrameCache) -> tuple[int, int, float]:
        """Write what it holds; return (frames, UTF-8 bytes, oldest publish time or 0.0)."""
        ...


class Broadcasts(Protocol):
    """Updates held once for all their subscribers until the flush: a `hub.Hub`."""

    @property
    def due(self) -> bool:
        """True while updates are held."""
        ...

    def settle(self, outbox: object) -> None:
        """Queue the updates held for `outbox`'s client in it now, in publish order."""
        ...

    def write_due(self, cache: FrameCache) -> tuple[int, int, float]:
        """Write the held updates; return (frames, UTF-8 bytes, oldest publish time or 0.0)."""
        ...


class Flusher:
    """The outboxes of one instance that hold frames for the end of this loop turn.

    Args:
        metrics: where frames and bytes written by a flush, and their publish-to-send
            latency, are counted (once per flush, not once per connection).
        delay_seconds: how long after the first frame of a flush it runs, in seconds;
            0 (the default) is the end of the current event-loop turn. A longer delay
            trades latency for fewer writes (`write_delay_seconds`).
        window_seconds: with no delay, the shortest time between two flushes, in seconds:
            frames due less than this after the last flush wait for the window to end
            (`write_coalesce_window_seconds`; 0: every turn's frames leave at its end).
    """

    __slots__ = (
        "_busy",
        "_handle",
        "_last",
        "_metrics",
        "_pending",
        "_timed",
        "broadcasts",
        "delay_seconds",
        "window_seconds",
    )

    def __init__(
        self, metrics: Metrics, delay_seconds: float = 0.0, window_seconds: float = 0.0
    ) -> None:
        self._metrics = metrics
        self.delay_seconds = delay_seconds
        self.window_seconds = window_seconds
        self._pending: list[Flushable] = []
        self._handle: asyncio.Handle | None = None
        # True while `_handle` is a timer (the write delay or the window), not the end of
        # this turn. Not `isinstance(handle, asyncio.TimerHandle)`: uvloop's timer handles
        # are not asyncio's (MagicStack/uvloop#482).
        self._timed = False
        #: The hub's held fan-out, written first at every flush (None: there is none).
        self.broadcasts: Broadcasts | None = None
        # Monotonic time the last flush ended; -inf: none yet, so the first is never held.
        self._last = -float("inf")
        # True when the last flush was also due within the window after the one before it:
        # a sustained rate, not two updates that happen to come close together.
        self._busy = False

    def touch(self, outbox: Flushable, *, reply: bool = False) -> None:
        """Flush `outbox` with the others at the end of this turn (or later, see below).

        The flush runs `delay_seconds` after this first touch when that is set; otherwise
        at the end of this turn, unless this flush and the one before it are both due less
        than `window_seconds` after the previous flush ended: then as soon as the window
        since it has passed (adaptive flush consolidation, as Netty's
        FlushConsolidationHandler does per channel). A quiet instance, or two updates that
        merely come close together, are written at once; under a sustained rate the frames
        of several turns (several publishes) go to each connection in one write.

        The caller (the outbox) asks once per flush: it remembers that it is pending.
        A `reply` (a frame answering the client's own frame, not an update) is never held by
        the window: a client paging through a snapshot waits for each answer, and a window
        per round trip made it slow enough for the updates it buffers meanwhile to overflow.
        """
        self._pending.append(outbox)
        self.schedule(reply=reply)

    def schedule(self, *, reply: bool = False) -> None:
        """Make sure a flush comes (see `touch`); the hub calls this when it holds an update."""
        if reply:
            self.expedite()
        if self._handle is None:
            loop = asyncio.get_running_loop()
            delay = self.delay_seconds
            if delay <= 0 and self.window_seconds > 0 and not reply:
                gap = time.monotonic() - self._last
                short = gap < self.window_seconds
                if short and self._busy:
                    delay = self.window_seconds - gap
                self._busy = short
            if delay > 0:
                self._handle = loop.call_later(delay, self.flush)
                self._timed = True
            else:
                self._handle = loop.call_soon(self.flush)

    def due_this_turn(self) -> bool:
        """True when a flush will run at the end of this event-loop turn (not held by the
        write delay or the window): a caller that yields once (`asyncio.sleep(0)`) resumes
        after it."""
        return self._handle is not None and not self._timed

    def expedite(self) -> None:
        """Run a flush the window holds at the end of this turn instead (a reply is due)."""
        handle = self._handle
        if handle is not None and self._timed and self.delay_seconds <= 0:
            handle.cancel()
            self._handle = asyncio.get_running_loop().call_soon(self.flush)
            self._timed = False

    def settle(self, outbox: object) -> None:
        """Have the hub queue the updates it holds for `outbox`'s client in it, before the
        outbox is looked at.

        Called before anything reads or adds to an outbox's queue outside the fan-out (a
        reply, a close, a resume's room, a bound change): frames then stay in publish order
        and count against the bounds exactly as if they had been queued at once. Only that
        client's share is queued: the others still get one straight write at the flush.
        """
        held = self.broadcasts
        if held is not None and held.due:
            held.settle(outbox)

    def flush(self) -> None:
        """Write what the hub holds, then what every pending outbox holds; count once.

        Each connection gets one write: the hub writes straight to the connections whose
        outboxes hold nothing, and queues its frames in the others, which are flushed next
        in this same pass (`touch` while a flush is due only appends).
        """
        cache: FrameCache = {}
        sent = size = 0
        oldest: set[float] = set()
        held = self.broadcasts
        failure: Exception | None = None
        if held is not None and held.due:
            try:
                sent, size, stamp = held.write_due(cache)
            except Exception as exc:
                # Raised again below, for the loop to log; first every outbox waiting for
                # this flush is flushed: one left out would never be asked again.
                failure = exc
            else:
                if stamp:
                    oldest.add(stamp)
        self._handle = None
        self._timed = False
        pending, self._pending = self._pending, []
        for outbox in pending:
            frames, length, stamp = outbox.flush(cache)
            sent += frames
            size += length
            if stamp:
                oldest.add(stamp)
        cache.clear()  # the bytes now sit in the transports' buffers or the kernel
        count(self._metrics, sent, size, oldest)
        if self.window_seconds > 0:
            # From the end: a flush to many connections takes milliseconds itself, and the
            # window is the time the loop spends on other work between two of them. Not
            # `loop.time()`: uvloop's is libuv's clock, in milliseconds and read once per
            # loop iteration, so a flush that took 3 ms would look as if it ended at once.
            self._last = time.monotonic()
        if failure is not None:
            raise failure


def count(metrics: Metrics, sent: int, size: int, stamps: set[float] | tuple[float, ...]) -> None:
    """Count `sent` frames of `size` UTF-8 bytes written, and each publish time's latency.

    Args:
        metrics: where they are counted.
        sent: frames written.
        size: their UTF-8 bytes.
        stamps: wall-clock publish times (seconds since the epoch) of the oldest update of
            each write; one latency observation each.
    """
    if sent:
        metrics.messages_sent.inc(sent)
        metrics.bytes_sent.inc(size)
    if stamps:
        now = time.time()
        for stamp in stamps:
            metrics.publish_to_send.observe(max(0.0, now - stamp))
