"""The connector's rate limiter, driven with explicit times."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from broker.smpp.throttle import RateLimiter


def test_unlimited_never_waits() -> None:
    limiter = RateLimiter(None)
    assert [limiter.reserve(5.0, 6.0) for _ in range(1000)] == [0.0] * 1000
    assert limiter.rate is None


def test_slots_are_spaced_by_the_rate() -> None:
    limiter = RateLimiter(10, burst=1)
    waits = [limiter.reserve(0.0, 100.0) for _ in range(4)]
    assert waits == pytest.approx([0.0, 0.1, 0.2, 0.3])


def test_burst_allowance() -> None:
    limiter = RateLimiter(10, burst=3)
    waits = [limiter.reserve(0.0, 100.0) for _ in range(5)]
    assert waits == pytest.approx([0.0, 0.0, 0.0, 0.1, 0.2])


def test_idle_time_does_not_bank_more_than_the_burst() -> None:
    limiter = RateLimiter(10, burst=2)
    limiter.reserve(0.0, 1.0)
    waits = [limiter.reserve(50.0, 100.0) for _ in range(4)]
    assert waits == pytest.approx([0.0, 0.0, 0.1, 0.2])


def test_deadline_reserves_nothing() -> None:
    limiter = RateLimiter(1, burst=1)
    assert limiter.reserve(0.0, 10.0) == 0.0
    assert limiter.reserve(0.0, 0.5) is None
    assert limiter.reserve(0.0, 10.0) == pytest.approx(1.0)


def test_throttling_pauses_and_halves_the_rate() -> None:
    limiter = RateLimiter(100, burst=1, pause_min=0.1, recovery=10.0)
    pause = limiter.throttled(1.0)
    assert pause == pytest.approx(0.1)
    assert limiter.rate == pytest.approx(50)
    assert limiter.reserve(1.0, 10.0) == pytest.approx(0.1)
    # refusals of submits already in flight during the pause count once
    assert limiter.throttled(1.05) == pytest.approx(0.05)
    assert limiter.rate == pytest.approx(50)
    # a refusal after the pause escalates
    assert limiter.throttled(1.2) == pytest.approx(0.2)
    assert limiter.rate == pytest.approx(25, rel=0.1)


def test_success_resets_the_backoff_and_the_rate_recovers() -> None:
    limiter = RateLimiter(100, pause_min=0.1, recovery=10.0)
    limiter.throttled(0.0)
    limiter.throttled(0.2)
    limiter.succeeded()
    assert limiter.throttled(1.0) == pytest.approx(0.1)
    limiter.reserve(100.0, 200.0)
    assert limiter.rate == pytest.approx(100)


def test_unlimited_still_backs_off() -> None:
    limiter = RateLimiter(None, pause_min=0.5, pause_max=1.0)
    assert limiter.throttled(0.0) == pytest.approx(0.5)
    assert limiter.reserve(0.1, 10.0) == pytest.approx(0.4)
    assert limiter.reserve(0.1, 0.2) is None
    assert limiter.throttled(0.6) == pytest.approx(1.0)
    assert limiter.throttled(2.0) == pytest.approx(1.0)  # capped


def test_rejects_bad_rate() -> None:
    with pytest.raises(ValueError):
        RateLimiter(0)


@given(
    st.floats(0.5, 5000),
    st.floats(1, 20),
    st.lists(st.floats(0, 0.5), min_size=1, max_size=200),
)
def test_never_exceeds_rate_plus_burst(rate: float, burst: float, gaps: list[float]) -> None:
    limiter = RateLimiter(rate, burst=burst)
    now = 0.0
    sends: list[float] = []
    for gap in gaps:
        now += gap
        wait = limiter.reserve(now, now + 1e9)
        assert wait is not None and wait >= 0
        sends.append(now + wait)
    sends.sort()
    for i, start in enumerate(sends):
        for j in range(i, len(sends)):
            span = sends[j] - start
            assert j - i + 1 <= burst + rate * span + 1e-6
