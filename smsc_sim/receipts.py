"""Delivery receipts as carriers send them: deliver_sm with esm_class 0x04, the de-facto text
form (SMPP 3.4 appendix B) and, unless turned off, the receipted_message_id / message_state TLVs.
"""

from __future__ import annotations

import time

from broker.errors import BrokerError
from broker.segmentation import decode_short_message
from broker.smpp.constants import ESM_DELIVERY_RECEIPT, ESM_UDHI, CommandId, Tag
from broker.smpp.pdu import Pdu, cstring_tlv, int_tlv
from smsc_sim.outcomes import Outcome
from smsc_sim.records import SubmitRecord

EXCERPT_LENGTH = 20


def receipt_date(timestamp: float, *, seconds: bool) -> str:
    """YYMMDDhhmm (or YYMMDDhhmmss) in UTC."""
    return time.strftime("%y%m%d%H%M%S" if seconds else "%y%m%d%H%M", time.gmtime(timestamp))


def receipt_text(
    receipt_id: str,
    outcome: Outcome,
    *,
    submitted_at: float,
    done_at: float,
    excerpt: str,
    seconds: bool = False,
) -> str:
    dlvrd = "001" if outcome.delivered else "000"
    return (
        f"id:{receipt_id} sub:001 dlvrd:{dlvrd}"
        f" submit date:{receipt_date(submitted_at, seconds=seconds)}"
        f" done date:{receipt_date(done_at, seconds=seconds)}"
        f" stat:{outcome.stat} err:{outcome.err} text:{excerpt}"
    )


def message_excerpt(record: SubmitRecord) -> str:
    """The first 20 characters of what was submitted, as printable ASCII ('?' for the rest).

    The body comes from short_message, or from message_payload when short_message is empty.
    """
    data = record.short_message or record.tlvs.get(Tag.MESSAGE_PAYLOAD, b"")
    if not data:
        return ""
    try:
        text = decode_short_message(
            data, record.data_coding, udhi=bool(record.esm_class & ESM_UDHI)
        ).text
    except (BrokerError, ValueError):
        text = data.decode("latin-1")
    excerpt = text[:EXCERPT_LENGTH]
    return "".join(ch if " " <= ch <= "~" else "?" for ch in excerpt)


def build_receipt(
    record: SubmitRecord,
    outcome: Outcome,
    receipt_id: str,
    *,
    done_at: float,
    with_tlvs: bool = True,
    seconds: bool = False,
) -> Pdu:
    """The receipt PDU for ``record`` (sequence_number 0: the session assigns its own)."""
    text = receipt_text(
        receipt_id,
        outcome,
        submitted_at=record.submitted_at,
        done_at=done_at,
        excerpt=message_excerpt(record),
        seconds=seconds,
    )
    body: dict[str, int | str | bytes] = {
        "source_addr_ton": record.dest_addr_ton,
        "source_addr_npi": record.dest_addr_npi,
        "source_addr": record.destination_addr,
        "dest_addr_ton": record.source_addr_ton,
        "dest_addr_npi": record.source_addr_npi,
        "destination_addr": record.source_addr,
        "esm_class": ESM_DELIVERY_RECEIPT,
        "data_coding": 0,
        "short_message": text.encode("ascii"),
    }
    tlvs: dict[int, bytes] = {}
    if with_tlvs:
        tlvs[Tag.RECEIPTED_MESSAGE_ID] = cstring_tlv(receipt_id)
        tlvs[Tag.MESSAGE_STATE] = int_tlv(outcome.message_state, 1)
    return Pdu(CommandId.DELIVER_SM, 0, 0, body, tlvs)
