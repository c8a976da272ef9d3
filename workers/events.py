"""The events worker: receipts and inbound messages from carriers, into PostgreSQL and webhooks.

Input: the events queue (broker.queue_messages.CarrierEvents), filled by the submit worker's
binds before they answer deliver_sm.
Per batch, one transaction applies every receipt and stores every inbound message (acting on
opt-out keywords: broker.opt_outs); then the replies to HELP go to the ingest queue, the
resulting webhook events are published and the batch acked. A periodic sweep matches receipts
that arrived before their part was recorded.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import timedelta

import asyncpg
import structlog
from aio_pika.abc import AbstractIncomingMessage

from broker.db import transaction
from broker.inbound import Inbound, store_inbound
from broker.notify import publish_events, status_events
from broker.queue_messages import (
    InboundEvent,
    IngestBatch,
    IngestRequest,
    NotDecodable,
    ReceiptEvent,
    WebhookEvent,
    unpack_carrier_events,
)
from broker.queues import Amqp
from broker.receipts import ReceiptUpdate, apply_receipts, match_pending, settle_unreceipted
from workers.consumer import BATCH_BYTES, TRANSIENT, Consumer
from workers.poison import dead_letter, dead_letter_body, dead_letter_rejected, process_isolating

log = structlog.get_logger(__name__)


def to_items(events: list[ReceiptEvent | InboundEvent]) -> list[ReceiptUpdate | Inbound]:
    return [
        ReceiptUpdate.from_event(e) if isinstance(e, ReceiptEvent) else Inbound.from_event(e)
        for e in events
    ]


class EventsWorker:
    def __init__(
        self,
        pool: asyncpg.Pool,
        amqp: Amqp,
        *,
        sweep_every: float = 1.0,
        receipt_wait: timedelta = timedelta(hours=72),
    ) -> None:
        self.pool = pool
        self.amqp = amqp
        self.receipt_wait = receipt_wait
        self._sweeps = 0
        self.consumer = Consumer(
            amqp,
            amqp.names.events,
            self.handle,
            name="events",
            prefetch=400,
            batch=200,
            batch_bytes=BATCH_BYTES,
        )
        self._sweep_every = sweep_every
        self._sweeper: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self.consumer.start()
        self._sweeper = asyncio.create_task(self._sweep_loop())

    async def stop(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
        await self.consumer.stop()

    async def handle(self, deliveries: list[AbstractIncomingMessage], attempt: int = 1) -> None:
        items: list[ReceiptUpdate | Inbound] = []
        for delivery in deliveries:
            try:
                found = unpack_carrier_events(delivery.body)
            except NotDecodable as exc:
                await dead_letter_body(
                    self.amqp, "events", delivery.body, exc.reason, version=exc.version
                )
                continue
            await dead_letter_rejected(self.amqp, "events", found.rejected)
            items.extend(to_items(found.items))
        if items:
            await process_isolating(items, self.process, self._dead_letter)

    async def _dead_letter(self, item: ReceiptUpdate | Inbound, error: BaseException) -> None:
        await dead_letter(self.amqp, "events", item, error)

    async def process(self, items: Sequence[ReceiptUpdate | Inbound]) -> None:
        receipts = [i for i in items if isinstance(i, ReceiptUpdate)]
        inbound = [i for i in items if isinstance(i, Inbound)]
        webhook_events: list[WebhookEvent] = []
        replies: list[IngestRequest] = []
        async with self.pool.acquire() as conn, transaction(conn):
            settled = await apply_receipts(conn, receipts)
            for mo in inbound:
                stored = await store_inbound(conn, mo)
                if stored.event is not None:
                    webhook_events.append(stored.event)
                if stored.reply is not None:
                    replies.append(stored.reply)
        if replies:
            # After the commit; a redelivery publishes them again with the same message ids,
            # which the charge worker stores (and sends) once.
            await self.amqp.publish(self.amqp.names.ingest, IngestBatch(requests=replies))
        webhook_events.extend(status_events(settled))
        await publish_events(self.amqp, webhook_events)

    async def sweep(self) -> int:
        """Match parked receipts; once a minute, also settle messages no receipt will reach."""
        async with self.pool.acquire() as conn, transaction(conn):
            settled = await match_pending(conn)
            if self._sweeps % 60 == 0:
                settled += await settle_unreceipted(conn, self.receipt_wait)
        self._sweeps += 1
        await publish_events(self.amqp, status_events(settled))
        return len(settled)

    async def _sweep_loop(self) -> None:
        while True:
            await asyncio.sleep(self._sweep_every)
            try:
                await self.sweep()
            except TRANSIENT as exc:
                log.warning("pending receipt sweep failed", error=str(exc))
