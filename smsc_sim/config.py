"""The simulated carrier's settings: typed, validated once, refusing bad values."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

from broker.errors import InputError
from smsc_sim.outcomes import outcome_named, validate_weights

MESSAGE_ID_FORMATS = ("hex", "dec", "uuid")
MAX_SYSTEM_ID = 15  # C-octet string of 16 octets in SMPP 3.4
MAX_PASSWORD = 8  # C-octet string of 9 octets
_RANGE_DASH = re.compile(r"(?<![eE])-")


@dataclass
class SimConfig:
    """Everything the simulator does by default; faults are changed at run time instead.

    Outcome rules map a destination suffix to a receipt outcome (``{"0000": "UNDELIV"}``:
    every destination ending in 0000 is undeliverable); submit status rules map a destination
    suffix to the command_status of its submit_sm_resp (``{"13": 0x0B}``). The longest matching
    suffix wins. ``receipt_id_decimal`` renders a hex message id as decimal in receipts, as some
    carriers do. Receipt dates are UTC. The retry settings (``receipt_max_attempts``,
    ``receipt_retry_delay``, ``response_timeout``) and ``deliver_window`` govern every
    deliver_sm, receipts and MO alike.
    """

    host: str = "127.0.0.1"
    port: int = 2775
    accounts: dict[str, str] = field(default_factory=lambda: {"smsbroker": "secret"})
    smsc_system_id: str = "smscsim"
    receipt_delay: tuple[float, float] = (0.05, 0.2)
    outcomes: dict[str, float] = field(default_factory=lambda: {"DELIVRD": 1.0})
    outcome_rules: dict[str, str] = field(default_factory=dict)
    submit_status_rules: dict[str, int] = field(default_factory=dict)
    message_id_format: str = "hex"
    receipt_id_decimal: bool = False
    receipt_tlvs: bool = True
    receipt_seconds: bool = False
    receipt_max_attempts: int = 3
    receipt_retry_delay: float = 1.0
    response_timeout: float = 10.0
    deliver_window: int = 100
    submitted_limit: int = 100_000
    seed: int | None = None

    def __post_init__(self) -> None:
        self.receipt_delay = (float(self.receipt_delay[0]), float(self.receipt_delay[1]))
        if not 0 <= self.port <= 65535:
            raise InputError(f"port {self.port} is out of range", code="BAD_PORT", field="port")
        _check_accounts(self.accounts)
        _check_delay(self.receipt_delay)
        validate_weights(self.outcomes)
        self.outcomes = {outcome_named(k).stat: v for k, v in self.outcomes.items()}
        self.outcome_rules = {
            _suffix(k, "outcome_rules"): outcome_named(v, field="outcome_rules").stat
            for k, v in self.outcome_rules.items()
        }
        for suffix, status in self.submit_status_rules.items():
            _suffix(suffix, "submit_status_rules")
            check_status(status, "submit_status_rules")
        self._check_formats()
        self._check_limits()

    def _check_formats(self) -> None:
        if self.message_id_format not in MESSAGE_ID_FORMATS:
            raise InputError(
                f"message id format must be one of {', '.join(MESSAGE_ID_FORMATS)}",
                code="BAD_ID_FORMAT",
                field="message_id_format",
            )
        if self.receipt_id_decimal and self.message_id_format != "hex":
            raise InputError(
                "receipt_id_decimal needs message_id_format 'hex'",
                code="BAD_ID_FORMAT",
                field="receipt_id_decimal",
            )
        if not 1 <= len(self.smsc_system_id) <= MAX_SYSTEM_ID:
            raise InputError(
                "smsc_system_id must be 1-15 characters", code="BAD_SYSTEM_ID", field="system_id"
            )

    def _check_limits(self) -> None:
        positive = {
            "receipt_max_attempts": self.receipt_max_attempts,
            "response_timeout": self.response_timeout,
            "deliver_window": self.deliver_window,
            "submitted_limit": self.submitted_limit,
        }
        for name, value in positive.items():
            if not value > 0 or math.isinf(value):
                raise InputError(f"{name} must be > 0", code="BAD_LIMIT", field=name)
        if not 0 <= self.receipt_retry_delay < math.inf:
            raise InputError(
                "receipt_retry_delay must be >= 0", code="BAD_LIMIT", field="receipt_retry_delay"
            )


def check_status(status: object, field_name: str) -> int:
    """A command_status for an error answer: a non-zero 32-bit integer (vendor values allowed)."""
    if isinstance(status, bool) or not isinstance(status, int) or not 0 < status <= 0xFFFFFFFF:
        raise InputError(
            f"{field_name}: command_status must be an integer in 1..0xFFFFFFFF",
            code="BAD_STATUS",
            field=field_name,
        )
    return status


def _suffix(suffix: str, field_name: str) -> str:
    if not suffix or not suffix.isprintable():
        raise InputError(
            f"{field_name}: a destination suffix must be non-empty text",
            code="BAD_RULE",
            field=field_name,
        )
    return suffix


def _check_accounts(accounts: dict[str, str]) -> None:
    if not accounts:
        raise InputError("at least one account is needed", code="BAD_ACCOUNT", field="accounts")
    for system_id, password in accounts.items():
        if not 1 <= len(system_id) <= MAX_SYSTEM_ID or not system_id.isascii():
            raise InputError(
                f"system_id {system_id!r} must be 1-{MAX_SYSTEM_ID} ASCII characters",
                code="BAD_ACCOUNT",
                field="accounts",
            )
        if len(password) > MAX_PASSWORD or not password.isascii():
            raise InputError(
                f"the password of {system_id!r} must be at most {MAX_PASSWORD} ASCII characters",
                code="BAD_ACCOUNT",
                field="accounts",
            )


def _check_delay(delay: tuple[float, float]) -> None:
    low, high = delay
    if not (0 <= low <= high < math.inf):
        raise InputError(
            "receipt delay must be 0 <= min <= max seconds", code="BAD_DELAY", field="receipt_delay"
        )


def parse_delay(text: str) -> tuple[float, float]:
    """``"0.1"`` → (0.1, 0.1); ``"0.1-0.5"`` → (0.1, 0.5)."""
    pieces = _RANGE_DASH.split(text.strip(), maxsplit=1)  # a '-' that is not an exponent sign
    try:
        low = float(pieces[0])
        high = float(pieces[1]) if len(pieces) > 1 else low
    except ValueError:
        raise InputError(
            f"receipt delay {text!r} is not SECONDS or MIN-MAX",
            code="BAD_DELAY",
            field="receipt_delay",
        ) from None
    _check_delay((low, high))
    return (low, high)


def parse_account(text: str) -> tuple[str, str]:
    """``"system_id:password"`` → the pair (the password may contain ':')."""
    system_id, sep, password = text.partition(":")
    if not sep or not system_id:
        raise InputError(
            f"account {text!r} is not SYSTEM_ID:PASSWORD", code="BAD_ACCOUNT", field="accounts"
        )
    _check_accounts({system_id: password})
    return system_id, password


def parse_status(text: str) -> int:
    """A command_status written as decimal or 0x-hex."""
    try:
        value = int(text.strip(), 0)
    except ValueError:
        raise InputError(
            f"{text!r} is not a command_status (decimal or 0x-hex)",
            code="BAD_STATUS",
            field="status",
        ) from None
    return check_status(value, "status")


def parse_rule(text: str) -> tuple[str, str]:
    """``"SUFFIX=VALUE"`` → the pair, for outcome and submit-status rules."""
    suffix, sep, value = text.partition("=")
    if not sep or not suffix or not value:
        raise InputError(f"rule {text!r} is not SUFFIX=VALUE", code="BAD_RULE", field="rules")
    return suffix.strip(), value.strip()
