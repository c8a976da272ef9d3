"""Recipient numbers: whatever customers send, normalized to E.164 or refused by position."""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

import phonenumbers

from broker.errors import InputError

_SENDER_ALNUM = re.compile(r"^[A-Za-z0-9 ._&-]{3,11}$")
_SENDER_NUMERIC = re.compile(r"^\+?[0-9]{3,15}$")


@lru_cache(maxsize=65536)
def to_e164(raw: str, region: str) -> str | None:
    """The E.164 form of ``raw`` read with the account's default region, or None if invalid."""
    try:
        parsed = phonenumbers.parse(raw, region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(parsed):
        return None
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    if isinstance(value, str):
        return [part.strip() for part in value.split(",")]
    if isinstance(value, list):
        return value
    raise InputError(
        "`to` must be a phone number, a list of them, or a comma-separated string",
        code="INVALID_PHONE_NUMBER",
        field="to",
    )


def parse_recipients(value: Any, region: str, *, limit: int) -> list[str]:
    """Normalize and de-duplicate recipients, keeping their order.

    Every invalid entry is reported with its position, so a customer fixes them all at once.
    """
    items = _as_list(value)
    if not items or items == [""]:
        raise InputError(
            "`to` needs at least one phone number", code="MISSING_RECIPIENT", field="to"
        )
    if len(items) > limit:
        raise InputError(
            f"at most {limit} recipients per request, got {len(items)}",
            code="TOO_MANY_RECIPIENTS",
            field="to",
        )
    numbers: list[str] = []
    problems: list[dict[str, Any]] = []
    for index, item in enumerate(items):
        e164 = to_e164(item, region) if isinstance(item, str) and item else None
        if e164 is None:
            problems.append({"index": index, "value": item, "reason": "not a valid phone number"})
        else:
            numbers.append(e164)
    if problems:
        err = InputError(
            f"{len(problems)} invalid phone number(s) in `to`",
            code="INVALID_PHONE_NUMBER",
            field="to",
        )
        err.details = problems  # type: ignore[attr-defined]
        raise err
    return list(dict.fromkeys(numbers))


def is_numeric_sender(sender: str) -> bool:
    """A number as sender (no registration needed), rather than an alphanumeric sender ID."""
    return _SENDER_NUMERIC.match(sender) is not None


def check_sender(sender: Any, *, field: str = "from") -> str | None:
    """A sender id is 3–11 letters/digits (alphanumeric) or a number of up to 15 digits;
    None or '' is no sender."""
    if sender is None or sender == "":
        return None
    if not isinstance(sender, str) or not (
        _SENDER_NUMERIC.match(sender) or (_SENDER_ALNUM.match(sender) and not sender.isspace())
    ):
        raise InputError(
            f"`{field}` must be 3–11 letters/digits or a phone number of up to 15 digits",
            code="INVALID_SENDER_ID",
            field=field,
        )
    return sender
