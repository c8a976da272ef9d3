"""Bytes on the wire: short_message for each part, and inbound short_message back to text."""

from __future__ import annotations

from typing import Final

from broker.errors import InputError
from broker.segmentation import gsm7
from broker.segmentation.model import ConcatInfo, DecodedMessage, Encoding, Segmentation
from broker.segmentation.udh import build_udh, parse_udh

DATA_CODING: Final[dict[Encoding, int]] = {Encoding.GSM7: 0x00, Encoding.UCS2: 0x08}

# SMPP 3.4 data_coding values that map onto a Python codec (5.2.19).
_BYTE_CODECS: Final[dict[int, str]] = {
    0x01: "ascii",  # IA5
    0x02: "latin-1",  # 8-bit binary: best effort
    0x03: "latin-1",
    0x04: "latin-1",  # 8-bit binary: best effort
    0x06: "iso8859-5",
    0x07: "iso8859-8",
    0x0A: "iso2022_jp",
    0x0E: "euc_kr",
}


def encode_text(text: str, encoding: Encoding, *, packed: bool = False) -> bytes:
    """The text alone, no UDH. GSM7 unpacked is one septet per byte; UCS2 is UTF-16BE."""
    return _encode_body(text, encoding, packed=packed)


def encode_parts(
    seg: Segmentation, *, reference: int, udh16: bool = False, packed: bool = False
) -> list[bytes]:
    """short_message per part; with several parts each starts with the concatenation UDH.

    The caller sets esm_class UDHI (0x40) when there is more than one part.
    """
    if seg.segments == 1:
        return [_encode_body(seg.parts[0], seg.encoding, packed=packed)]
    out: list[bytes] = []
    for seq, part in enumerate(seg.parts, start=1):
        header = build_udh(reference, seg.segments, seq, udh16=udh16)
        out.append(header + _encode_body(part, seg.encoding, packed=packed, header=len(header)))
    return out


def decode_short_message(
    data: bytes, data_coding: int, *, udhi: bool, packed: bool = False
) -> DecodedMessage:
    """Text and concatenation info of an inbound short_message (best effort for 8-bit data)."""
    concat: ConcatInfo | None = None
    header = 0
    if udhi:
        header, concat = parse_udh(data)
    body = data[header:]
    if _is_gsm7_coding(data_coding):
        septets = gsm7.unpack(body, header_octets=header) if packed else body
        return DecodedMessage(gsm7.from_septets(septets), concat)
    if data_coding == 0x08:
        return DecodedMessage(body[: len(body) & ~1].decode("utf-16-be", "replace"), concat)
    codec = _BYTE_CODECS.get(_general_group_8bit(data_coding) or data_coding)
    if codec is None:
        raise InputError(
            f"data_coding 0x{data_coding:02x} is not supported",
            code="UNSUPPORTED_DATA_CODING",
            field="data_coding",
        )
    return DecodedMessage(body.decode(codec, "replace"), concat)


def _encode_body(text: str, encoding: Encoding, *, packed: bool, header: int = 0) -> bytes:
    if encoding is Encoding.UCS2:
        try:
            return text.encode("utf-16-be")
        except UnicodeEncodeError as exc:
            raise InputError(
                f"the text contains an unpaired surrogate at position {exc.start}",
                code="INVALID_CHARACTER",
                field="body",
            ) from exc
    try:
        septets = gsm7.to_septets(text)
    except ValueError as exc:
        raise InputError(str(exc), code="NOT_GSM7", field="body") from exc
    if not packed:
        return septets
    return gsm7.pack(septets, header_octets=header)


def _is_gsm7_coding(data_coding: int) -> bool:
    if data_coding == 0x00:
        return True
    if data_coding & 0xF0 == 0xF0:  # data coding / message class group: bit 2 clear = GSM7
        return not data_coding & 0x04
    return False


def _general_group_8bit(data_coding: int) -> int | None:
    """Data coding / message class group with bit 2 set: 8-bit data."""
    if data_coding & 0xF0 == 0xF0 and data_coding & 0x04:
        return 0x04
    return None
