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
Before anything looks at one client's outbox or subscriptions outside the fan-out (a reply,
a subscription change, a resume, a bound), that client's share of the held updates is queued
first (`settle`), so it sees frames in publish order and its bounds count them as before;
the other subscribers keep their straight write. A subscriber joining while updates are held
gets none of them: they were published before it subscribed. Measured at 1,000
subscribers, queueing per connection cost 3 to 5 µs of CPU per delivery more than writing
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
        # Each connection's client by its outbox, for `settle(outbox)`.
        self._owners: dict[Outbox, Client] = {}
        self._flusher = flusher
        # The held updates (all of one subscription, in publish order), their UTF-8 sizes
        # and total.
        self._due: list[Update] = []
        self._due_sizes: list[int] = []
        self._due_sub = ""
        self._due_bytes = 0
        # Subscribers with a share of the held updates of their own: from which index of
        # `_due` they still need them (the ones before were queued for them alone, or were
        # published before they subscribed). Empty in the common case.
        self._from: dict[Client, int] = {}
        if flusher is not None:
            flusher.broadcasts = self

    @property
    def due(self) -> bool:
        """True while updates are held for the flush."""
        return bool(self._due)

    def add(self, conn: Client) -> None:
        """Register a connection (it receives nothing until it subscribes)."""
        self.connections.add(conn)
        self._owners[conn.outbox] = conn
        self._metrics.active_connections.set(len(self.connections))

    def remove(self, conn: Client) -> None:
        """Forget a connection and all its subscriptions."""
        self.change(conn, (), messages.SUBSCRIPTIONS)
        self.connections.discard(conn)
        self._owners.pop(conn.outbox, None)
        self._metrics.active_connections.set(len(self.connections))

    def change(self, conn: Client, added: Iterable[str], removed: Iterable[str]) -> None:
        """Start routing `added` subscriptions to `conn` and stop routing `removed`.

        Updates held for the flush were published before the change: a subscriber leaving
        gets its share queued first, one joining gets none of them.
        """
        added, removed = set(added), set(removed)
        if self._due:
            sub = self._due_sub
            if sub in removed and conn in self._by_sub[sub]:
                self._settle_one(conn)
            elif sub in added and conn not in self._by_sub[sub]:
                self._from[conn] = len(self._due)
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

        Its share of the updates held for the flush is queued first: they precede the
        resume's position, so they must not be held with the live ones.
        """
        self._settle_one(conn)
        resuming = conn.resuming = conn.resuming or {}
        for sub in subscriptions:
            resuming[sub] = []

    def release(self, conn: Client, subscription: str) -> list[Update] | None:
        """Stop holding `conn`'s live updates of `subscription`; return them in order (None
        when they were not held). Its share of the updates held for the flush joins them."""
        self._settle_one(conn)
        return conn.release(subscription)

    def held(self, conn: Client) -> tuple[int, int]:
        """(frames, UTF-8 bytes) held for the flush that are due to `conn` and not yet in
        its outbox: backlog as much as its queue is."""
        if not self._due or conn not in self._by_sub[self._due_sub]:
            return 0, 0
        start = self._from.get(conn, 0)
        return len(self._due) - start, sum(self._due_sizes[start:])

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
            self.settle_all()
        self._due.append(update)
        self._due_sizes.append(size)
        self._due_sub = sub
        self._due_bytes += size
        flusher.schedule()

    def settle(self, outbox: object) -> None:
        """Queue the held updates due to `outbox`'s client in it now, in publish order."""
        conn = self._owners.get(outbox)  # type: ignore[call-overload]
        if conn is not None:
            self._settle_one(conn)

    def _settle_one(self, conn: Client) -> None:
        due = self._due
        if not due or conn not in self._by_sub[self._due_sub]:
            return
        start = self._from.get(conn, 0)
        if start == len(due):
            return
        self._from[conn] = len(due)  # first: queueing may ask to settle again
        for update, size in zip(due[start:], self._due_sizes[start:], strict=True):
            if not self._queue_one(conn, update, size):
                conn.cut_off("backpressure")
                return

    def settle_all(self) -> None:
        """Queue the held updates in every subscriber's outbox now, in publish order."""
        due, sizes, starts = self._take()
        members = self._by_sub.get(self._due_sub)
        if due and members:
            self._queue_shares(list(members), due, sizes, starts)

    def _take(self) -> tuple[list[Update], list[int], dict[Client, int]]:
        taken = self._due, self._due_sizes, self._from
        self._due, self._due_sizes, self._from, self._due_bytes = [], [], {}, 0
        return taken

    def write_due(self, cache: FrameCache) -> tuple[int, int, float]:
        """Write the held updates to every subscriber: straight to the idle ones, one write
        each; queued in the outboxes of the others (the flusher flushes them next).

        Args:
            cache: the flush's shared wire bytes (see `transport.FrameCache`).

        Returns:
            (frames written straight, their UTF-8 bytes, the oldest publish time, or 0.0
            when nothing was written straight), for the flusher to count once.
        """
        size = self._due_bytes
        due, sizes, starts = self._take()
        members = self._by_sub.get(self._due_sub)
        if not due or not members:
            return 0, 0, 0.0
        # Every text was measured in UTF-8 by `deliver`, so framing them cannot fail here.
        data = wire_bytes([u.text for u in due], cache)
        written = 0
        others: list[Client] = []
        for conn in members:
            if (
                (not starts or conn not in starts)
                and not conn.resuming
                and conn.outbox.offer_direct(data, size)
            ):
                written += 1
            else:
                others.append(conn)
        if others:
            self._queue_shares(others, due, sizes, starts)
        if not written:
            return 0, 0, 0.0
        return written * len(due), written * size, due[0].published_at

    def _queue_shares(
        self,
        conns: list[Client],
        due: list[Update],
        sizes: list[int],
        starts: dict[Client, int],
    ) -> None:
        """Queue for each of `conns` the updates of `due` it has not had yet; cut off
        those that are full."""
        full: list[Client] = []
        for conn in conns:
            start = starts.get(conn, 0)
            for update, size in zip(due[start:], sizes[start:], strict=True):
                if not self._queue_one(conn, update, size):
                    full.append(conn)
                    break
        for conn in full:
            conn.cut_off("backpressure")

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
