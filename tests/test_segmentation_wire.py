"""Wire bytes: UDH, septet packing, UCS-2, and decoding inbound short_message back to text."""

from __future__ import annotations

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from broker.errors import InputError
from broker.segmentation import (
    DATA_CODING,
    ConcatInfo,
    DecodedMessage,
    Encoding,
    build_udh,
    decode_short_message,
    encode_parts,
    encode_text,
    split,
)
from broker.segmentation.gsm7 import GSM7_CHARS, pack, to_septets, unpack


def naive_pack(septets: bytes, fill: int) -> bytes:
    """Reference packer over a bit string: septets LSB first after `fill` zero bits."""
    bits = "0" * fill + "".join(format(s, "07b")[::-1] for s in septets)
    bits += "0" * (-len(bits) % 8)
    return bytes(int(bits[i : i + 8][::-1], 2) for i in range(0, len(bits), 8))


# ---- UDH -----------------------------------------------------------------------------------


def test_build_udh_8_and_16_bit() -> None:
    assert build_udh(0x12, 3, 1) == bytes.fromhex("050003120301")
    assert build_udh(0xFF, 255, 255) == bytes.fromhex("050003ffffff")
    assert build_udh(0x1234, 3, 2, udh16=True) == bytes.fromhex("06080412340302")
    assert build_udh(0, 2, 2, udh16=True) == bytes.fromhex("06080400000202")


@pytest.mark.parametrize(
    ("reference", "total", "seq", "udh16"),
    [(256, 2, 1, False), (-1, 2, 1, False), (65536, 2, 1, True), (1, 0, 0, False),
     (1, 2, 0, False), (1, 2, 3, False), (1, 256, 1, False)],
)  # fmt: skip
def test_build_udh_rejects_out_of_range(reference: int, total: int, seq: int, udh16: bool) -> None:
    with pytest.raises(ValueError):
        build_udh(reference, total, seq, udh16=udh16)


# ---- encoding ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "encoding", "packed", "expected"),
    [
        ("hello", Encoding.GSM7, True, "e8329bfd06"),  # the classic TS 23.038 example
        ("hello", Encoding.GSM7, False, "68656c6c6f"),
        ("@£", Encoding.GSM7, False, "0001"),
        ("€", Encoding.GSM7, False, "1b65"),
        ("a{", Encoding.GSM7, False, "611b28"),
        ("12345678", Encoding.GSM7, True, "31d98c56b3dd70"),  # 8 septets fill 7 octets
        ("Hi", Encoding.UCS2, False, "00480069"),
        ("ç€", Encoding.UCS2, False, "00e720ac"),
        ("😀", Encoding.UCS2, False, "d83dde00"),  # surrogate pair, big-endian
    ],
)
def test_encode_text(text: str, encoding: Encoding, packed: bool, expected: str) -> None:
    assert encode_text(text, encoding, packed=packed).hex() == expected


def test_seven_spare_bits_carry_cr() -> None:
    """TS 23.038 6.1.2.3.1: 7 septets leave 7 spare bits; they hold CR, not '@' (0)."""
    data = encode_text("1234567", Encoding.GSM7, packed=True)
    assert data == naive_pack(to_septets("1234567") + b"\r", 0)
    assert data[-1] >> 1 == 0x0D
    assert decode_short_message(data, 0, udhi=False, packed=True).text == "1234567"


def test_wanted_cr_on_an_octet_boundary_is_doubled() -> None:
    """TS 23.038 6.1.2.3.1: a final CR ending on an octet boundary gets a second CR.

    Without the septet count the two cases are indistinguishable, so the receiver sees both.
    """
    data = encode_text("1234567\r", Encoding.GSM7, packed=True)
    assert len(data) == 8
    assert decode_short_message(data, 0, udhi=False, packed=True).text == "1234567\r\r"


def test_wanted_cr_ending_a_full_packed_part_is_lost() -> None:
    """A full part (140 octets) has no room for the second CR: the trailing CR is dropped."""
    text = "a" * 152 + "\r" + "b" * 20
    seg = split(text)
    assert seg.parts[0].endswith("\r") and seg.part_units[0] == 153
    first = encode_parts(seg, reference=1, packed=True)[0]
    assert len(first) == 140
    assert decode_short_message(first, 0, udhi=True, packed=True).text == "a" * 152


def test_encode_text_refuses_what_the_encoding_cannot_carry() -> None:
    with pytest.raises(InputError) as err:
        encode_text("ç", Encoding.GSM7)
    assert err.value.code == "NOT_GSM7"
    with pytest.raises(InputError) as err:
        encode_text("\x1b", Encoding.GSM7)
    assert err.value.code == "NOT_GSM7"
    with pytest.raises(InputError) as err:
        encode_text("a\udc00", Encoding.UCS2)
    assert err.value.code == "INVALID_CHARACTER"


def test_single_part_has_no_udh() -> None:
    seg = split("Hello")
    assert encode_parts(seg, reference=9) == [b"Hello"]
    assert encode_parts(seg, reference=9, packed=True) == [bytes.fromhex("c8329bfd06")]
    assert encode_parts(split("ç"), reference=9) == [b"\x00\xe7"]


def test_multipart_gsm7_unpacked() -> None:
    parts = encode_parts(split("a" * 200), reference=0x42)
    assert [p[:6].hex() for p in parts] == ["050003420201", "050003420202"]
    assert parts[0][6:] == b"a" * 153 and parts[1][6:] == b"a" * 47


def test_multipart_gsm7_packed_fill_bits() -> None:
    parts = encode_parts(split("a" * 200), reference=7, packed=True)
    assert len(parts[0]) == 140  # 6 octets UDH + 1 fill bit + 153 septets
    assert parts[0][6] == (0x61 << 1) & 0xFF  # first septet starts after one fill bit
    assert parts[0][6:] == naive_pack(b"a" * 153, 1)
    parts16 = encode_parts(split("a" * 200, udh16=True), reference=0x1234, udh16=True, packed=True)
    assert parts16[0][:7].hex() == "06080412340201"
    assert len(parts16[0]) == 140  # 7 octets UDH = 8 septets, no fill
    assert parts16[0][7:] == naive_pack(b"a" * 152, 0)


def test_multipart_ucs2() -> None:
    parts = encode_parts(split("ç" * 100), reference=3)
    assert [len(p) for p in parts] == [140, 72]
    assert parts[0][:6].hex() == "050003030201"
    assert parts[0][6:] == "ç".encode("utf-16-be") * 67
    parts16 = encode_parts(split("ç" * 100, udh16=True), reference=3, udh16=True)
    assert [len(p) for p in parts16] == [139, 75]


@given(st.binary(max_size=160), st.integers(0, 6))
def test_pack_matches_the_reference_packer(raw: bytes, fill_octets: int) -> None:
    septets = bytes(b & 0x7F for b in raw)
    header = [0, 6, 7, 5, 1, 2, 3][fill_octets]
    fill = (7 - (8 * header) % 7) % 7
    packed = pack(septets, header_octets=header)
    expected = septets
    total = fill + 7 * len(septets)
    if total % 8 == 1 or (total % 8 == 0 and septets[-1:] == b"\r" and header + total // 8 < 140):
        expected += b"\r"
    assert packed == naive_pack(expected, fill)
    assume(not septets.endswith(b"\r"))
    assert unpack(packed, header_octets=header) == septets


# ---- decoding ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "data_coding", "text"),
    [
        (b"Hello", 0x00, "Hello"),
        (bytes([0x00, 0x01, 0x09, 0x1B, 0x65]), 0x00, "@£Ç€"),
        (b"\x1b\x41", 0x00, "A"),  # unknown escape: shown as the default-table character
        (b"a\x1b\x1bb", 0x00, "a b"),  # ESC ESC, reserved for another table: a space
        (b"ab\x1b", 0x00, "ab "),  # dangling escape: a space
        (b"\xe1", 0x00, "a"),  # the eighth bit of an unpacked septet is ignored
        (b"Hello", 0x01, "Hello"),  # IA5
        (b"\xe7a", 0x03, "ça"),  # Latin-1
        (b"\xe7a", 0x02, "ça"),  # 8-bit binary, best effort
        (b"\xe7a", 0x04, "ça"),
        (b"\x00\xe7\xd8\x3d\xde\x00", 0x08, "ç😀"),
        (b"\x00\xe7\x00", 0x08, "ç"),  # odd trailing octet dropped
        (b"\xb0", 0x06, "А"),  # ISO-8859-5 Cyrillic
        (b"Hi", 0xF0, "Hi"),  # message class group, GSM7
        (b"\xe7", 0xF4, "ç"),  # message class group, 8-bit
    ],
)
def test_decode_codings(data: bytes, data_coding: int, text: str) -> None:
    assert decode_short_message(data, data_coding, udhi=False) == DecodedMessage(text, None)


def test_decode_unsupported_coding() -> None:
    with pytest.raises(InputError) as err:
        decode_short_message(b"x", 0x05, udhi=False)
    assert (err.value.code, err.value.field) == ("UNSUPPORTED_DATA_CODING", "data_coding")


def test_decode_skips_other_information_elements() -> None:
    # UDHL 8: national language shift (0x24, len 1) then 8-bit concatenation.
    data = bytes.fromhex("08240101000305020148693f")
    assert decode_short_message(data, 0x00, udhi=True) == DecodedMessage(
        "Hi?", ConcatInfo(reference=5, total=2, seq=1)
    )
    only_other = bytes.fromhex("0324010148")
    assert decode_short_message(only_other, 0x00, udhi=True) == DecodedMessage("H", None)


def test_decode_16_bit_concatenation_ucs2() -> None:
    data = bytes.fromhex("06080412340302") + "ç".encode("utf-16-be")
    assert decode_short_message(data, 0x08, udhi=True) == DecodedMessage(
        "ç", ConcatInfo(0x1234, 3, 2)
    )


@pytest.mark.parametrize("udh", ["050003010003", "050003010203", "0608040001ff00"])
def test_impossible_concatenation_values_are_ignored(udh: str) -> None:
    decoded = decode_short_message(bytes.fromhex(udh) + b"x", 0x00, udhi=True)
    assert decoded == DecodedMessage("x", None)


@pytest.mark.parametrize("data", ["", "05000301", "0300050102", "0124"])
def test_malformed_udh_is_an_input_error(data: str) -> None:
    with pytest.raises(InputError) as err:
        decode_short_message(bytes.fromhex(data), 0x00, udhi=True)
    assert (err.value.code, err.value.field) == ("BAD_UDH", "short_message")


def test_data_coding_values() -> None:
    assert DATA_CODING == {Encoding.GSM7: 0x00, Encoding.UCS2: 0x08}


# ---- round trips ---------------------------------------------------------------------------

GSM7_TEXT = st.text(alphabet=st.sampled_from(sorted(GSM7_CHARS)), min_size=1, max_size=1600)
ANY_TEXT = st.one_of(
    GSM7_TEXT,
    st.text(min_size=1, max_size=800),
    st.lists(
        st.sampled_from(["👨\u200d👩\u200d👧\u200d👦", "🇫🇷", "👍🏽", "e\u0301", "ç", "a", "€"]),
        min_size=1,
        max_size=200,
    ).map("".join),
)


def cr_ambiguous(part: str, units: int, header: int) -> bool:
    """A packed part whose final CR ends on an octet boundary (see the CR tests above)."""
    fill = (7 - (8 * header) % 7) % 7
    return part.endswith("\r") and (fill + 7 * units) % 8 == 0


@given(ANY_TEXT, st.booleans(), st.booleans(), st.integers(0, 0xFFFF))
def test_decoding_every_encoded_part_gives_the_text_back(
    text: str, udh16: bool, packed: bool, reference: int
) -> None:
    seg = split(text, udh16=udh16)
    if not udh16:
        reference &= 0xFF
    header = 0 if seg.segments == 1 else (7 if udh16 else 6)
    if packed and seg.encoding is Encoding.GSM7:
        assume(
            not any(
                cr_ambiguous(p, u, header) for p, u in zip(seg.parts, seg.part_units, strict=True)
            )
        )
    wire = encode_parts(seg, reference=reference, udh16=udh16, packed=packed)
    assert len(wire) == seg.segments
    decoded = [
        decode_short_message(data, DATA_CODING[seg.encoding], udhi=seg.segments > 1, packed=packed)
        for data in wire
    ]
    assert "".join(d.text for d in decoded) == text
    assert [d.text for d in decoded] == list(seg.parts)
    if seg.segments == 1:
        assert decoded[0].concat is None
    else:
        assert [d.concat for d in decoded] == [
            ConcatInfo(reference, seg.segments, seq) for seq in range(1, seg.segments + 1)
        ]
    if packed or seg.encoding is Encoding.UCS2:
        assert all(len(data) <= 140 for data in wire)  # one TPDU's user data


@given(ANY_TEXT, st.booleans())
def test_encode_text_round_trips(text: str, packed: bool) -> None:
    encoding = split(text).encoding
    if packed and encoding is Encoding.GSM7:
        assume(not cr_ambiguous(text, len(to_septets(text)), 0))
    data = encode_text(text, encoding, packed=packed)
    decoded = decode_short_message(data, DATA_CODING[encoding], udhi=False, packed=packed)
    assert decoded == DecodedMessage(text, None)
