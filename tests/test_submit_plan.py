"""How messages become submit_sm PDUs per connector mode: table and property tests."""

from __future__ import annotations

import uuid

import pytest
from hypothesis import given
from hypothesis import strategies as st

from broker.long_mode import LongMode
from broker.segmentation import decode_short_message
from broker.smpp.constants import ESM_UDHI, Tag
from broker.submit_plan import plan_parts, source_address

MID = uuid.UUID("12345678-1234-5678-1234-567812345678")


@pytest.mark.parametrize(
    ("sender", "expected"),
    [
        (None, ("", 0, 0)),
        ("", ("", 0, 0)),
        ("+233205550368", ("233205550368", 1, 1)),
        ("233205550368", ("233205550368", 1, 1)),
        ("12345", ("12345", 3, 0)),
        ("Acme", ("Acme", 5, 0)),
        ("Acme Bank", ("Acme Bank", 5, 0)),
    ],
)
def test_source_address(sender: str | None, expected: tuple[str, int, int]) -> None:
    assert source_address(sender) == expected


def test_single_part_has_no_udh() -> None:
    [part] = plan_parts(MID, "+14155552671", "Acme", "Hello", LongMode())
    assert part.short_message == b"Hello"
    assert part.esm_class == 0 and part.data_coding == 0
    assert part.destination_addr == "14155552671" and part.dest_addr_ton == 1
    assert part.registered_delivery == 1


@pytest.mark.parametrize(("mode", "udh_len", "iei"), [("udh8", 6, 0x00), ("udh16", 7, 0x08)])
def test_udh_modes(mode: str, udh_len: int, iei: int) -> None:
    parts = plan_parts(MID, "+14155552671", None, "x" * 400, LongMode(mode))
    assert len(parts) == 3
    refs = set()
    for seq, part in enumerate(parts, start=1):
        assert part.esm_class & ESM_UDHI
        udh = part.short_message[:udh_len]
        assert udh[1] == iei
        assert udh[-2:] == bytes([3, seq])
        refs.add(udh[3:-2])
    assert len(refs) == 1  # one reference for every part


def test_reference_is_stable_for_a_message() -> None:
    first = plan_parts(MID, "+14155552671", None, "y" * 300, LongMode())
    again = plan_parts(MID, "+14155552671", None, "y" * 300, LongMode())
    assert [p.short_message for p in first] == [p.short_message for p in again]


def test_sar_mode_uses_tlvs_not_udh() -> None:
    parts = plan_parts(MID, "+14155552671", None, "z" * 200, LongMode("sar"))
    assert len(parts) == 2
    for seq, part in enumerate(parts, start=1):
        assert part.esm_class == 0
        assert part.tlvs[Tag.SAR_TOTAL_SEGMENTS] == b"\x02"
        assert part.tlvs[Tag.SAR_SEGMENT_SEQNUM] == bytes([seq])
        assert len(part.tlvs[Tag.SAR_MSG_REF_NUM]) == 2
    assert b"".join(p.short_message for p in parts) == b"z" * 200


def test_payload_mode_sends_one_pdu() -> None:
    [part] = plan_parts(MID, "+14155552671", None, "Привет " * 30, LongMode("payload"))
    assert part.short_message == b"" and part.data_coding == 8
    assert part.tlvs[Tag.MESSAGE_PAYLOAD] == ("Привет " * 30).encode("utf-16-be")


def test_packed_gsm7() -> None:
    [part] = plan_parts(MID, "+14155552671", None, "hellohello", LongMode(packed=True))
    assert len(part.short_message) == 9  # 10 septets packed into 9 octets
    decoded = decode_short_message(part.short_message, 0, udhi=False, packed=True)
    assert decoded.text == "hellohello"


@given(st.text(min_size=1, max_size=600), st.sampled_from(["udh8", "udh16"]))
def test_parts_decode_back_to_the_text(text: str, mode: str) -> None:
    parts = plan_parts(MID, "+14155552671", None, text, LongMode(mode))
    decoded = [
        decode_short_message(p.short_message, p.data_coding, udhi=bool(p.esm_class & ESM_UDHI))
        for p in parts
    ]
    assert "".join(d.text for d in decoded) == text
    if len(parts) > 1:
        assert [d.concat.seq for d in decoded if d.concat] == list(range(1, len(parts) + 1))
