"""Fan-out: which connections hold which subscription, and delivery of each update to them.

`Hub.deliver` is the broker's callback. It puts the update's one encoded frame in the
outbox of every subscribed connection and never awaits, so one stalled reader delays
nobody. The frames go out at the end of the event-loop turn, every frame due to one
connection in one write (`flusher`), so updates delivered in the same turn (a batch read
from Redis, a burst of publishes) cost each connection one system call.
A connection whose outbox is full (in frames or in bytes) is cut off with close 1013 instead,
as is one whose live updates held during a resume pass the outbox's byte bound.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from . import messages
from .broker.base import Update
from .dashboard import DashboardState
from .metrics import Metrics
from .outbox import Outbox
from .session import Session

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
    """

    def __init__(self, metrics: Metrics, state: DashboardState) -> None:
        self._metrics = metrics
        self._state = state
        self.connections: set[Client] = set()
        self._by_sub: dict[str, set[Client]] = {s: set() for s in messages.SUBSCRIPTIONS}

    def add(self, conn: Client) -> None:
        """Register a connection (it receives nothing until it subscribes)."""
        self.connections.add(conn)
        self._metrics.active_connections.set(len(self.connections))

    def remove(self, conn: Client) -> None:
        """Forget a connection and all its subscriptions."""
        self.connections.discard(conn)
        self.change(conn, (), messages.SUBSCRIPTIONS)
        self._metrics.active_connections.set(len(self.connections))

    def change(self, conn: Client, added: Iterable[str], removed: Iterable[str]) -> None:
        """Start routing `added` subscriptions to `conn` and stop routing `removed`."""
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

    def counts(self) -> dict[str, int]:
        """Subscribed connections per subscription."""
        return {sub: len(members) for sub, members in self._by_sub.items()}

    def deliver(self, update: Update) -> None:
        """Queue `update` for every connection subscribed to its subscription."""
        self._state.observe(update)
        members = self._by_sub.get(update.subscription)
        if not members:
            return
        sub = update.subscription
        text, stamp = update.text, update.published_at
        size = messages.utf8_length(text)  # once per update, not once per recipient
        full: list[Client] = []
        for conn in members:
            resuming = conn.resuming
            if resuming and sub in resuming:
                # Held while a resume waits for its history (at most resume_wait_seconds
                # with Redis); bounded in bytes like the outbox the updates are bound for.
                resuming[sub].append(update)
                conn.held_bytes += size
                if conn.held_bytes > conn.outbox.max_bytes and not conn.outbox.closing:
                    full.append(conn)
                continue
            outbox = conn.outbox
            if not outbox.put(text, stamp, size) and not outbox.closing:
                full.append(conn)
        for conn in full:
            conn.cut_off("backpressure")
