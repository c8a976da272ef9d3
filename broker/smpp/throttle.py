"""A connector's send rate: a TPS limit shared by its binds, and slowing down when refused.

Virtual scheduling (GCRA): every submit reserves the next free slot, so concurrent callers
are spaced ``1/rate`` apart with a small burst allowance. ESME_RTHROTTLED / ESME_RMSGQFUL
halve the rate and pause everyone with an exponential backoff; the rate then climbs back to
the configured TPS over ``recovery`` seconds. Time is passed in, so the logic is testable
without a clock.
"""

from __future__ import annotations

import asyncio

__all__ = ["RateLimiter"]


class RateLimiter:
    __slots__ = (
        "_burst",
        "_max_rate",
        "_min_fraction",
        "_min_rate",
        "_pause_max",
        "_pause_min",
        "_paused_until",
        "_rate",
        "_recovered_at",
        "_recovery",
        "_strikes",
        "_tat",
    )

    def __init__(
        self,
        rate: float | None,
        *,
        burst: float | None = None,
        recovery: float = 10.0,
        min_fraction: float = 0.05,
        pause_min: float = 0.05,
        pause_max: float = 5.0,
    ) -> None:
        if rate is not None and rate <= 0:
            raise ValueError("rate must be positive")
        self._max_rate = rate
        self._rate = rate or 0.0
        self._min_fraction = min_fraction
        self._min_rate = (rate or 0.0) * min_fraction
        self._burst = burst if burst is not None else max(1.0, (rate or 0.0) / 10)
        self._recovery = recovery
        self._pause_min = pause_min
        self._pause_max = pause_max
        self._tat = 0.0  # theoretical arrival time of the next submit
        self._paused_until = 0.0
        self._recovered_at = 0.0
        self._strikes = 0

    def set_rate(self, rate: float | None) -> None:
        """A new configured rate (this process's share of a connector's TPS)."""
        if rate is not None and rate <= 0:
            raise ValueError("rate must be positive")
        if rate == self._max_rate:
            return
        self._max_rate = rate
        self._rate = rate if rate is not None else 0.0
        self._min_rate = (rate or 0.0) * self._min_fraction
        self._burst = max(1.0, (rate or 0.0) / 10)

    @property
    def rate(self) -> float | None:
        """The current rate (submits per second), None when unlimited."""
        return self._rate if self._max_rate is not None else None

    def reserve(self, now: float, deadline: float) -> float | None:
        """Seconds to wait before sending, or None (nothing reserved) if past ``deadline``."""
        start = max(now, self._paused_until)
        if self._max_rate is None:
            return start - now if start <= deadline else None
        self._recover(now)
        interval = 1.0 / self._rate
        tat = max(self._tat, start)
        send_at = max(start, tat - (self._burst - 1.0) * interval)
        if send_at > deadline:
            return None
        self._tat = tat + interval
        return send_at - now

    def throttled(self, now: float) -> float:
        """The SMSC refused for load: slow down. Returns the pause now in force.

        Refusals of submits sent before the current pause began count once, so a full
        window of refusals does not escalate the backoff a hundredfold.
        """
        if now >= self._paused_until:
            self._strikes += 1
            pause = min(self._pause_max, self._pause_min * 2 ** min(self._strikes - 1, 30))
            self._paused_until = now + pause
            if self._max_rate is not None:
                self._recover(now)
                self._rate = max(self._min_rate, self._rate / 2)
                self._tat = max(self._tat, self._paused_until)
        return self._paused_until - now

    def succeeded(self) -> None:
        self._strikes = 0

    def _recover(self, now: float) -> None:
        max_rate = self._max_rate
        if max_rate is not None and self._rate < max_rate:
            elapsed = max(0.0, now - self._recovered_at)
            self._rate = min(max_rate, self._rate + max_rate * elapsed / self._recovery)
        self._recovered_at = now

    async def acquire(self, deadline: float) -> bool:
        """Wait for this submit's slot; False (without waiting) if it falls after ``deadline``."""
        loop = asyncio.get_running_loop()
        wait = self.reserve(loop.time(), deadline)
        if wait is None:
            return False
        if wait > 0:
            await asyncio.sleep(wait)
        return True
