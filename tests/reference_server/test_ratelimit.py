"""Token bucket and flood rules, with time passed in."""

from __future__ import annotations

import pytest

from reference_server.ratelimit import RateLimiter, TokenBucket, Verdict

pytestmark = pytest.mark.unit


def test_bucket_starts_full_and_empties() -> None:
    bucket = TokenBucket(rate=1, burst=3, now=0)
    assert [bucket.allow(0) for _ in range(4)] == [True, True, True, False]


def test_bucket_refills_after_one_interval() -> None:
    bucket = TokenBucket(rate=2, burst=2, now=0)
    bucket.allow(0)
    bucket.allow(0)
    assert not bucket.allow(0.4)
    assert bucket.allow(0.5)


def test_bucket_never_holds_more_than_its_burst() -> None:
    bucket = TokenBucket(rate=100, burst=2, now=0)
    assert bucket.tokens(1000) == 2


def limiter(**kw: float) -> RateLimiter:
    args = {
        "rate": 1.0,
        "burst": 1.0,
        "cooldown": 5.0,
        "flood_threshold": 100,
        "flood_window": 10.0,
        "now": 0.0,
        **kw,
    }
    return RateLimiter(**args)  # type: ignore[arg-type]


def test_notice_at_most_once_per_cooldown_without_resetting_early() -> None:
    rl = limiter(rate=0.0001, flood_threshold=10_000)
    assert rl.check(0) is Verdict.ALLOW
    seen = [rl.check(t / 10) for t in range(1, 120)]
    notices = [i for i, v in enumerate(seen, 1) if v is Verdict.DROP_AND_NOTIFY]
    assert [n / 10 for n in notices] == [0.1, 5.1, 10.1]


def test_flood_past_the_threshold_within_the_window_disconnects() -> None:
    rl = limiter(rate=0.0001, flood_threshold=5, flood_window=1.0)
    rl.check(0)
    verdicts = [rl.check(0.01 * i) for i in range(1, 7)]
    assert verdicts[-1] is Verdict.DISCONNECT
    assert Verdict.DISCONNECT not in verdicts[:-1]


def test_drops_spread_beyond_the_window_do_not_disconnect() -> None:
    rl = limiter(rate=0.0001, flood_threshold=5, flood_window=1.0)
    rl.check(0)
    assert all(rl.check(0.5 * i) is not Verdict.DISCONNECT for i in range(1, 50))


def test_retune_counts_tokens_earned_at_the_old_rate_first() -> None:
    bucket = TokenBucket(rate=1, burst=10, now=0)
    for _ in range(10):
        bucket.allow(0)
    bucket.retune(rate=100, burst=10, now=2)
    assert bucket.tokens(2) == 2  # two seconds at 1 token/s, not at 100
    assert bucket.tokens(2.05) == pytest.approx(7)  # then 100 tokens/s


def test_a_lower_burst_takes_away_what_it_no_longer_holds() -> None:
    bucket = TokenBucket(rate=1, burst=40, now=0)
    bucket.retune(rate=1, burst=5, now=1)
    assert bucket.tokens(1) == 5
    assert [bucket.allow(1) for _ in range(6)] == [True] * 5 + [False]


def test_a_higher_burst_grants_nothing_at_once() -> None:
    bucket = TokenBucket(rate=1, burst=2, now=0)
    bucket.allow(0)
    bucket.allow(0)
    bucket.retune(rate=1, burst=50, now=0)
    assert bucket.tokens(0) == 0
    assert bucket.tokens(10) == 10


def test_the_limiter_reports_and_retunes_its_bucket() -> None:
    lim = limiter(rate=1.0, burst=3.0)
    assert lim.tokens(0) == 3
    lim.retune(rate=1.0, burst=1.0, now=0)
    assert lim.check(0) is Verdict.ALLOW
    assert lim.check(0) is not Verdict.ALLOW
