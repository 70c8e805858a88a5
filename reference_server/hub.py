"""Fan-out: which connections hold which subscription, and delivery of each update to them.

`Hub.deliver` is the broker's callback. It never awaits, so one stalled reader delays
nobody. The frames go out at the end of the event-loop turn, every frame due to one
connection in one write (`flusher`), so updates delivered in the same turn (a batch read
from Redis, a burst of publishes) cost each connection one system call.

With a `Flusher`, the hub holds the turn's updates of one subscription once, not once per
subscriber: at the flush their wire bytes are joined once and written straight to every
subscriber whose outbox holds nothing (`Outbox.offer_direct`), with no per-connection queue
or task; the other subscribers (a queue or writer busy, a resume in progress, deflate, bytes
waiting in the transport) get the frames queued in their outbox, where every bound applies.
Before anything looks at an outbox or a subscription outside the fan-out (a reply, a
subscription change, a resume, a bound), the held updates are queued first (`settle`), so
each client sees frames in publish order and bounds count them as before. Measured at 1,000
subscribers, queueing per connection cost about 5 µs of CPU per delivery more than writing
straight (docs/explanation/performance.md).

A connection whose outbox is full (in frames or in bytes) is cut off with close 1013 instead,
as is one whose live updates held during a resume pass the outbox's byte bound.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from . import messages
from .broker.base import Update
from .dashboard import DashboardState
from .flusher import Flusher
from .metrics import Metrics
from .outbox import Outbox
from .session import Session
from .transport import FrameCache, wire_bytes

__all__ = ["Client", "Hub"]


class Client:
    """One client as the hub sees it: its protocol session, outbox and pending resumes.

    Args:
        session: the sans-I/O protocol state.
        outbox: the bounded queue to the socket.
        cut_off: called with a reason to close the client (notice, close code, metrics).
    """

    __slots__ = ("cut_off", "held_bytes", "outbox", "resuming", "session")

    def __init__(self, session: Session, outbox: Outbox, cut_off: Callable[[str], None]) -> None:
        self.session = session
        self.outbox = outbox
        self.cut_off = cut_off
        #: subscription -> live updates held while its resume history is fetched; None
        #: while no resume is in progress (most clients: no dict to pay for).
        self.resuming: dict[str, list[Update]] | None = None
        #: UTF-8 bytes of the updates held in `resuming`, bounded by the outbox's byte bound.
        self.held_bytes = 0

    def release(self, subscription: str) -> list[Update] | None:
        """Stop holding `subscription`'s live updates; return them (None when not held)."""
        held = self.resuming.pop(subscription, None) if self.resuming else None
        if held is not None:
            self.held_bytes -= sum(messages.utf8_length(u.text) for u in held)
        return held


class Hub:
    """The subscription index of one instance and its fan-out.

    Args:
        metrics: where subscriber gauges and backpressure cut-offs are counted.
        state: observes every delivered update (for `request_data`).
        flusher: when given, updates are held once until its flush and written straight
            to idle subscribers (see the module); without it each is queued per subscriber
            at once.
    """

    def __init__(
        self, metrics: Metrics, state: DashboardState, flusher: Flusher | None = None
    ) -> None:
        self._metrics = metrics
        self._state = state
        self.connections: set[Client] = set()
        self._by_sub: dict[str, set[Client]] = {s: set() for s in messages.SUBSCRIPTIONS}
        self._flusher = flusher
        # The held updates: all of one subscription, in publish order, and their UTF-8 bytes.
        self._due: list[Update] = []
        self._due_sub = ""
        self._due_bytes = 0
        if flusher is not None:
            flusher.broadcasts = self

    @property
    def due(self) -> bool:
        """True while updates are held for the flush."""
        return bool(self._due)

    def add(self, conn: Client) -> None:
        """Register a connection (it receives nothing until it subscribes)."""
        self.connections.add(conn)
        self._metrics.active_connections.set(len(self.connections))

    def remove(self, conn: Client) -> None:
        """Forget a connection and all its subscriptions."""
        self.connections.discard(conn)
        if conn.outbox.closing:  # nothing more goes to it: no need to queue what is held
            self._route(conn, (), messages.SUBSCRIPTIONS)
        else:
            self.change(conn, (), messages.SUBSCRIPTIONS)
        self._metrics.active_connections.set(len(self.connections))

    def change(self, conn: Client, added: Iterable[str], removed: Iterable[str]) -> None:
        """Start routing `added` subscriptions to `conn` and stop routing `removed`.

        Updates held for the flush are queued first: they were published before the change,
        so they go to the subscribers of that moment.
        """
        if self._due:
            self.settle()
        self._route(conn, added, removed)

    def _route(self, conn: Client, added: Iterable[str], removed: Iterable[str]) -> None:
        for sub in added:
            if conn in self.connections:
                self._by_sub[sub].add(conn)
                self._metrics.subscribers.labels(sub).set(len(self._by_sub[sub]))
        for sub in removed:
            members = self._by_sub[sub]
            if conn in members:
                members.discard(conn)
                self._metrics.subscribers.labels(sub).set(len(members))
            conn.release(sub)

    def hold(self, conn: Client, subscriptions: Iterable[str]) -> None:
        """Hold `conn`'s live updates of `subscriptions` from now until `release` (a resume).

        Updates already held for the flush are queued first: they precede the resume's
        position, so they must not be held with the live ones.
        """
        if self._due:
            self.settle()
        resuming = conn.resuming = conn.resuming or {}
        for sub in subscriptions:
            resuming[sub] = []

    def release(self, conn: Client, subscription: str) -> list[Update] | None:
        """Stop holding `conn`'s live updates of `subscription`; return them in order (None
        when they were not held). Updates held for the flush join them first."""
        if self._due:
            self.settle()
        return conn.release(subscription)

    def counts(self) -> dict[str, int]:
        """Subscribed connections per subscription."""
        return {sub: len(members) for sub, members in self._by_sub.items()}

    def deliver(self, update: Update) -> None:
        """Send `update` to every connection subscribed to its subscription.

        With a flusher it is held until the flush (see `write_due`); an update of another
        subscription than those held first has those queued (`settle`).
        """
        size = messages.utf8_length(update.text)  # once per update; raises before anything
        self._state.observe(update)
        sub = update.subscription
        if not self._by_sub.get(sub):
            return
        flusher = self._flusher
        if flusher is None:
            self._queue_each(update, size)
            return
        if self._due and self._due_sub != sub:
            self.settle()
        self._due.append(update)
        self._due_sub = sub
        self._due_bytes += size
        flusher.schedule()

    def settle(self) -> None:
        """Queue the held updates in every subscriber's outbox now, in publish order."""
        due, self._due, self._due_bytes = self._due, [], 0
        for update in due:
            self._queue_each(update, messages.utf8_length(update.text))

    def write_due(self, cache: FrameCache) -> tuple[int, int, float]:
        """Write the held updates to every subscriber: straight to the idle ones, one write
        each; queued in the outboxes of the others (the flusher flushes them next).

        Args:
            cache: the flush's shared wire bytes (see `transport.FrameCache`).

        Returns:
            (frames written straight, their UTF-8 bytes, the oldest publish time), for the
            flusher to count once.
        """
        due, self._due = self._due, []
        size, self._due_bytes = self._due_bytes, 0
        members = self._by_sub.get(self._due_sub)
        if not due or not members:
            return 0, 0, 0.0
        # Every text was measured in UTF-8 by `deliver`, so framing them cannot fail here.
        data = wire_bytes([u.text for u in due], cache)
        written = 0
        others: list[Client] = []
        for conn in members:
            if not conn.resuming and conn.outbox.offer_direct(data, size):
                written += 1
            else:
                others.append(conn)
        full: list[Client] = []
        if others:
            sizes = [messages.utf8_length(u.text) for u in due]
            for conn in others:
                for update, one in zip(due, sizes, strict=True):
                    if not self._queue_one(conn, update, one):
                        full.append(conn)
                        break
        for conn in full:
            conn.cut_off("backpressure")
        return written * len(due), written * size, due[0].published_at

    def _queue_each(self, update: Update, size: int) -> None:
        """Queue `update` in the outbox of every subscriber; cut off those that are full."""
        members = self._by_sub.get(update.subscription)
        if not members:
            return
        full = [conn for conn in members if not self._queue_one(conn, update, size)]
        for conn in full:
            conn.cut_off("backpressure")

    @staticmethod
    def _queue_one(conn: Client, update: Update, size: int) -> bool:
        """Queue `update` (`size` UTF-8 bytes) for `conn`, or hold it during a resume;
        False when that passes a bound (the caller cuts `conn` off)."""
        resuming = conn.resuming
        sub = update.subscription
        if resuming and sub in resuming:
            # Held while a resume waits for its history (at most resume_wait_seconds
            # with Redis); bounded in bytes like the outbox the updates are bound for.
            resuming[sub].append(update)
            conn.held_bytes += size
            return conn.held_bytes <= conn.outbox.max_bytes or conn.outbox.closing
        outbox = conn.outbox
        return outbox.put(update.text, update.published_at, size) or outbox.closing
