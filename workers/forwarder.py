"""deliver_sm from carriers → the events queue, durably, before deliver_sm_resp goes back.

Each deliver_sm waits for the publisher confirm of the AMQP message that carries it; many
deliver_sm share one AMQP message (flushed every few milliseconds), so receipts at thousands
per second cost a few publishes, not thousands.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime
from typing import Any

import structlog

from broker.errors import BrokerError, DependencyUnavailable
from broker.queues import Amqp
from broker.segmentation import decode_short_message
from broker.smpp.constants import ESM_UDHI, Tag
from broker.smpp.pdu import Pdu, tlv_int
from broker.smpp.receipt import IdFormat, canonical_message_id, parse_receipt

log = structlog.get_logger(__name__)


def deliver_event(connector: str, id_format: IdFormat, pdu: Pdu) -> dict[str, Any]:
    """The queue event for one deliver_sm: a receipt, or an inbound message (or a part of one)."""
    receipt = parse_receipt(pdu)
    if receipt is not None:
        return {
            "kind": "receipt",
            "connector": connector,
            "carrier_id": canonical_message_id(
                receipt.message_id, fmt=id_format, from_receipt=True
            ),
            "state": receipt.state,
            "error": receipt.error,
        }
    body = pdu.body
    data = pdu.tlvs.get(Tag.MESSAGE_PAYLOAD) or body.get("short_message", b"")
    assert isinstance(data, bytes)
    esm = int(body.get("esm_class", 0) or 0)
    decoded = decode_short_message(
        data, int(body.get("data_coding", 0) or 0), udhi=bool(esm & ESM_UDHI)
    )
    concat: list[int | None] | None = None
    if decoded.concat is not None:
        concat = [decoded.concat.reference, decoded.concat.total, decoded.concat.seq]
    elif Tag.SAR_MSG_REF_NUM in pdu.tlvs:
        concat = [
            tlv_int(pdu, Tag.SAR_MSG_REF_NUM),
            tlv_int(pdu, Tag.SAR_TOTAL_SEGMENTS),
            tlv_int(pdu, Tag.SAR_SEGMENT_SEQNUM),
        ]
    return {
        "kind": "mo",
        "id": str(uuid.uuid4()),
        "connector": connector,
        "from": str(body.get("source_addr", "")),
        "to": str(body.get("destination_addr", "")),
        "text": decoded.text,
        "concat": concat,
        "received_at": datetime.now(UTC).isoformat(),
    }


class DeliverForwarder:
    def __init__(self, amqp: Amqp, *, max_batch: int = 500, max_wait: float = 0.003) -> None:
        self.amqp = amqp
        self.id_formats: dict[str, IdFormat] = {}
        self._pending: list[tuple[dict[str, Any], asyncio.Future[None]]] = []
        self._max_batch = max_batch
        self._max_wait = max_wait
        self._timer: asyncio.TimerHandle | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def on_deliver(self, connector: str, pdu: Pdu) -> None:
        """Return once the event is durable; raise (→ a temporary error to the SMSC) if not."""
        event = deliver_event(connector, self.id_formats.get(connector, "as-is"), pdu)
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.append((event, future))
        if len(self._pending) >= self._max_batch:
            self._flush()
        elif self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(self._max_wait, self._flush)
        await future

    def _flush(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        batch, self._pending = self._pending, []
        if batch:
            task = asyncio.create_task(self._publish(batch))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _publish(self, batch: list[tuple[dict[str, Any], asyncio.Future[None]]]) -> None:
        error: BrokerError | None = None
        try:
            await self.amqp.publish(self.amqp.names.events, {"events": [e for e, _ in batch]})
        except DependencyUnavailable as exc:
            log.warning("deliver_sm not made durable; the SMSC will resend", error=exc.message)
            error = exc
        for _, future in batch:
            if future.done():
                continue
            if error is None:
                future.set_result(None)
            else:
                future.set_exception(error)
