"""Inbound rate limiting: a token bucket, a notice cooldown and a flood cut-off.

Pure code: every method takes `now` (seconds on a monotonic clock) from the caller.
"""

from __future__ import annotations

import enum
from collections import deque

__all__ = ["RateLimiter", "TokenBucket", "Verdict"]


class TokenBucket:
    """A token bucket of `burst` tokens refilled at `rate` tokens per second.

    Args:
        rate: tokens added per second.
        burst: capacity; the bucket starts full.
        now: the current time in seconds.
    """

    __slots__ = ("_last", "_tokens", "burst", "rate")

    def __init__(self, rate: float, burst: float, now: float) -> None:
        self.rate = rate
        self.burst = burst
        self._tokens = burst
        self._last = now

    def allow(self, now: float, cost: float = 1.0) -> bool:
        """Take `cost` tokens if the bucket holds them at time `now`; say whether it did."""
        elapsed = now - self._last
        if elapsed > 0:
            self._tokens = min(self.burst, self._tokens + elapsed * self.rate)
            self._last = now
        if self._tokens >= cost:
            self._tokens -= cost
            return True
        return False

    def tokens(self, now: float) -> float:
        """Tokens available at `now`, without taking any."""
        return min(self.burst, self._tokens + max(0.0, now - self._last) * self.rate)

    def retune(self, rate: float, burst: float, now: float) -> None:
        """Refill at `rate` tokens/s up to `burst` tokens from `now` on.

        The tokens earned until `now` are counted at the old rate first; a lower burst
        takes away what it no longer holds, a higher one grants nothing at once (the
        bucket fills at the new rate).
        """
        self._tokens = min(burst, self.tokens(now))
        self._last = max(self._last, now)
        self.rate = rate
        self.burst = burst


class Verdict(enum.Enum):
    """What to do with one inbound frame."""

    ALLOW = "allow"
    DROP = "drop"
    DROP_AND_NOTIFY = "drop_and_notify"
    DISCONNECT = "disconnect"


class RateLimiter:
    """Decides, frame by frame, whether a connection may be served.

    A frame costs one token. Without a token it is dropped; the first drop in each
    `cooldown` window also asks for one `Rate limit exceeded` error. More than
    `flood_threshold` drops within `flood_window` seconds asks to disconnect: dropping alone
    still costs the server a core to read a flood.
    """

    __slots__ = ("_bucket", "_cooldown", "_drops", "_last_notice", "_threshold", "_window")

    def __init__(
        self,
        *,
        rate: float,
        burst: float,
        cooldown: float,
        flood_threshold: int,
        flood_window: float,
        now: float,
    ) -> None:
        self._bucket = TokenBucket(rate, burst, now)
        self._cooldown = cooldown
        self._threshold = flood_threshold
        self._window = flood_window
        self._last_notice = float("-inf")
        # Drop times within the window; never longer than threshold + 1 entries. Made on
        # the first drop: most clients never get one, and an idle deque costs every connection.
        self._drops: deque[float] | None = None

    def tokens(self, now: float) -> float:
        """Tokens the connection has left at `now` (each inbound frame costs one)."""
        return self._bucket.tokens(now)

    def retune(self, rate: float, burst: float, now: float) -> None:
        """Change the bucket's refill rate (tokens/s) and burst (tokens) at `now`."""
        self._bucket.retune(rate, burst, now)

    def check(self, now: float) -> Verdict:
        """Charge one frame arriving at `now` and return the verdict for it."""
        if self._bucket.allow(now):
            return Verdict.ALLOW
        drops = self._drops
        if drops is None:
            drops = self._drops = deque()
        drops.append(now)
        while drops and now - drops[0] > self._window:
            drops.popleft()
        if len(drops) > self._threshold:
            return Verdict.DISCONNECT
        if now - self._last_notice >= self._cooldown:
            self._last_notice = now
            return Verdict.DROP_AND_NOTIFY
        return Verdict.DROP
