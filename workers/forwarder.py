"""deliver_sm from carriers → the events queue, durably, before deliver_sm_resp goes back.

Each deliver_sm waits for the publisher confirm of the AMQP message that carries it; many
deliver_sm share one AMQP message (flushed every few milliseconds), so receipts at thousands
per second cost a few publishes, not thousands.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import structlog
from prometheus_client import Counter

from broker.errors import BrokerError, DependencyUnavailable
from broker.packing import PackedPublisher
from broker.queue_messages import InboundEvent, ReceiptEvent
from broker.queues import Amqp
from broker.segmentation import decode_short_message
from broker.smpp.constants import ESM_UDHI, Tag
from broker.smpp.pdu import Pdu, encode_pdu, tlv_int
from broker.smpp.receipt import IdFormat, canonical_message_id, parse_receipt
from workers.poison import dead_letter

log = structlog.get_logger(__name__)


def deliver_event(
    connector: str, id_format: IdFormat, pdu: Pdu, *, scope: str | None = None
) -> ReceiptEvent | InboundEvent:
    """The queue event for one deliver_sm: a receipt, or an inbound message (or a part of one).

    A receipt carries the connector's ``scope`` (its carrier account), within which it is
    matched to a part.
    """
    receipt = parse_receipt(pdu)
    if receipt is not None:
        return ReceiptEvent(
            connector=connector,
            scope=scope or connector,
            carrier_id=canonical_message_id(receipt.message_id, fmt=id_format, from_receipt=True),
            state=receipt.state,
            error=receipt.error,
        )
    body = pdu.body
    data = pdu.tlvs.get(Tag.MESSAGE_PAYLOAD) or body.get("short_message", b"")
    assert isinstance(data, bytes)
    esm = int(body.get("esm_class", 0) or 0)
    decoded = decode_short_message(
        data, int(body.get("data_coding", 0) or 0), udhi=bool(esm & ESM_UDHI)
    )
    concat: tuple[int, int, int] | None = None
    if decoded.concat is not None:
        concat = (decoded.concat.reference, decoded.concat.total, decoded.concat.seq)
    elif Tag.SAR_MSG_REF_NUM in pdu.tlvs:
        sar = (
            tlv_int(pdu, Tag.SAR_MSG_REF_NUM),
            tlv_int(pdu, Tag.SAR_TOTAL_SEGMENTS),
            tlv_int(pdu, Tag.SAR_SEGMENT_SEQNUM),
        )
        # Without all three SAR values the fragment cannot be placed: kept as a whole text.
        if sar[0] is not None and sar[1] is not None and sar[2] is not None:
            concat = (sar[0], sar[1], sar[2])
    return InboundEvent(
        id=uuid.uuid4(),
        connector=connector,
        from_number=str(body.get("source_addr", "")),
        to_number=str(body.get("destination_addr", "")),
        text=decoded.text,
        concat=concat,
        received_at=datetime.now(UTC),
    )


#: What reading a deliver_sm can raise when the PDU itself is at fault (a data_coding we do not
#: know, a broken UDH, an address no event can carry): the same PDU fails the same way again.
UNREADABLE: tuple[type[Exception], ...] = (BrokerError, ValueError, LookupError, UnicodeError)

DELIVER_UNDECODABLE = Counter(
    "smsbroker_deliver_sm_undecodable_total",
    "deliver_sm that could not be read: accepted, and dead-lettered with the raw PDU",
    ["connector"],
)


class DeliverForwarder:
    def __init__(self, amqp: Amqp, *, max_batch: int = 500, max_wait: float = 0.003) -> None:
        self.amqp = amqp
        self.id_formats: dict[str, IdFormat] = {}
        self.scopes: dict[str, str] = {}
        self._packer = PackedPublisher(
            amqp, amqp.names.events, "events", max_items=max_batch, max_wait=max_wait
        )

    async def on_deliver(self, connector: str, pdu: Pdu) -> None:
        """Return once the event is durable; raise (→ a temporary error to the SMSC) if not.

        A deliver_sm that cannot be read is accepted once its raw PDU is in the dead-letter
        queue: a temporary error would have the carrier resend it forever, and a permanent one
        would lose it without a trace.
        """
        try:
            event = deliver_event(
                connector,
                self.id_formats.get(connector, "as-is"),
                pdu,
                scope=self.scopes.get(connector),
            )
        except UNREADABLE as exc:
            await self._set_aside(connector, pdu, exc)
            return
        try:
            await self._packer.publish(event)
        except DependencyUnavailable:
            log.warning("deliver_sm not made durable; the SMSC will resend", connector=connector)
            raise

    async def _set_aside(self, connector: str, pdu: Pdu, error: Exception) -> None:
        reason = getattr(error, "message", None) or f"{type(error).__name__}: {error}"
        item = {"connector": connector, "pdu": encode_pdu(pdu).hex()}
        await dead_letter(self.amqp, "deliver_sm", item, f"unreadable deliver_sm: {reason}")
        DELIVER_UNDECODABLE.labels(connector).inc()
