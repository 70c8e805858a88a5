"""Reconnect delays: capped exponential backoff with full jitter.

"Full jitter" (AWS Architecture Blog, "Exponential Backoff And Jitter", 2015): the delay
before attempt `n` is uniform in `[0, min(cap, base * 2**n)]`. Spreading every instance's
retries over the whole window keeps a fleet from reconnecting in lockstep when Redis comes
back, and the cap bounds how long an instance can stay away after Redis has returned.
"""

from __future__ import annotations

import random

__all__ = ["Backoff"]


class Backoff:
    """Delays for successive reconnect attempts.

    Args:
        base_seconds: ceiling of the first delay.
        cap_seconds: no delay exceeds this.
        rng: random source (seed one in tests).
    """

    def __init__(self, base_seconds: float, cap_seconds: float, rng: random.Random) -> None:
        self.base = base_seconds
        self.cap = cap_seconds
        self._rng = rng

    def ceiling(self, attempt: int) -> float:
        """The largest delay attempt `attempt` (0 for the first retry) may wait, in seconds."""
        # min() on the exponent first: 2**attempt overflows a float after ~1,000 attempts.
        return min(self.cap, self.base * 2.0 ** min(attempt, 64))

    def delay(self, attempt: int) -> float:
        """A delay for attempt `attempt`, drawn uniformly from `[0, ceiling(attempt)]`."""
        return self._rng.uniform(0.0, self.ceiling(attempt))
