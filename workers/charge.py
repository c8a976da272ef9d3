"""The charge worker: accepted requests become message rows, charged exactly once.

Input: the ingest queue, where API requests (broker.queue_messages.IngestRequest) arrive packed
by the API processes that accepted them. Each message is routed and its parts counted here, once,
with the chosen connector's long-message mode: what is charged is what the submit worker sends.
Per batch, in one transaction: insert the messages (a redelivered request inserts nothing: the
ids exist), take each account's cost in one conditional UPDATE that never lets a balance go
negative, write the ledger rows, and fail what no route or no credit can carry. Then hand the
charged messages on, packed per connector, to the submit queues. The statements are in
broker.store.messages and broker.store.ledger (which alone moves balances).

Nothing accepted is lost: a message whose text PostgreSQL cannot store is stored sanitized as a
visible, uncharged ``failed`` message (INVALID_MESSAGE) with its webhook; only what cannot be
stored even so (e.g. its account is gone) is dead-lettered.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from uuid import UUID

import asyncpg
import structlog
from aio_pika.abc import AbstractIncomingMessage

from broker.db import transaction
from broker.errors import InputError
from broker.long_mode import LongMode, PartCounter
from broker.notify import publish_events, status_events
from broker.queue_messages import (
    IngestBatch,
    IngestRequest,
    NotDecodable,
    unpack,
)
from broker.queues import Amqp
from broker.routing import RouteTable
from broker.status import MessageStatus
from broker.store import ledger
from broker.store import messages as store
from workers.consumer import BATCH_BYTES, Consumer
from workers.poison import (
    POISON,
    dead_letter,
    dead_letter_body,
    dead_letter_rejected,
    process_isolating,
)
from workers.sanitize import INVALID_MESSAGE, LIMITS, sanitized, unstorable
from workers.submit_jobs import hand_on

log = structlog.get_logger(__name__)

OPTED_OUT = "OPTED_OUT"
#: Why a recipient's message fails at once, by the code it arrives with (IngestRequest).
REFUSALS = {
    OPTED_OUT: "the recipient opted out of this account's messages",
    "MISSING_VARIABLE": "the template has a variable this recipient has no value for",
    "BODY_TOO_LONG": "the text made for this recipient is longer than a message may be",
}


@dataclass(slots=True)
class NewMessage:
    id: UUID
    account_id: UUID
    batch_id: UUID | None
    to: str
    sender: str | None
    body: str
    client_ref: str | None
    callback_url: str | None
    accepted_at: datetime
    scheduled_at: datetime | None = None
    expires_at: datetime | None = None
    #: What the carrier gets instead of ``body`` (an OTP's text); never stored.
    plain_body: str | None = field(default=None, repr=False)
    encoding: str = "GSM7"
    segments: int = 1
    connector: str | None = None
    price: Decimal = Decimal(0)
    #: Why the message fails at once (no route, a text that cannot be stored or sent).
    error: tuple[str, str] | None = None
    #: 'sms', or 'whatsapp': routed by that channel's routes, one part whatever its length.
    channel: str = "sms"

    @property
    def cost(self) -> Decimal:
        return self.price * self.segments if self.connector else Decimal(0)

    @property
    def status(self) -> MessageStatus:
        """What it is stored as: queued (or scheduled) when routed, else failed at once."""
        if not self.connector:
            return MessageStatus.FAILED
        return MessageStatus.SCHEDULED if self.scheduled_at else MessageStatus.QUEUED

    def fail(self, code: str, text: str) -> None:
        """Fail at once, uncharged; the text fields become storable."""
        self.error, self.connector, self.price = (code, text), None, Decimal(0)
        if code == INVALID_MESSAGE:
            self.body = sanitized(self.body, limit=None, nonempty=True) or "\ufffd"
            self.sender = sanitized(self.sender, limit=None)
            self.client_ref = sanitized(self.client_ref, limit=LIMITS["client_ref"])
            self.callback_url = sanitized(self.callback_url, limit=LIMITS["callback_url"])


def expand(request: IngestRequest) -> list[NewMessage]:
    """One API request's messages, one per recipient; an opted-out one fails at once."""
    messages = [
        NewMessage(
            id=mid,
            account_id=request.account_id,
            batch_id=request.batch_id,
            to=to,
            sender=request.sender,
            body=request.bodies.get(mid, request.body),
            client_ref=request.client_ref,
            callback_url=request.callback_url,
            accepted_at=request.accepted_at,
            scheduled_at=request.scheduled_at,
            expires_at=request.expires_at,
            plain_body=request.plain_body,
            channel=request.channel,
        )
        for mid, to in request.recipients
    ]
    refused = dict.fromkeys(request.opted_out, OPTED_OUT) | request.refused
    for m in messages:
        code = refused.get(m.id)
        if code is not None:
            m.fail(code, REFUSALS.get(code, "the message could not be made for this recipient"))
    return messages


class ChargeWorker:
    def __init__(
        self, pool: asyncpg.Pool, amqp: Amqp, *, batch_size: int = 200, slice_size: int = 2000
    ) -> None:
        self.pool = pool
        self.slice = slice_size
        self.amqp = amqp
        self.routes = RouteTable()
        self.consumer = Consumer(
            amqp,
            amqp.names.ingest,
            self.handle,
            name="charge",
            prefetch=1000,
            batch=batch_size,
            batch_bytes=BATCH_BYTES,
        )

    async def start(self) -> None:
        await self.consumer.start()

    async def stop(self) -> None:
        await self.consumer.stop()

    async def handle(self, deliveries: list[AbstractIncomingMessage], attempt: int = 1) -> None:
        messages = await self.read(deliveries)
        # A group send's pages hold many messages each: one transaction per slice, not per
        # hundred thousand.
        for start in range(0, len(messages), self.slice):
            chunk = messages[start : start + self.slice]
            await process_isolating(chunk, self.process, self._unstorable)

    async def read(self, deliveries: list[AbstractIncomingMessage]) -> list[NewMessage]:
        """Every message of every request in the batch, each once, in arrival order.

        The same request can arrive twice in one batch (a redelivery next to its original);
        its second copy must not be charged as new. What cannot be decoded is dead-lettered.
        """
        messages: dict[UUID, NewMessage] = {}
        for delivery in deliveries:
            try:
                found = unpack(IngestBatch, "requests", IngestRequest, delivery.body, bare=True)
            except NotDecodable as exc:
                await dead_letter_body(
                    self.amqp, "ingest", delivery.body, exc.reason, version=exc.version
                )
                continue
            await dead_letter_rejected(self.amqp, "ingest", found.rejected)
            for request in found.items:
                for m in expand(request):
                    messages.setdefault(m.id, m)
        return list(messages.values())

    async def _unstorable(self, message: NewMessage, error: BaseException) -> None:
        """PostgreSQL refused the message on its own: store it as a failed message instead."""
        log.warning(
            "message cannot be stored as sent; failing it",
            message_id=str(message.id),
            account_id=str(message.account_id),
            error=repr(error),
        )
        message.fail(INVALID_MESSAGE, "the message holds text that cannot be stored")
        try:
            await self.process([message])
        except POISON as exc:
            await dead_letter(self.amqp, "ingest", message, exc, message_ids=[str(message.id)])

    def _route(self, messages: list[NewMessage]) -> None:
        """Choose each message's connector, and count its parts with that connector's mode."""
        count = PartCounter()
        for m in messages:
            problem = unstorable(m.body, m.sender, m.client_ref, m.callback_url)
            if m.error is None and problem is not None:
                m.fail(INVALID_MESSAGE, problem)
            route = self.routes.match(m.to, m.channel) if m.error is None else None
            try:
                seg = count(m.body, route.mode if route is not None else LongMode())
            except (InputError, UnicodeError) as exc:
                m.fail(INVALID_MESSAGE, getattr(exc, "message", None) or "the text cannot be sent")
                m.segments = 1
                continue
            m.encoding, m.segments = seg.encoding.value, seg.segments
            if m.channel != "sms":
                m.segments = 1  # a WhatsApp message is billed per message, not per part
            if route is not None:
                m.connector, m.price = route.connector, route.price
            elif m.error is None:
                m.error = ("NO_ROUTE", "no route matches this number")

    async def process(self, batch: Sequence[NewMessage]) -> None:
        messages = list(batch)
        await self.routes.refresh(self.pool)
        self._route(messages)
        inserted, failed_rows = await self._record(messages)
        fresh = {m.id for m in messages if m.id in inserted and m.connector}
        unfunded = {r["id"] for r in failed_rows}
        to_submit: dict[str, list[UUID]] = defaultdict(list)
        for m in messages:
            if m.id in fresh and m.id not in unfunded and m.status is MessageStatus.QUEUED:
                to_submit[m.connector or ""].append(m.id)
        redelivered = [m.id for m in messages if m.id not in inserted]
        if redelivered:
            for mid, connector in await store.still_queued(self.pool, redelivered):
                to_submit[connector].append(mid)
        plain = {m.id: m.plain_body for m in messages if m.plain_body is not None}
        await hand_on(self.amqp, to_submit, plain)
        no_route = [m.id for m in messages if m.id in inserted and not m.connector]
        if no_route:
            failed_rows = [*failed_rows, *await store.status_rows(self.pool, no_route)]
        await publish_events(self.amqp, status_events(failed_rows))

    async def _record(self, messages: list[NewMessage]) -> tuple[set[UUID], list[asyncpg.Record]]:
        batches: dict[UUID, tuple[UUID, int]] = {}
        for m in messages:
            if m.batch_id is not None:
                account, n = batches.get(m.batch_id, (m.account_id, 0))
                batches[m.batch_id] = (account, n + 1)
        async with self.pool.acquire() as conn, transaction(conn):
            await store.insert_batches(conn, batches)
            inserted = await store.insert_new(conn, messages)
            fresh = [m for m in messages if m.id in inserted]
            unfunded = await ledger.charge(conn, [m for m in fresh if m.connector])
            failed_rows = await store.fail_unfunded(conn, unfunded)
            failed_ids = {r["id"] for r in failed_rows}
            await store.add_history(
                conn,
                [m.id for m in fresh] + list(failed_ids),
                [m.status for m in fresh] + [MessageStatus.FAILED] * len(failed_ids),
                [m.error[0] if m.error else None for m in fresh]
                + ["INSUFFICIENT_CREDITS"] * len(failed_ids),
            )
        return inserted, failed_rows
