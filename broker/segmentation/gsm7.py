"""GSM 03.38 (3GPP TS 23.038) default alphabet, its extension table, and septet packing.

Tables are built once at import so that a lookup is one dict/frozenset access on the hot path.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

ESC: Final = 0x1B
CR: Final = 0x0D
MAX_USER_DATA_OCTETS: Final = 140

# Code 0x00..0x7F in order. Position 0x1B is the escape to the extension table: it is not a
# character a customer can send, so it is left out of the encodable set below.
DEFAULT_ALPHABET: Final[str] = (
    "@£$¥èéùìòÇ\nØø\rÅå"
    "Δ_ΦΓΛΩΠΨΣΘΞ\x1bÆæßÉ"
    " !\"#¤%&'()*+,-./"
    "0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNO"
    "PQRSTUVWXYZÄÖÑÜ§"
    "¿abcdefghijklmno"
    "pqrstuvwxyzäöñüà"
)

# Extension table: character -> code following ESC. Each costs two septets.
EXTENSION: Final[dict[str, int]] = {
    "\f": 0x0A,
    "^": 0x14,
    "{": 0x28,
    "}": 0x29,
    "\\": 0x2F,
    "[": 0x3C,
    "~": 0x3D,
    "]": 0x3E,
    "|": 0x40,
    "€": 0x65,
}

EXTENSION_CHARS: Final[str] = "".join(EXTENSION)

BASIC: Final[dict[str, int]] = {ch: code for code, ch in enumerate(DEFAULT_ALPHABET) if code != ESC}

# Septets each encodable character costs.
SEPTET_COST: Final[dict[str, int]] = {**dict.fromkeys(BASIC, 1), **dict.fromkeys(EXTENSION, 2)}

GSM7_CHARS: Final[frozenset[str]] = frozenset(SEPTET_COST)

_DECODE_BASIC: Final[tuple[str, ...]] = tuple(DEFAULT_ALPHABET)
_DECODE_EXTENSION: Final[dict[int, str]] = {code: ch for ch, code in EXTENSION.items()}

# Text -> septet bytes (unpacked), as a str.translate table so encoding runs in C.
_TRANSLATE: Final[dict[int, str]] = {
    **{ord(ch): chr(code) for ch, code in BASIC.items()},
    **{ord(ch): chr(ESC) + chr(code) for ch, code in EXTENSION.items()},
}


# For all-ASCII text the checks run as bytes.translate deletions, in C.
_DELETE_GSM_ASCII: Final[bytes] = bytes(sorted(ord(ch) for ch in GSM7_CHARS if ord(ch) < 128))
_DELETE_ALL_BUT_EXTENSION: Final[bytes] = bytes(
    sorted(set(range(256)) - {ord(ch) for ch in EXTENSION_CHARS if ord(ch) < 128})
)


def septets_needed(text: str) -> int | None:
    """Septets `text` costs in GSM 7-bit (extension characters count two), None if not GSM7."""
    if text.isascii():
        raw = text.encode("ascii")
        if raw.translate(None, _DELETE_GSM_ASCII):
            return None
        return len(raw) + len(raw.translate(None, _DELETE_ALL_BUT_EXTENSION))
    if not GSM7_CHARS.issuperset(text):
        return None
    return len(text) + sum(text.count(ch) for ch in EXTENSION_CHARS)


def is_gsm7(text: str) -> bool:
    """True when every character is in the default alphabet or the extension table."""
    return septets_needed(text) is not None


def to_septets(text: str) -> bytes:
    """One septet per byte (escape pairs as two); ValueError when a character is not GSM 7-bit."""
    if not is_gsm7(text):
        raise ValueError("text contains characters outside the GSM 7-bit alphabet")
    return text.translate(_TRANSLATE).encode("latin-1")


def from_septets(septets: Sequence[int]) -> str:
    """Decode septet values; an unknown escape shows the default-table character (TS 23.038).

    ESC ESC (reserved for a further table) and a dangling ESC display as a space.
    """
    out: list[str] = []
    escaped = False
    for value in septets:
        code = value & 0x7F
        if escaped:
            escaped = False
            if code == ESC:
                out.append(" ")
            else:
                out.append(_DECODE_EXTENSION.get(code, _DECODE_BASIC[code]))
        elif code == ESC:
            escaped = True
        else:
            out.append(_DECODE_BASIC[code])
    if escaped:
        out.append(" ")
    return "".join(out)


def fill_bits(header_octets: int) -> int:
    """Fill bits after a UDH of `header_octets` so that the first septet starts on a boundary."""
    return (7 - (8 * header_octets) % 7) % 7


def pack(septets: bytes, *, header_octets: int = 0) -> bytes:
    """Pack septets LSB first; after a UDH of `header_octets` they start past the fill bits.

    SMPP gives the length in octets, not septets, so the end is marked as TS 23.038 6.1.2.3.1
    says: 7 spare bits carry CR (which `unpack` drops, so they never read as '@'), and a wanted
    CR that ends exactly on an octet boundary is followed by a second CR. That second CR is left
    out when the user data is already 140 octets; the receiver then loses the trailing CR.
    """
    fill = fill_bits(header_octets)
    total_bits = fill + 7 * len(septets)
    ends_on_cr_boundary = total_bits % 8 == 0 and septets[-1:] == bytes([CR])
    full = header_octets + total_bits // 8 >= MAX_USER_DATA_OCTETS
    if total_bits % 8 == 1 or (ends_on_cr_boundary and not full):
        septets += bytes([CR])
        total_bits += 7
    value = 0
    for index, septet in enumerate(septets):
        value |= septet << (7 * index)
    return (value << fill).to_bytes((total_bits + 7) // 8, "little")


def unpack(data: bytes, *, header_octets: int = 0) -> bytes:
    """Inverse of `pack` on the octets after the UDH; a CR padding septet is dropped."""
    usable = 8 * len(data) - fill_bits(header_octets)
    if usable <= 0:
        return b""
    count = usable // 7
    value = int.from_bytes(data, "little") >> fill_bits(header_octets)
    septets = bytes((value >> (7 * index)) & 0x7F for index in range(count))
    if usable % 7 == 0 and septets[-1:] == bytes([CR]):
        septets = septets[:-1]
    return septets
