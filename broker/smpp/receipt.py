"""Delivery receipts: what a deliver_sm / data_sm says about an earlier submit_sm.

Carriers disagree on the details, so parsing never raises: the TLVs (receipted_message_id,
message_state) win, the conventional text form ("id:... stat:... err:...", SMPP 3.4
appendix B) fills the gaps, and a receipt without any message id is reported as None.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final, Literal

from broker.smpp.constants import (
    ESM_DELIVERY_RECEIPT,
    ESM_INTERMEDIATE_NOTIFICATION,
    ESM_MESSAGE_TYPE_MASK,
    MessageState,
    Tag,
)
from broker.smpp.pdu import Pdu, tlv_cstring, tlv_int

__all__ = [
    "STATES",
    "IdFormat",
    "Receipt",
    "canonical_message_id",
    "other_forms",
    "parse_receipt",
]

IdFormat = Literal["as-is", "hex", "dec"]

STATES: Final = frozenset(
    {"DELIVRD", "UNDELIV", "EXPIRED", "REJECTD", "DELETED", "ACCEPTD", "ENROUTE", "UNKNOWN"}
)
FINAL_STATES: Final = frozenset({"DELIVRD", "UNDELIV", "EXPIRED", "REJECTD", "DELETED"})

_STATE_BY_NUMBER: Final[dict[int, str]] = {
    MessageState.ENROUTE: "ENROUTE",
    MessageState.DELIVERED: "DELIVRD",
    MessageState.EXPIRED: "EXPIRED",
    MessageState.DELETED: "DELETED",
    MessageState.UNDELIVERABLE: "UNDELIV",
    MessageState.ACCEPTED: "ACCEPTD",
    MessageState.UNKNOWN: "UNKNOWN",
    MessageState.REJECTED: "REJECTD",
}
_STATE_ALIASES: Final = {
    "DELIVERED": "DELIVRD",
    "UNDELIVERABLE": "UNDELIV",
    "UNDELIVERED": "UNDELIV",
    "FAILED": "UNDELIV",
    "REJECTED": "REJECTD",
    "ACCEPTED": "ACCEPTD",
}
_RECEIPT_TYPES: Final = frozenset({ESM_DELIVERY_RECEIPT, ESM_INTERMEDIATE_NOTIFICATION})
_KEY: Final = re.compile(r"(?i)\b(id|sub|dlvrd|submit[ _]?date|done[ _]?date|stat|err|text)\s*:")
_HEX: Final = re.compile(r"[0-9a-fA-F]+")
_UCS2: Final = 0x08


@dataclass(frozen=True, slots=True)
class Receipt:
    """Dates carry no zone on the wire; they are read as UTC."""

    message_id: str
    state: str
    error: str | None
    submit_date: datetime | None
    done_date: datetime | None
    text: str | None


def parse_receipt(pdu: Pdu) -> Receipt | None:
    """The receipt in ``pdu``; None when esm_class marks no receipt or no id can be read."""
    esm_class = pdu.body.get("esm_class", 0)
    if not isinstance(esm_class, int) or esm_class & ESM_MESSAGE_TYPE_MASK not in _RECEIPT_TYPES:
        return None
    fields = _text_fields(_receipt_text(pdu))
    message_id = (tlv_cstring(pdu, Tag.RECEIPTED_MESSAGE_ID) or "").strip() or fields.get("id")
    if not message_id:
        return None
    number = tlv_int(pdu, Tag.MESSAGE_STATE)
    state = _STATE_BY_NUMBER.get(number) if number is not None else None
    return Receipt(
        message_id=message_id,
        state=state or normalize_state(fields.get("stat")),
        error=fields.get("err") or _network_error(pdu),
        submit_date=_parse_date(fields.get("submitdate")),
        done_date=_parse_date(fields.get("donedate")),
        text=fields.get("text"),
    )


def normalize_state(raw: str | None) -> str:
    """One of :data:`STATES` for whatever a carrier wrote after ``stat:``."""
    if not raw:
        return "UNKNOWN"
    word = raw.strip().upper()
    if word in STATES:
        return word
    if word.isascii() and word.isdigit():
        return _STATE_BY_NUMBER.get(int(word), "UNKNOWN")
    return _STATE_ALIASES.get(word, "UNKNOWN")


def _receipt_text(pdu: Pdu) -> str:
    raw = pdu.body.get("short_message") or pdu.tlvs.get(Tag.MESSAGE_PAYLOAD) or b""
    if not isinstance(raw, bytes):
        return ""
    if pdu.body.get("data_coding") == _UCS2:
        return raw.decode("utf-16-be", errors="replace")
    return raw.decode("latin-1")


def _text_fields(text: str) -> dict[str, str]:
    """Key -> value of the text form; keys lowercased, spaces and underscores dropped."""
    fields: dict[str, str] = {}
    matches = list(_KEY.finditer(text))
    for index, match in enumerate(matches):
        key = match.group(1).lower().replace(" ", "").replace("_", "")
        if key == "text":
            fields[key] = text[match.end() :]
            break
        end = matches[index + 1].start() if index + 1 < len(matches) else len(text)
        value = text[match.end() : end].strip()
        if value:
            fields.setdefault(key, value)
    return fields


def _parse_date(raw: str | None) -> datetime | None:
    """YYMMDDhhmm, YYMMDDhhmmss or YYYYMMDDhhmmss; read by slicing (strptime is slow and
    every receipt carries two dates)."""
    if not raw or not raw.isdigit() or len(raw) not in (10, 12, 14):
        return None
    if len(raw) == 14:
        year, rest = int(raw[:4]), raw[4:]
    else:
        year, rest = 2000 + int(raw[:2]), raw[2:]
    second = int(rest[8:10]) if len(rest) >= 10 else 0
    try:
        return datetime(
            year,
            int(rest[0:2]),
            int(rest[2:4]),
            int(rest[4:6]),
            int(rest[6:8]),
            second,
            tzinfo=UTC,
        )
    except ValueError:
        return None


def _network_error(pdu: Pdu) -> str | None:
    """network_error_code TLV: network type octet, then a 2-octet error code."""
    raw = pdu.tlvs.get(Tag.NETWORK_ERROR_CODE)
    if raw is None or len(raw) != 3:
        return None
    return f"{int.from_bytes(raw[1:], 'big'):03d}"


def canonical_message_id(raw: str, *, fmt: IdFormat, from_receipt: bool) -> str:
    """The form under which a submit_sm_resp id and its receipt's id compare equal.

    ``hex``: the SMSC answers submit_sm in hex and writes receipts in decimal; both sides
    become lowercase hex without leading zeros. ``dec``: the reverse; both become decimal.
    A receipt id already in the submit form (some SMSCs are inconsistent) is accepted too.
    Anything that does not parse is kept as it was (stripped), so lookups simply miss.
    """
    text = raw.strip()
    if fmt == "as-is" or not text or not _HEX.fullmatch(text):
        return text
    submit_base, receipt_base = (16, 10) if fmt == "hex" else (10, 16)
    base = receipt_base if from_receipt else submit_base
    if base == 10 and not text.isdigit():
        base = 16  # a hex receipt id where decimal was announced
    try:
        number = int(text, base)
    except ValueError:
        return text
    return format(number, "x") if fmt == "hex" else str(number)


#: Ids shorter than this are never read in another base: a carrier's small counters (9, 10,
#: 16...) would collide with other messages' ids across bases.
MIN_REREAD_LENGTH: Final = 6


def other_forms(carrier_id: str) -> list[str]:
    """The same id read in the other base, for a receipt that matched no part.

    A connector's ``dlr_id_format`` says in which base each side writes its ids; some carriers
    do not keep to one, so a receipt that matches nothing is tried in the other bases before it
    is parked: decimal digits as hex, hex as decimal (both without leading zeros).
    """
    text = carrier_id.strip()
    if len(text) < MIN_REREAD_LENGTH or not _HEX.fullmatch(text):
        return []
    forms = [str(int(text, 16)), format(int(text, 16), "x")]
    if text.isdigit():
        forms.append(format(int(text), "x"))
        forms.append(str(int(text)))
    return [f for f in dict.fromkeys(forms) if f != text]
