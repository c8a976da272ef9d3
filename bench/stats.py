"""Latency percentiles and rates, computed the same way for every figure the bench prints."""

from __future__ import annotations

import math
from collections.abc import Sequence

PERCENTILES = (50.0, 95.0, 99.0)


def percentile(ordered: Sequence[float], q: float) -> float:
    """Nearest-rank percentile of an ascending sequence: a value that was actually observed."""
    if not ordered:
        raise ValueError("percentile of no values")
    if not 0 <= q <= 100:
        raise ValueError(f"percentile {q} is outside 0..100")
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def latency_summary(seconds: Sequence[float]) -> dict[str, float | None]:
    """p50/p95/p99/max in milliseconds, rounded to microseconds; None when nothing was measured."""
    keys = [f"p{int(q)}" for q in PERCENTILES] + ["max"]
    if not seconds:
        return dict.fromkeys(keys)
    ordered = sorted(seconds)
    values = [percentile(ordered, q) for q in PERCENTILES] + [ordered[-1]]
    return {k: round(v * 1000, 3) for k, v in zip(keys, values, strict=True)}


def rate(count: int, seconds: float) -> float | None:
    """Events per second, None when the span is empty (one event, or none)."""
    if count <= 0 or seconds <= 0:
        return None
    return round(count / seconds, 1)
