"""Faults an operator or a test switches on at run time, validated from keyword arguments or JSON.

Standing faults (kept until cleared): ``reject_binds`` (a command_status for every bind),
``submit_error`` (a command_status for submit_sm, for the next ``submit_error_count`` submits or
until cleared), ``submit_delay`` (seconds before each submit_sm_resp). One-shot actions: ``stall``
(seconds of not reading or writing anything) and ``drop`` (close every connection now).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from broker.errors import InputError
from smsc_sim.config import check_status, parse_status

FAULT_KEYS = ("reject_binds", "submit_error", "submit_error_count", "submit_delay", "stall", "drop")


@dataclass
class Faults:
    """The standing faults; None / 0 means off."""

    reject_binds: int | None = None
    submit_error: int | None = None
    submit_error_count: int | None = None
    submit_delay: float = 0.0

    def next_submit_error(self) -> int | None:
        """The status for this submit under the fault, counting it down."""
        status = self.submit_error
        if status is None:
            return None
        if self.submit_error_count is not None:
            self.submit_error_count -= 1
            if self.submit_error_count <= 0:
                self.submit_error = None
                self.submit_error_count = None
        return status

    def to_json(self) -> dict[str, object]:
        return {
            "reject_binds": self.reject_binds,
            "submit_error": self.submit_error,
            "submit_error_count": self.submit_error_count,
            "submit_delay": self.submit_delay,
        }


@dataclass(frozen=True)
class FaultRequest:
    """A validated change: ``present`` names the standing faults to set (None clears one)."""

    present: frozenset[str]
    reject_binds: int | None = None
    submit_error: int | None = None
    submit_error_count: int | None = None
    submit_delay: float = 0.0
    stall: float = 0.0
    drop: bool = False

    def apply(self, faults: Faults) -> None:
        if "reject_binds" in self.present:
            faults.reject_binds = self.reject_binds
        if "submit_error" in self.present:
            faults.submit_error = self.submit_error
            faults.submit_error_count = self.submit_error_count
        if "submit_delay" in self.present:
            faults.submit_delay = self.submit_delay


def parse_faults(values: Mapping[str, object]) -> FaultRequest:
    """Validate fault settings; statuses may be ints or "0x58"-style strings."""
    unknown = sorted(set(values) - set(FAULT_KEYS))
    if unknown:
        raise InputError(
            f"unknown fault {unknown[0]!r}; known: {', '.join(FAULT_KEYS)}",
            code="UNKNOWN_FAULT",
            field=unknown[0],
        )
    if "submit_error_count" in values and "submit_error" not in values:
        raise InputError(
            "submit_error_count needs submit_error", code="BAD_FAULT", field="submit_error_count"
        )
    drop = values.get("drop", False)
    if not isinstance(drop, bool):
        raise InputError("drop must be true or false", code="BAD_FAULT", field="drop")
    return FaultRequest(
        present=frozenset(values),
        reject_binds=_status_or_none(values.get("reject_binds"), "reject_binds"),
        submit_error=_status_or_none(values.get("submit_error"), "submit_error"),
        submit_error_count=_count_or_none(values.get("submit_error_count")),
        submit_delay=_seconds(values.get("submit_delay", 0.0), "submit_delay"),
        stall=_seconds(values.get("stall", 0.0), "stall"),
        drop=drop,
    )


def _status_or_none(value: object, name: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, str):
        try:
            return parse_status(value)
        except InputError as exc:
            raise InputError(exc.message, code=exc.code, field=name) from None
    return check_status(value, name)


def _count_or_none(value: object) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InputError(
            "submit_error_count must be an integer >= 1 (or null: until cleared)",
            code="BAD_FAULT",
            field="submit_error_count",
        )
    return value


def _seconds(value: object, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InputError(f"{name} must be a number of seconds", code="BAD_FAULT", field=name)
    seconds = float(value)
    if not 0 <= seconds < math.inf:
        raise InputError(f"{name} must be >= 0 seconds", code="BAD_FAULT", field=name)
    return seconds
