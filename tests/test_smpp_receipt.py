"""Delivery receipt parsing and message-id canonical forms."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from broker.smpp.constants import CommandId, Tag
from broker.smpp.pdu import Pdu, cstring_tlv, int_tlv
from broker.smpp.receipt import (
    STATES,
    Receipt,
    _parse_date,
    canonical_message_id,
    parse_receipt,
)


def deliver(
    text: bytes | str, *, esm_class: int = 0x04, data_coding: int = 0, **tlvs: bytes
) -> Pdu:
    raw = text.encode("latin-1") if isinstance(text, str) else text
    tags = {Tag[name.upper()]: value for name, value in tlvs.items()}
    body: dict[str, int | str | bytes] = {
        "esm_class": esm_class,
        "data_coding": data_coding,
        "short_message": raw,
    }
    return Pdu(CommandId.DELIVER_SM, 1, body=body, tlvs=dict(tags))


STANDARD = (
    "id:0123456789 sub:001 dlvrd:001 submit date:2401311530 done date:2401311531 "
    "stat:DELIVRD err:000 text:Hello world"
)


def when(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)  # type: ignore[arg-type]


CASES = [
    pytest.param(
        deliver(STANDARD),
        Receipt(
            "0123456789",
            "DELIVRD",
            "000",
            when(2024, 1, 31, 15, 30),
            when(2024, 1, 31, 15, 31),
            "Hello world",
        ),
        id="appendix B text",
    ),
    pytest.param(
        deliver(
            "id:abc sub:1 dlvrd:0 submit date:240131153005 done date:240131153109 "
            "stat:UNDELIV err:0B text:"
        ),
        Receipt(
            "abc", "UNDELIV", "0B", when(2024, 1, 31, 15, 30, 5), when(2024, 1, 31, 15, 31, 9), ""
        ),
        id="dates with seconds, hex-ish err",
    ),
    pytest.param(
        deliver(
            "ID:X1 SUB:001 DLVRD:001 SUBMIT DATE:2401311530 DONE DATE:2401311531 "
            "STAT:expired ERR:001 TEXT:..."
        ),
        Receipt(
            "X1", "EXPIRED", "001", when(2024, 1, 31, 15, 30), when(2024, 1, 31, 15, 31), "..."
        ),
        id="upper-case keys, lower-case state",
    ),
    pytest.param(
        deliver(
            "id:77 stat:DELIVRD",
            receipted_message_id=cstring_tlv("tlv-id"),
            message_state=int_tlv(5, 1),
        ),
        Receipt("tlv-id", "UNDELIV", None, None, None, None),
        id="TLVs win over text",
    ),
    pytest.param(
        deliver(
            b"",
            receipted_message_id=cstring_tlv("only-tlv"),
            message_state=int_tlv(2, 1),
            network_error_code=b"\x03\x00\x0b",
        ),
        Receipt("only-tlv", "DELIVRD", "011", None, None, None),
        id="TLVs only",
    ),
    pytest.param(
        deliver("id:9 stat:REJECTD", message_state=int_tlv(99, 1)),
        Receipt("9", "REJECTD", None, None, None, None),
        id="unknown message_state falls back to text",
    ),
    pytest.param(
        deliver("id:9 submit date:2413311530 done date:garbage stat:WHATEVER"),
        Receipt("9", "UNKNOWN", None, None, None, None),
        id="bad dates and unknown state",
    ),
    pytest.param(
        deliver("id:5 stat:DELIVERED err:"),
        Receipt("5", "DELIVRD", None, None, None, None),
        id="long state name, empty err",
    ),
    pytest.param(
        deliver("id:5 stat:ACCEPTD", esm_class=0x20),
        Receipt("5", "ACCEPTD", None, None, None, None),
        id="intermediate notification",
    ),
    pytest.param(
        deliver("id:8 stat:ENROUTE".encode("utf-16-be"), data_coding=8),
        Receipt("8", "ENROUTE", None, None, None, None),
        id="UCS-2 text",
    ),
    pytest.param(
        deliver(b"", message_payload=b"id:p1 stat:DELETED text:x"),
        Receipt("p1", "DELETED", None, None, None, "x"),
        id="text in message_payload",
    ),
    pytest.param(
        deliver("id:1 submit_date:20240131153000 stat:2"),
        Receipt("1", "DELIVRD", None, when(2024, 1, 31, 15, 30), None, None),
        id="underscored key, 4-digit year, numeric state",
    ),
    pytest.param(deliver(STANDARD, esm_class=0x00), None, id="MO, not a receipt"),
    pytest.param(deliver(STANDARD, esm_class=0x40), None, id="MO with UDH, not a receipt"),
    pytest.param(deliver("no receipt here"), None, id="receipt without id"),
    pytest.param(deliver(b"\xff\x00\xfe"), None, id="binary garbage"),
]


@pytest.mark.parametrize(("pdu", "expected"), CASES)
def test_parse_receipt(pdu: Pdu, expected: Receipt | None) -> None:
    assert parse_receipt(pdu) == expected


def test_data_sm_receipt() -> None:
    pdu = Pdu(
        CommandId.DATA_SM,
        3,
        body={"esm_class": 0x04},
        tlvs={Tag.RECEIPTED_MESSAGE_ID: b"42\x00", Tag.MESSAGE_STATE: b"\x08"},
    )
    assert parse_receipt(pdu) == Receipt("42", "REJECTD", None, None, None, None)


_body_values = st.one_of(st.integers(), st.text(max_size=5), st.binary(max_size=200))


@given(
    st.fixed_dictionaries(
        {},
        optional={
            "esm_class": st.sampled_from([0, 4, 0x20, 0x44]) | st.integers(),
            "data_coding": st.sampled_from([0, 8]) | st.text(max_size=2),
            "short_message": st.binary(max_size=200) | st.integers(),
        },
    ),
    st.dictionaries(st.sampled_from(list(Tag)), st.binary(max_size=20), max_size=4),
)
def test_parse_receipt_never_raises(
    body: dict[str, int | str | bytes], tlvs: dict[int, bytes]
) -> None:
    receipt = parse_receipt(Pdu(CommandId.DELIVER_SM, 1, body=body, tlvs=tlvs))
    if receipt is not None:
        assert receipt.message_id
        assert receipt.state in STATES


@given(st.text(max_size=300))
def test_text_form_never_raises(text: str) -> None:
    receipt = parse_receipt(deliver(text.encode("utf-8")))
    assert receipt is None or receipt.state in STATES


@given(
    st.text(
        st.characters(min_codepoint=0x21, max_codepoint=0x7E, exclude_characters=":"),
        min_size=1,
        max_size=20,
    ),
    st.sampled_from(sorted(STATES)),
    st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=20),
)
def test_text_form_round_trip(message_id: str, state: str, text: str) -> None:
    wire = f"id:{message_id} sub:001 dlvrd:001 submit date:2401311530 done date:240131153159 "
    wire += f"stat:{state} err:000 text:{text}"
    receipt = parse_receipt(deliver(wire))
    assert receipt == Receipt(
        message_id, state, "000", when(2024, 1, 31, 15, 30), when(2024, 1, 31, 15, 31, 59), text
    )


ID_CASES = [
    ("  abc-123 ", "as-is", False, "abc-123"),
    ("00ABC", "as-is", True, "00ABC"),
    ("0A1B", "hex", False, "a1b"),
    ("2587", "hex", True, "a1b"),
    ("a1b", "hex", True, "a1b"),  # receipt already in hex
    ("0", "hex", False, "0"),
    ("0042", "dec", False, "42"),
    ("2A", "dec", True, "42"),
    ("2a", "dec", True, "42"),
    ("not-a-number", "hex", False, "not-a-number"),
    ("xyz", "dec", True, "xyz"),
    ("", "hex", True, ""),
]


@pytest.mark.parametrize(("raw", "fmt", "from_receipt", "expected"), ID_CASES)
def test_canonical_message_id(raw: str, fmt: str, from_receipt: bool, expected: str) -> None:
    assert canonical_message_id(raw, fmt=fmt, from_receipt=from_receipt) == expected  # type: ignore[arg-type]


@given(st.integers(0, 2**80), st.integers(0, 4), st.booleans())
def test_hex_submit_id_matches_decimal_receipt(number: int, zeros: int, upper: bool) -> None:
    submit_id = "0" * zeros + (format(number, "X") if upper else format(number, "x"))
    receipt_id = str(number)
    assert canonical_message_id(submit_id, fmt="hex", from_receipt=False) == canonical_message_id(
        receipt_id, fmt="hex", from_receipt=True
    )


@given(st.integers(0, 2**80), st.integers(0, 4), st.booleans())
def test_decimal_submit_id_matches_hex_receipt(number: int, zeros: int, upper: bool) -> None:
    submit_id = "0" * zeros + str(number)
    receipt_id = format(number, "X") if upper else format(number, "x")
    assert canonical_message_id(submit_id, fmt="dec", from_receipt=False) == canonical_message_id(
        receipt_id, fmt="dec", from_receipt=True
    )


@given(st.text(max_size=70), st.sampled_from(["as-is", "hex", "dec"]), st.booleans())
def test_canonical_is_idempotent_on_submit_side(raw: str, fmt: str, from_receipt: bool) -> None:
    once = canonical_message_id(raw, fmt=fmt, from_receipt=from_receipt)  # type: ignore[arg-type]
    assert once == once.strip()
    assert canonical_message_id(once, fmt=fmt, from_receipt=False) == once  # type: ignore[arg-type]


@given(st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2068, 12, 31)))
def test_date_slicing_agrees_with_strptime(moment: datetime) -> None:
    for fmt in ("%y%m%d%H%M", "%y%m%d%H%M%S", "%Y%m%d%H%M%S"):
        raw = moment.strftime(fmt)
        assert _parse_date(raw) == datetime.strptime(raw, fmt).replace(tzinfo=UTC)
