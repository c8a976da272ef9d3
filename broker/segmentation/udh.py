"""User data header: the concatenation information elements (TS 23.040 9.2.3.24.1 / .8)."""

from __future__ import annotations

from typing import Final

from broker.errors import InputError
from broker.segmentation.model import ConcatInfo

IEI_CONCAT_8BIT: Final = 0x00
IEI_CONCAT_16BIT: Final = 0x08


def build_udh(reference: int, total: int, seq: int, *, udh16: bool = False) -> bytes:
    """``05 00 03 ref total seq`` or ``06 08 04 refhi reflo total seq``.

    ValueError on out-of-range arguments: they are a caller's bug, not customer input.
    """
    if not 1 <= total <= 255 or not 1 <= seq <= total:
        raise ValueError(f"concatenation needs 1 <= seq ({seq}) <= total ({total}) <= 255")
    if udh16:
        if not 0 <= reference <= 0xFFFF:
            raise ValueError(f"a 16-bit reference must be 0..65535, got {reference}")
        return bytes([6, IEI_CONCAT_16BIT, 4, reference >> 8, reference & 0xFF, total, seq])
    if not 0 <= reference <= 0xFF:
        raise ValueError(f"an 8-bit reference must be 0..255, got {reference}")
    return bytes([5, IEI_CONCAT_8BIT, 3, reference, total, seq])


def parse_udh(data: bytes) -> tuple[int, ConcatInfo | None]:
    """Return (header length in octets including the UDHL octet, concatenation info).

    Other information elements are skipped; a concatenation element with impossible values is
    ignored as TS 23.040 asks. A header that overruns the data is an InputError.
    """
    if not data:
        raise _bad_udh("the user data header is missing")
    end = 1 + data[0]
    if end > len(data):
        raise _bad_udh(f"the user data header claims {data[0]} octets; {len(data) - 1} present")
    concat: ConcatInfo | None = None
    pos = 1
    while pos < end:
        if pos + 2 > end:
            raise _bad_udh("a user data header element is truncated")
        iei, length = data[pos], data[pos + 1]
        body = data[pos + 2 : pos + 2 + length]
        if pos + 2 + length > end:
            raise _bad_udh(f"user data header element 0x{iei:02x} overruns the header")
        concat = _concat(iei, body) or concat
        pos += 2 + length
    return end, concat


def _concat(iei: int, body: bytes) -> ConcatInfo | None:
    if iei == IEI_CONCAT_8BIT and len(body) == 3:
        info = ConcatInfo(body[0], body[1], body[2])
    elif iei == IEI_CONCAT_16BIT and len(body) == 4:
        info = ConcatInfo((body[0] << 8) | body[1], body[2], body[3])
    else:
        return None
    return info if 1 <= info.seq <= info.total else None


def _bad_udh(message: str) -> InputError:
    return InputError(message, code="BAD_UDH", field="short_message")
