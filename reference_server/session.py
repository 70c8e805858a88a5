"""The per-connection protocol state machine, without I/O.

`Session.receive(raw, now, wall)` takes one inbound message and returns the actions to carry
out: frames to send, subscription changes, a close. It never awaits, never reads a clock and
never touches a socket or a broker; the app feeds it and performs its actions. `now` is a
monotonic time in seconds (limits), `wall` is seconds since the epoch (timestamps).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from . import messages
from .broker.base import History, Update
from .errors import DataRequestError, FrameError
from .messages import IdFactory
from .ratelimit import RateLimiter, Verdict
from .settings import Settings

__all__ = [
    "Action",
    "Close",
    "DataSource",
    "Dropped",
    "Send",
    "Session",
    "SubscriptionsChanged",
    "replay",
]

DataSource = Callable[[str, Mapping[str, Any]], tuple[dict[str, Any], dict[str, int]]]
"""Answers `request_data` from live server state with `(data, positions)`, both taken in one
call (`positions`: subscription -> the seq of the last update the data reflects); raises
DataRequestError when it cannot."""

# RFC 6455 §7.4.1: 1000 normal closure, 1001 going away, 1008 policy violation,
# 1013 try again later. 4401/4403 are application codes (4000-4999) mirroring HTTP 401/403,
# because a browser cannot read the status of a refused handshake.
CLOSE_CODES: dict[str, int] = {
    "idle_timeout": 1000,
    "server_shutdown": 1001,
    "rate_limited": 1008,
    "backpressure": 1013,
    "unauthorized": 4401,
    "forbidden_origin": 4403,
}


@dataclass(frozen=True, slots=True)
class Send:
    """Send `text` (an encoded frame of type `kind`) to the client.

    `correlation_id` and `detail` (an error's code) are there for the logs.
    """

    text: str
    kind: str
    correlation_id: str = ""
    detail: str = ""


@dataclass(frozen=True, slots=True)
class Close:
    """Send `notice` (the `disconnect_notice` frame), then close with `code`."""

    code: int
    reason: str
    notice: str


@dataclass(frozen=True, slots=True)
class SubscriptionsChanged:
    """Route updates of `added` to this connection and stop routing `removed`.

    `resume` maps subscriptions (all in `added` or already held) to the last seq the client
    saw: buffer their live updates, fetch history, then call `Session.finish_resume`.
    """

    added: frozenset[str]
    removed: frozenset[str]
    resume: Mapping[str, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Dropped:
    """An inbound frame was dropped by the rate limiter (for the metrics)."""


Action = Send | Close | SubscriptionsChanged | Dropped
"""What `Session` asks the app to do; carry each out in order."""


def replay(
    last_seq: int, history: History, buffered: Iterable[Update]
) -> tuple[bool, list[Update]]:
    """Merge a resume's history with the live updates buffered while it was fetched.

    Returns:
        Whether a resync is needed (some updates after `last_seq` are gone), and the updates
        to send, in seq order, with no gap beyond that and no duplicate.
    """
    resync = not history.covers(last_seq)
    out = [u for u in history.updates if u.seq > last_seq]
    high = out[-1].seq if out else history.latest_seq
    for update in buffered:
        if update.seq > high:
            out.append(update)
            high = update.seq
    return resync, out


# Room kept for the `resync_required` frame that announces a trimmed replay (the frame is
# about 250 bytes; a correlation id can add 128 characters).
_RESYNC_FRAME_BYTES = 512


def _newest_that_fit(updates: list[Update], room: tuple[int, int]) -> list[Update]:
    """The longest tail of `updates` within `room` (bytes, frames), kept for a resync frame."""
    budget, frames = room[0] - _RESYNC_FRAME_BYTES, room[1] - 1
    total = sum(messages.utf8_length(u.text) for u in updates)
    if total <= room[0] and len(updates) <= room[1]:
        return updates
    start = 0
    while start < len(updates) and (total > budget or len(updates) - start > frames):
        total -= messages.utf8_length(updates[start].text)
        start += 1
    return updates[start:]


class Session:
    """One client's protocol state: subscriptions, rate limit, idleness.

    Args:
        connection_id: the server-chosen id of this connection.
        settings: the limits in force.
        data_source: answers `request_data`.
        now: monotonic time at accept, in seconds.
        new_id: makes the correlation id of a frame that answers no client frame (or one
            without a usable id).
    """

    __slots__ = (
        "_data_source",
        "_last_valid",
        "_limiter",
        "_new_id",
        "_settings",
        "closed",
        "connection_id",
        "subscriptions",
    )

    def __init__(
        self,
        connection_id: str,
        settings: Settings,
        data_source: DataSource,
        now: float,
        *,
        new_id: IdFactory,
    ) -> None:
        self.connection_id = connection_id
        self._new_id = new_id
        self.subscriptions: set[str] = set()
        self.closed = False
        self._settings = settings
        self._data_source = data_source
        self._last_valid = now
        self._limiter = RateLimiter(
            rate=settings.rate_tokens_per_sec,
            burst=settings.rate_burst,
            cooldown=settings.rate_notify_cooldown_seconds,
            flood_threshold=settings.flood_drop_threshold,
            flood_window=settings.flood_window_seconds,
            now=now,
        )

    # -- limits -------------------------------------------------------------------------

    def apply(self, settings: Settings, now: float) -> None:
        """Use `settings` from `now` on: the token bucket's rate and burst, the idle timeout.

        The tokens earned so far are kept (down to the new burst); idleness is still
        counted from the last valid frame, so a shorter timeout closes a client that has
        been quiet longer at the next `tick`.
        """
        self._settings = settings
        self._limiter.retune(settings.rate_tokens_per_sec, settings.rate_burst, now)

    def tokens_left(self, now: float) -> float:
        """Tokens the client has left at `now` (monotonic seconds)."""
        return self._limiter.tokens(now)

    def idle_seconds(self, now: float) -> float:
        """Seconds from the last valid inbound frame (or the accept) to `now`."""
        return max(0.0, now - self._last_valid)

    # -- frames -------------------------------------------------------------------------

    def _send(self, kind: str, wall: float, cid: str | None = None, **fields: Any) -> Send:
        cid = cid or self._new_id()
        body = messages.frame(kind, correlation_id=cid, wall=wall, **fields)
        return Send(messages.encode(body), kind, cid, fields.get("code", ""))

    def _error(self, code: str, message: str, wall: float, cid: str | None) -> Send:
        return self._send("error", wall, cid, message=message, code=code)

    def _invalid_query(self, query: str, wall: float) -> Send:
        return self._error(
            "invalid_text", f"Invalid text: the {query} query is not valid Unicode", wall, None
        )

    def close(self, reason: str, wall: float) -> list[Action]:
        """Send `disconnect_notice` for `reason`, then close with its code."""
        if self.closed:
            return []
        self.closed = True
        notice = self._send("disconnect_notice", wall, reason=reason)
        return [Close(CLOSE_CODES[reason], reason, notice.text)]

    # -- lifecycle ----------------------------------------------------------------------

    def start(self, subscriptions: str | None, resume: str | None, wall: float) -> list[Action]:
        """Open the session: `connection_established`, then any error about the query.

        Args:
            subscriptions: the `subscriptions` query (`a,b`), or None when absent (defaults).
            resume: the `resume` query (`agents:41,tasks:7`: last seq seen), or None.
            wall: wall-clock time.
        """
        errors: list[Action] = []
        # The connection decodes the query strictly (`messages.decode_query`): bytes that
        # are not UTF-8 arrive as lone surrogates. Echoed in an error, they would make that
        # frame unsendable; they are refused with invalid_text and treated as empty.
        if subscriptions is not None and not messages.is_valid_text(subscriptions):
            errors.append(self._invalid_query("subscriptions", wall))
            subscriptions = ""
        if resume is not None and not messages.is_valid_text(resume):
            errors.append(self._invalid_query("resume", wall))
            resume = None
        names = (
            messages.DEFAULT_SUBSCRIPTIONS
            if subscriptions is None
            else [n.strip() for n in subscriptions.split(",") if n.strip()]
        )
        last_seen: dict[str, int] = {}
        for part in (resume or "").split(","):
            name, _, seq = part.strip().partition(":")
            if not name:
                continue
            # 18 digits stay below 2**63: a seq every client language holds as an integer.
            # ASCII only: str.isdigit accepts "²" and "٣", and int("²") raises.
            if not messages.is_ascii_digits(seq) or len(seq) > 18:
                errors.append(
                    self._error(
                        "invalid_field",
                        "Invalid resume query: expected subscription:seq pairs, got "
                        + part[: messages.ECHO_CHARS],
                        wall,
                        None,
                    )
                )
                continue
            last_seen[name] = int(seq)
        sub_errors, change, _ = self._apply_subscribe(names, last_seen, wall, None)
        first = self._send(
            "connection_established",
            wall,
            connection_id=self.connection_id,
            subscriptions=sorted(self.subscriptions),
            server_time=messages.utc_timestamp(wall),
            contract_version=messages.CONTRACT_VERSION,
        )
        return [first, *sub_errors, *errors, *([change] if change else [])]

    def tick(self, now: float, wall: float) -> list[Action]:
        """Check idleness; call periodically. Returns the close when the client is idle."""
        if not self.closed and now - self._last_valid >= self._settings.idle_disconnect_seconds:
            return self.close("idle_timeout", wall)
        return []

    def receive(self, raw: str | bytes, now: float, wall: float) -> list[Action]:
        """Handle one inbound message (text or binary) and return the actions it causes."""
        if self.closed:
            return []
        verdict = self._limiter.check(now)
        if verdict is Verdict.DISCONNECT:
            return [Dropped(), *self.close("rate_limited", wall)]
        if verdict is Verdict.DROP:
            return [Dropped()]
        if verdict is Verdict.DROP_AND_NOTIFY:
            return [Dropped(), self._error("rate_limited", "Rate limit exceeded", wall, None)]
        # The size is that of the raw frame, checked before parsing (never by re-serialising).
        if isinstance(raw, bytes):
            size = len(raw)
        elif messages.is_valid_text(raw):
            size = messages.utf8_length(raw)
        else:
            # uvicorn decodes text frames strictly (invalid UTF-8 closes 1007), so only a
            # caller of this sans-I/O class can hand over such a str; it is refused all the same.
            return [
                self._error(
                    "invalid_text", "Invalid text: the frame is not valid Unicode", wall, None
                )
            ]
        if size > self._settings.max_inbound_message_bytes:
            return [self._error("message_too_large", "Message too large", wall, None)]
        if isinstance(raw, bytes):
            return [
                self._error(
                    "binary_not_supported",
                    "Binary frames are not supported; send JSON text frames",
                    wall,
                    None,
                )
            ]
        try:
            msg = messages.parse_client_frame(raw, max_depth=self._settings.max_json_depth)
        except FrameError as exc:
            return [self._error(exc.code, exc.message, wall, exc.correlation_id)]
        self._last_valid = now
        return self._dispatch(msg, wall)

    # -- handlers -----------------------------------------------------------------------

    def _dispatch(self, msg: dict[str, Any], wall: float) -> list[Action]:
        kind = msg["type"]
        cid: str | None = msg.get("correlation_id")
        if kind == "ping":
            return [self._send("pong", wall, cid)]
        if kind == "subscribe":
            errors, change, refused = self._apply_subscribe(
                msg["subscriptions"], msg.get("resume", {}), wall, cid
            )
            if refused:
                return list(errors)
            reply = self._send(
                "subscription_updated", wall, cid, subscriptions=sorted(self.subscriptions)
            )
            return [*errors, reply, *([change] if change else [])]
        if kind == "unsubscribe":
            removed = frozenset(self.subscriptions.intersection(msg["subscriptions"]))
            self.subscriptions -= removed
            reply = self._send(
                "subscription_updated", wall, cid, subscriptions=sorted(self.subscriptions)
            )
            change = SubscriptionsChanged(frozenset(), removed) if removed else None
            return [reply, *([change] if change else [])]
        # request_data
        data_type = msg["data_type"]
        try:
            data, positions = self._data_source(data_type, msg.get("params") or {})
        except DataRequestError as exc:
            return [self._send("data_error", wall, cid, data_type=data_type, error=str(exc))]
        return [
            self._send(
                "data_response", wall, cid, data_type=data_type, data=data, positions=positions
            )
        ]

    def _apply_subscribe(
        self, names: Iterable[str], resume: Mapping[str, int], wall: float, cid: str | None
    ) -> tuple[list[Send], SubscriptionsChanged | None, bool]:
        wanted = set(names)
        unknown = sorted(wanted.difference(messages.SUBSCRIPTIONS))
        valid = wanted.intersection(messages.SUBSCRIPTIONS)
        errors: list[Send] = []
        if unknown:
            shown = ", ".join(n[: messages.ECHO_CHARS] for n in unknown)
            errors.append(
                self._error("invalid_subscription", f"Invalid subscription(s): {shown}", wall, cid)
            )
        # Positions name only real subscriptions: an unknown name is a client bug to report,
        # not a resume to drop silently. Known names not subscribed are ignored (documented).
        unknown_resume = sorted(set(resume).difference(messages.SUBSCRIPTIONS))
        if unknown_resume:
            shown = ", ".join(n[: messages.ECHO_CHARS] for n in unknown_resume)
            errors.append(
                self._error(
                    "invalid_subscription",
                    f"Invalid subscription(s) in resume: {shown}",
                    wall,
                    cid,
                )
            )
        cap = self._settings.max_subscriptions_per_connection
        if len(self.subscriptions | valid) > cap:
            errors.append(
                self._error(
                    "too_many_subscriptions",
                    f"Too many subscriptions: at most {cap} per connection",
                    wall,
                    cid,
                )
            )
            return errors, None, True
        added = frozenset(valid - self.subscriptions)
        self.subscriptions |= valid
        resumes = {s: int(n) for s, n in resume.items() if s in self.subscriptions}
        if not added and not resumes:
            return errors, None, False
        return errors, SubscriptionsChanged(added, frozenset(), resumes), False

    def finish_resume(
        self,
        subscription: str,
        last_seq: int,
        history: History,
        buffered: Iterable[Update],
        wall: float,
        *,
        room: tuple[int, int] | None = None,
    ) -> list[Action]:
        """Frames completing a resume: `resync_required` if updates were lost, then the replay.

        Call it with the history fetched for the `resume` entry of a `SubscriptionsChanged`
        and the live updates buffered meanwhile; then route live updates directly again.

        Args:
            room: (UTF-8 bytes, frames) the outbox can still take. A replay larger than
                that would cut the client off for backpressure, and its reconnect would
                ask for the same replay again; the oldest updates are left out instead and
                `resync_required` names the first one sent (`oldest_seq`).
        """
        resync, updates = replay(last_seq, history, buffered)
        oldest_seq = history.oldest_seq
        if room is not None:
            kept = _newest_that_fit(updates, room)
            if len(kept) < len(updates):
                resync = True
                oldest_seq = kept[0].seq if kept else history.latest_seq + 1
                updates = kept
        out: list[Action] = []
        if resync:
            out.append(
                self._send(
                    "resync_required",
                    wall,
                    subscription=subscription,
                    last_seq=last_seq,
                    oldest_seq=oldest_seq,
                    latest_seq=history.latest_seq,
                )
            )
        out.extend(Send(u.text, u.type) for u in updates)
        return out
