"""What to do after an attempt: the one place that decides retries and finality."""

from __future__ import annotations

import enum


class Verdict(enum.Enum):
    DELIVERED = "delivered"  # 2xx
    GONE = "gone"  # 410: the receiver asks us to stop
    RETRY = "retry"
    GIVE_UP = "give_up"  # failed, and no attempt is left

    @property
    def final(self) -> bool:
        return self is not Verdict.RETRY


def max_attempts(retry_delays: tuple[float, ...]) -> int:
    return len(retry_delays) + 1


def judge(status_code: int | None, attempt: int, retry_delays: tuple[float, ...]) -> Verdict:
    """``status_code`` is None when no answer came (timeout, connection error)."""
    if status_code is not None and 200 <= status_code < 300:
        return Verdict.DELIVERED
    if status_code == 410:
        return Verdict.GONE
    if attempt >= max_attempts(retry_delays):
        return Verdict.GIVE_UP
    return Verdict.RETRY


def retry_tier(attempt: int) -> int:
    """The retry queue after failed attempt ``attempt``: tier n waits retry_delays[n]."""
    return attempt - 1
