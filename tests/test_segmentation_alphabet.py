"""Encoding choice and septet counts against 3GPP TS 23.038, cross-checked with `gsm0338`."""

from __future__ import annotations

import gsm0338  # noqa: F401  (registers the 'gsm03.38' codec)
import pytest
from hypothesis import given
from hypothesis import strategies as st

from broker.segmentation import Encoding, encode_text, split
from broker.segmentation.gsm7 import GSM7_CHARS, from_septets, is_gsm7, to_septets

# The default alphabet, written out from the TS 23.038 table (ESC at 0x1B excluded).
SPEC_BASIC = (
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
SPEC_EXTENSION = "^{}\\[~]|€\f"


def test_tables_match_the_spec_listing() -> None:
    assert len(SPEC_BASIC) == 127
    assert frozenset(SPEC_BASIC + SPEC_EXTENSION) == GSM7_CHARS


@pytest.mark.parametrize(
    ("text", "encoding", "units"),
    [
        ("Hello", Encoding.GSM7, 5),
        ("Ç", Encoding.GSM7, 1),  # capital C cedilla is in the default alphabet
        ("ç", Encoding.UCS2, 1),  # small c cedilla is not
        ("Ça va", Encoding.GSM7, 5),
        ("ça va", Encoding.UCS2, 5),
        ("\x1b", Encoding.UCS2, 1),  # the escape code is not a sendable character
        ("a\x1bb", Encoding.UCS2, 3),
        ("€", Encoding.GSM7, 2),
        ("^", Encoding.GSM7, 2),
        ("{", Encoding.GSM7, 2),
        ("}", Encoding.GSM7, 2),
        ("\\", Encoding.GSM7, 2),
        ("[", Encoding.GSM7, 2),
        ("~", Encoding.GSM7, 2),
        ("]", Encoding.GSM7, 2),
        ("|", Encoding.GSM7, 2),
        ("\f", Encoding.GSM7, 2),  # form feed is in the extension table
        ("a{b}c", Encoding.GSM7, 7),
        ("\n\r", Encoding.GSM7, 2),
        ("@£$¥", Encoding.GSM7, 4),
        ("ΔΦΓΛΩΠΨΣΘΞ", Encoding.GSM7, 10),
        ("Α", Encoding.UCS2, 1),  # Greek capital alpha, not Latin A
        ("`", Encoding.UCS2, 1),
        ("\t", Encoding.UCS2, 1),
        ("\x00", Encoding.UCS2, 1),
        ("ê", Encoding.UCS2, 1),
        ("á", Encoding.UCS2, 1),
        ("¤§¿¡", Encoding.GSM7, 4),
        ("$", Encoding.GSM7, 1),
        ("😀", Encoding.UCS2, 2),  # one code point, a surrogate pair in UTF-16
        ("€😀", Encoding.UCS2, 3),  # in UCS-2 '€' is one unit like any BMP character
    ],
)
def test_encoding_and_units(text: str, encoding: Encoding, units: int) -> None:
    seg = split(text)
    assert (seg.encoding, seg.part_units) == (encoding, (units,))


@pytest.mark.parametrize("ch", sorted(SPEC_BASIC))
def test_every_basic_character_is_one_septet(ch: str) -> None:
    assert split(ch).part_units == (1,)
    assert len(to_septets(ch)) == 1


@pytest.mark.parametrize("ch", list(SPEC_EXTENSION))
def test_every_extension_character_is_an_escape_pair(ch: str) -> None:
    septets = to_septets(ch)
    assert len(septets) == 2 and septets[0] == 0x1B
    assert from_septets(septets) == ch


def test_each_code_has_the_spec_value() -> None:
    assert to_septets("@£$") == bytes([0x00, 0x01, 0x02])
    assert to_septets("Ç") == bytes([0x09])
    assert to_septets("ΔÉ") == bytes([0x10, 0x1F])
    assert to_septets("¡§¿à") == bytes([0x40, 0x5F, 0x60, 0x7F])
    assert to_septets("€\f^") == bytes([0x1B, 0x65, 0x1B, 0x0A, 0x1B, 0x14])
    assert to_septets("{}\\[~]|") == bytes.fromhex("1b281b291b2f1b3c1b3d1b3e1b40")


def test_gsm0338_behaves_as_assumed() -> None:
    """Checked before relying on it: same verdict on ç/Ç and the extension table."""
    with pytest.raises(UnicodeEncodeError):
        "ç".encode("gsm03.38")
    assert "Ç".encode("gsm03.38") == b"\x09"
    assert "€".encode("gsm03.38") == b"\x1b\x65"
    assert "\f".encode("gsm03.38") == b"\x1b\x0a"


def test_gsm0338_disagrees_on_a_literal_escape() -> None:
    """Known disagreement: gsm0338 encodes U+001B as the bare escape code 0x1B (one septet).

    A bare escape is not a character: the receiver reads it as the start of an escape pair.
    We refuse it in GSM7, so a text containing it goes UCS-2.
    """
    assert "\x1b".encode("gsm03.38") == b"\x1b"
    assert not is_gsm7("\x1b")
    assert split("\x1b").encoding is Encoding.UCS2


def test_same_alphabet_as_gsm0338_over_every_code_point_but_escape() -> None:
    theirs: set[str] = set()
    for cp in [*range(0xD800), *range(0xE000, 0x10000), *range(0x1F000, 0x1FB00)]:
        ch = chr(cp)
        try:
            ch.encode("gsm03.38")
        except UnicodeEncodeError:
            continue
        theirs.add(ch)
    assert theirs - {"\x1b"} == set(GSM7_CHARS)


GSM7_TEXT = st.text(alphabet=st.sampled_from(sorted(GSM7_CHARS)), min_size=1, max_size=1600)


@given(GSM7_TEXT, st.booleans())
def test_septet_counts_agree_with_gsm0338(text: str, udh16: bool) -> None:
    seg = split(text, udh16=udh16)
    assert seg.encoding is Encoding.GSM7
    assert sum(seg.part_units) == len(text.encode("gsm03.38"))
    for part, units in zip(seg.parts, seg.part_units, strict=True):
        assert units == len(part.encode("gsm03.38"))


@given(GSM7_TEXT)
def test_our_septets_are_the_gsm0338_encoding(text: str) -> None:
    assert encode_text(text, Encoding.GSM7) == text.encode("gsm03.38")
    assert from_septets(text.encode("gsm03.38")) == text


@given(st.text(min_size=1, max_size=300))
def test_encoding_choice_agrees_with_gsm0338(text: str) -> None:
    try:
        text.encode("gsm03.38")
        theirs = "\x1b" not in text  # see test_gsm0338_disagrees_on_a_literal_escape
    except UnicodeEncodeError:
        theirs = False
    assert is_gsm7(text) == theirs
    assert (split(text).encoding is Encoding.GSM7) == theirs
