"""SMPP 3.4 PDU codec: bytes <-> :class:`Pdu`, nothing else (no I/O, no business rules).

Mandatory parameters live in ``Pdu.body`` under their specification names; optional
parameters stay raw in ``Pdu.tlvs`` keyed by tag, so unknown or vendor TLVs survive a relay.
command_id and command_status are plain ints: vendor values are never rejected or mapped.

Decoding is lenient where SMSCs are known to deviate (a response without a body, a final
message_id without its NUL), strict where a guess could corrupt data (lengths that overrun).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Final

from broker.smpp.constants import RESPONSE_BIT, CommandId, Status
from broker.smpp.errors import SmppCodecError

__all__ = [
    "HEADER_LENGTH",
    "MAX_FRAME_LENGTH",
    "FrameReader",
    "Pdu",
    "SmppCodecError",
    "cstring_tlv",
    "decode_pdu",
    "encode_pdu",
    "int_tlv",
    "is_response",
    "tlv_cstring",
    "tlv_int",
]

BodyValue = int | str | bytes

HEADER_LENGTH: Final = 16
MAX_FRAME_LENGTH: Final = 64 * 1024
MAX_SHORT_MESSAGE: Final = 254

_HEADER = struct.Struct(">IIII")
_LENGTH = struct.Struct(">I")
_TLV_HEADER = struct.Struct(">HH")

# Field kinds: a C-octet string with its maximum size (NUL included), one octet, or
# sm_length followed by short_message.
_CSTR: Final = 0
_INT8: Final = 1
_SM: Final = 2

_Field = tuple[str, int, int]
_Layout = tuple[_Field, ...]


def _c(name: str, size: int) -> _Field:
    return (name, _CSTR, size)


def _i(name: str) -> _Field:
    return (name, _INT8, 1)


_SHORT_MESSAGE: Final[_Field] = ("short_message", _SM, MAX_SHORT_MESSAGE)

# fmt: off
_BIND: _Layout = (
    _c("system_id", 16), _c("password", 9), _c("system_type", 13), _i("interface_version"),
    _i("addr_ton"), _i("addr_npi"), _c("address_range", 41),
)
_SYSTEM_ID: _Layout = (_c("system_id", 16),)
_MESSAGE_ID: _Layout = (_c("message_id", 65),)
_SM_BODY: _Layout = (
    _c("service_type", 6), _i("source_addr_ton"), _i("source_addr_npi"), _c("source_addr", 21),
    _i("dest_addr_ton"), _i("dest_addr_npi"), _c("destination_addr", 21), _i("esm_class"),
    _i("protocol_id"), _i("priority_flag"), _c("schedule_delivery_time", 17),
    _c("validity_period", 17), _i("registered_delivery"), _i("replace_if_present_flag"),
    _i("data_coding"), _i("sm_default_msg_id"), _SHORT_MESSAGE,
)
_DATA_SM: _Layout = (
    _c("service_type", 6), _i("source_addr_ton"), _i("source_addr_npi"), _c("source_addr", 65),
    _i("dest_addr_ton"), _i("dest_addr_npi"), _c("destination_addr", 65), _i("esm_class"),
    _i("registered_delivery"), _i("data_coding"),
)
_QUERY_SM: _Layout = (
    _c("message_id", 65), _i("source_addr_ton"), _i("source_addr_npi"), _c("source_addr", 21),
)
_QUERY_SM_RESP: _Layout = (
    _c("message_id", 65), _c("final_date", 17), _i("message_state"), _i("error_code"),
)
_CANCEL_SM: _Layout = (
    _c("service_type", 6), _c("message_id", 65), _i("source_addr_ton"), _i("source_addr_npi"),
    _c("source_addr", 21), _i("dest_addr_ton"), _i("dest_addr_npi"), _c("destination_addr", 21),
)
_REPLACE_SM: _Layout = (
    _c("message_id", 65), _i("source_addr_ton"), _i("source_addr_npi"), _c("source_addr", 21),
    _c("schedule_delivery_time", 17), _c("validity_period", 17), _i("registered_delivery"),
    _i("sm_default_msg_id"), _SHORT_MESSAGE,
)
_ALERT_NOTIFICATION: _Layout = (
    _i("source_addr_ton"), _i("source_addr_npi"), _c("source_addr", 65),
    _i("esme_addr_ton"), _i("esme_addr_npi"), _c("esme_addr", 65),
)
_OUTBIND: _Layout = (_c("system_id", 16), _c("password", 9))
# fmt: on
_EMPTY: _Layout = ()

# submit_multi is absent on purpose: an ESME never receives it, and its destination list
# does not fit a flat body. It decodes like an unknown command (empty body).
LAYOUTS: Final[dict[int, _Layout]] = {
    CommandId.GENERIC_NACK: _EMPTY,
    CommandId.BIND_RECEIVER: _BIND,
    CommandId.BIND_RECEIVER_RESP: _SYSTEM_ID,
    CommandId.BIND_TRANSMITTER: _BIND,
    CommandId.BIND_TRANSMITTER_RESP: _SYSTEM_ID,
    CommandId.BIND_TRANSCEIVER: _BIND,
    CommandId.BIND_TRANSCEIVER_RESP: _SYSTEM_ID,
    CommandId.QUERY_SM: _QUERY_SM,
    CommandId.QUERY_SM_RESP: _QUERY_SM_RESP,
    CommandId.SUBMIT_SM: _SM_BODY,
    CommandId.SUBMIT_SM_RESP: _MESSAGE_ID,
    CommandId.DELIVER_SM: _SM_BODY,
    CommandId.DELIVER_SM_RESP: _MESSAGE_ID,
    CommandId.UNBIND: _EMPTY,
    CommandId.UNBIND_RESP: _EMPTY,
    CommandId.REPLACE_SM: _REPLACE_SM,
    CommandId.REPLACE_SM_RESP: _EMPTY,
    CommandId.CANCEL_SM: _CANCEL_SM,
    CommandId.CANCEL_SM_RESP: _EMPTY,
    CommandId.OUTBIND: _OUTBIND,
    CommandId.ENQUIRE_LINK: _EMPTY,
    CommandId.ENQUIRE_LINK_RESP: _EMPTY,
    CommandId.ALERT_NOTIFICATION: _ALERT_NOTIFICATION,
    CommandId.DATA_SM: _DATA_SM,
    CommandId.DATA_SM_RESP: _MESSAGE_ID,
}


def is_response(command_id: int) -> bool:
    return bool(command_id & RESPONSE_BIT)


@dataclass(slots=True)
class Pdu:
    """One SMPP PDU. ``command_id`` and ``command_status`` may be values SMPP does not define."""

    command_id: int
    sequence_number: int
    command_status: int = 0
    body: dict[str, BodyValue] = field(default_factory=dict)
    tlvs: dict[int, bytes] = field(default_factory=dict)

    def response(self, status: int = 0, **body: BodyValue) -> Pdu:
        """The matching ``*_resp`` carrying this PDU's sequence_number."""
        if self.command_id & RESPONSE_BIT:
            raise SmppCodecError(f"command 0x{self.command_id:08x} is already a response")
        return Pdu(self.command_id | RESPONSE_BIT, self.sequence_number, status, body)


# --- encoding ----------------------------------------------------------------------------


def encode_pdu(pdu: Pdu) -> bytes:
    """The whole frame, header included. Missing body fields encode as zero or empty."""
    layout = LAYOUTS.get(pdu.command_id)
    body = pdu.body
    buf = bytearray(HEADER_LENGTH)
    if layout is None:
        if body:
            raise SmppCodecError(f"no body layout for command 0x{pdu.command_id:08x}")
    elif body or pdu.tlvs or not (pdu.command_status and pdu.command_id & RESPONSE_BIT):
        # A refused response may go without its body (SMPP 3.4 4.4.2 and others).
        _encode_body(buf, layout, body)
    for tag, value in pdu.tlvs.items():
        if not 0 <= tag <= 0xFFFF or len(value) > 0xFFFF:
            raise SmppCodecError(f"TLV 0x{tag:04x} out of range")
        buf += _TLV_HEADER.pack(tag, len(value))
        buf += value
    length = len(buf)
    if length > MAX_FRAME_LENGTH:
        raise SmppCodecError(f"PDU of {length} octets exceeds {MAX_FRAME_LENGTH}")
    try:
        _HEADER.pack_into(buf, 0, length, pdu.command_id, pdu.command_status, pdu.sequence_number)
    except struct.error as exc:
        raise SmppCodecError(f"header value out of range: {exc}") from exc
    return bytes(buf)


def _encode_body(buf: bytearray, layout: _Layout, body: dict[str, BodyValue]) -> None:
    for name, kind, size in layout:
        value = body.get(name)
        if value is None:
            buf.append(0)
        elif kind == _CSTR:
            _encode_cstring(buf, name, value, size)
        elif kind == _INT8:
            if not isinstance(value, int) or not 0 <= value <= 0xFF:
                raise SmppCodecError(f"{name} must be an int 0..255, not {value!r}")
            buf.append(value)
        else:
            if not isinstance(value, bytes) or len(value) > size:
                raise SmppCodecError(f"{name} must be bytes of at most {size} octets")
            buf.append(len(value))
            buf += value


def _encode_cstring(buf: bytearray, name: str, value: BodyValue, size: int) -> None:
    if not isinstance(value, str):
        raise SmppCodecError(f"{name} must be a str, not {type(value).__name__}")
    try:
        raw = value.encode("latin-1")
    except UnicodeEncodeError as exc:
        raise SmppCodecError(f"{name} is not an octet string") from exc
    if len(raw) >= size or b"\x00" in raw:
        raise SmppCodecError(f"{name} longer than {size - 1} octets or contains NUL")
    buf += raw
    buf.append(0)


# --- decoding ----------------------------------------------------------------------------


def decode_pdu(frame: bytes) -> Pdu:
    """One whole frame. Unknown command ids decode with an empty body and no TLVs."""
    if len(frame) < HEADER_LENGTH:
        raise SmppCodecError(
            "frame shorter than the 16-octet header", status=Status.ESME_RINVCMDLEN
        )
    length, command_id, status, sequence = _HEADER.unpack_from(frame)
    if length != len(frame):
        raise SmppCodecError(
            f"command_length {length} but frame has {len(frame)} octets",
            status=Status.ESME_RINVCMDLEN,
            command_id=command_id,
            sequence_number=sequence,
        )
    pdu = Pdu(command_id, sequence, status)
    layout = LAYOUTS.get(command_id)
    if layout is None or (length == HEADER_LENGTH and command_id & RESPONSE_BIT):
        return pdu
    try:
        pos = _decode_body(pdu.body, layout, frame, HEADER_LENGTH, bool(command_id & RESPONSE_BIT))
        if pos < length:
            _decode_tlvs(pdu.tlvs, frame, pos)
    except SmppCodecError as exc:
        exc.command_id = command_id
        exc.sequence_number = sequence
        raise
    return pdu


def _decode_body(
    body: dict[str, BodyValue], layout: _Layout, frame: bytes, pos: int, lenient: bool
) -> int:
    end = len(frame)
    last = len(layout) - 1
    for index, (name, kind, _size) in enumerate(layout):
        if kind == _CSTR:
            nul = frame.find(b"\x00", pos)
            if nul < 0:
                if not (lenient and index == last):
                    raise SmppCodecError(f"{name}: missing NUL terminator")
                nul = end  # final message_id sent without its NUL by some SMSCs
            body[name] = frame[pos:nul].decode("latin-1")
            pos = nul + 1
        elif pos >= end:
            raise SmppCodecError(f"body ends before {name}")
        elif kind == _INT8:
            body[name] = frame[pos]
            pos += 1
        else:
            sm_end = pos + 1 + frame[pos]
            if sm_end > end:
                raise SmppCodecError("sm_length runs past the end of the PDU")
            body[name] = frame[pos + 1 : sm_end]
            pos = sm_end
    return pos


def _decode_tlvs(tlvs: dict[int, bytes], frame: bytes, pos: int) -> None:
    end = len(frame)
    while pos < end:
        if end - pos < 4:
            raise SmppCodecError("truncated TLV header", status=Status.ESME_RINVOPTPARSTREAM)
        tag, size = _TLV_HEADER.unpack_from(frame, pos)
        pos += 4
        if pos + size > end:
            raise SmppCodecError(
                f"TLV 0x{tag:04x} length {size} runs past the end", status=Status.ESME_RINVPARLEN
            )
        tlvs[tag] = frame[pos : pos + size]
        pos += size


# --- TLV helpers -------------------------------------------------------------------------


def tlv_int(pdu: Pdu, tag: int) -> int | None:
    """An integer TLV (big-endian, any width), or None when absent or empty."""
    raw = pdu.tlvs.get(tag)
    if not raw:
        return None
    return int.from_bytes(raw, "big")


def tlv_cstring(pdu: Pdu, tag: int) -> str | None:
    """A C-octet-string TLV up to its first NUL (tolerating a missing NUL), or None."""
    raw = pdu.tlvs.get(tag)
    if raw is None:
        return None
    nul = raw.find(b"\x00")
    return (raw if nul < 0 else raw[:nul]).decode("latin-1")


def int_tlv(value: int, size: int) -> bytes:
    """The raw value of an integer TLV of ``size`` octets."""
    try:
        return value.to_bytes(size, "big")
    except OverflowError as exc:
        raise SmppCodecError(f"{value} does not fit {size} octets") from exc


def cstring_tlv(text: str) -> bytes:
    """The raw value of a C-octet-string TLV (NUL-terminated)."""
    try:
        return text.encode("latin-1") + b"\x00"
    except UnicodeEncodeError as exc:
        raise SmppCodecError("TLV text is not an octet string") from exc


# --- framing -----------------------------------------------------------------------------


class FrameReader:
    """Splits a TCP byte stream into whole frames (no decoding)."""

    __slots__ = ("_buffer", "_max_length")

    def __init__(self, max_length: int = MAX_FRAME_LENGTH) -> None:
        self._buffer = bytearray()
        self._max_length = max_length

    def feed(self, data: bytes) -> list[bytes]:
        buf = self._buffer
        buf += data
        frames: list[bytes] = []
        pos = 0
        available = len(buf)
        while available - pos >= 4:
            (length,) = _LENGTH.unpack_from(buf, pos)
            if length < HEADER_LENGTH or length > self._max_length:
                raise SmppCodecError(
                    f"command_length {length} outside 16..{self._max_length}",
                    status=Status.ESME_RINVCMDLEN,
                )
            if available - pos < length:
                break
            frames.append(bytes(buf[pos : pos + length]))
            pos += length
        if pos:
            del buf[:pos]
        return frames

    @property
    def buffered(self) -> int:
        """Octets received but not yet part of a whole frame."""
        return len(self._buffer)
