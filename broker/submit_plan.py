"""How one message becomes submit_sm PDUs on a given connector. Pure: no I/O.

The connector decides how a long message travels: a UDH with an 8-bit or 16-bit reference,
SAR TLVs, or the whole text in one message_payload. The concatenation reference is derived
from the message id, so a message resubmitted after a crash keeps the reference its first
parts went out with and the handset can still join them.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from uuid import UUID

from broker.long_mode import LongMode, segment
from broker.segmentation import DATA_CODING, Encoding, encode_parts, encode_text
from broker.smpp.connector import SubmitPart
from broker.smpp.constants import ESM_UDHI, Tag
from broker.smpp.pdu import int_tlv

TON_UNKNOWN, TON_INTERNATIONAL, TON_NETWORK_SPECIFIC, TON_ALPHANUMERIC = 0, 1, 3, 5
NPI_UNKNOWN, NPI_ISDN = 0, 1
_DIGITS = re.compile(r"^\+?[0-9]+$")


def source_address(sender: str | None) -> tuple[str, int, int]:
    """(source_addr, ton, npi): international numbers, short codes and alphanumeric ids."""
    if not sender:
        return "", TON_UNKNOWN, NPI_UNKNOWN
    if _DIGITS.match(sender):
        digits = sender.lstrip("+")
        if sender.startswith("+") or len(digits) > 8:
            return digits, TON_INTERNATIONAL, NPI_ISDN
        return digits, TON_NETWORK_SPECIFIC, NPI_UNKNOWN
    return sender, TON_ALPHANUMERIC, NPI_UNKNOWN


def smpp_absolute_time(at: datetime) -> str:
    """SMPP 3.4 absolute time (5.2.19), "YYMMDDhhmmsstnnp", in UTC: tenths 0, offset 00, '+'."""
    if at.tzinfo is None:
        raise ValueError("an SMPP time needs an aware datetime")
    return at.astimezone(UTC).strftime("%y%m%d%H%M%S") + "000+"


def plan_parts(
    message_id: UUID,
    to: str,
    sender: str | None,
    body: str,
    mode: LongMode,
    *,
    validity_period: str = "",
) -> list[SubmitPart]:
    """The PDUs for one message, in sequence order (seq = index + 1). ``validity_period``:
    the submit_sm field as is (smpp_absolute_time; empty: the carrier's default)."""
    src, ton, npi = source_address(sender)
    dest = to.lstrip("+")

    def part(
        short_message: bytes, dcs: int, esm: int = 0, tlvs: dict[int, bytes] | None = None
    ) -> SubmitPart:
        return SubmitPart(
            source_addr=src,
            destination_addr=dest,
            short_message=short_message,
            data_coding=dcs,
            esm_class=esm,
            registered_delivery=1,
            source_addr_ton=ton,
            source_addr_npi=npi,
            dest_addr_ton=TON_INTERNATIONAL,
            dest_addr_npi=NPI_ISDN,
            validity_period=validity_period,
            tlvs=tlvs or {},
        )

    udh16 = mode.udh16
    seg = segment(body, mode, max_chars=len(body) or 1)
    dcs = DATA_CODING[seg.encoding]
    packed = mode.packed and seg.encoding is Encoding.GSM7
    if mode.mode == "payload" and seg.segments > 1:
        payload = encode_text(body, seg.encoding, packed=packed)
        return [part(b"", dcs, tlvs={Tag.MESSAGE_PAYLOAD: payload})]
    if seg.segments == 1:
        return [part(encode_text(body, seg.encoding, packed=packed), dcs)]
    reference = message_id.int % (65536 if udh16 or mode.mode == "sar" else 256)
    if mode.mode == "sar":
        total = seg.segments
        return [
            part(
                encode_text(text, seg.encoding, packed=packed),
                dcs,
                tlvs={
                    Tag.SAR_MSG_REF_NUM: int_tlv(reference, 2),
                    Tag.SAR_TOTAL_SEGMENTS: int_tlv(total, 1),
                    Tag.SAR_SEGMENT_SEQNUM: int_tlv(seq, 1),
                },
            )
            for seq, text in enumerate(seg.parts, start=1)
        ]
    wire = encode_parts(seg, reference=reference, udh16=udh16, packed=packed)
    return [part(data, dcs, ESM_UDHI) for data in wire]
