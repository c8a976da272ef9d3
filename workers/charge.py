"""The charge worker: accepted requests become message rows, charged exactly once.

Input: the ingest queue, where API requests (broker.queue_messages.IngestRequest) arrive packed
by the API processes that accepted them. Each message is routed and its parts counted here, once,
with the chosen connector's long-message mode: what is charged is what the submit worker sends.
Per batch, in one transaction: insert the messages (a redelivered request inserts nothing: the
ids exist), take each account's cost in one conditional UPDATE that never lets a balance go
negative, write the ledger rows, and fail what no route or no credit can carry. Then hand the
charged messages on, packed per connector, to the submit queues.

Nothing accepted is lost: a message whose text PostgreSQL cannot store is stored sanitized as a
visible, uncharged ``failed`` message (INVALID_MESSAGE) with its webhook; only what cannot be
stored even so (e.g. its account is gone) is dead-lettered.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

import asyncpg
import structlog
from aio_pika.abc import AbstractIncomingMessage

from broker.errors import InputError
from broker.long_mode import LongMode, segment
from broker.notify import STATUS_RETURNING, publish_events, status_events
from broker.queue_messages import (
    IngestBatch,
    IngestRequest,
    NotDecodable,
    SubmitJob,
    unpack,
)
from broker.queues import SUBMIT_CHUNK, Amqp
from broker.routing import RouteTable
from broker.segmentation import Segmentation
from workers.consumer import Consumer
from workers.poison import (
    POISON,
    dead_letter,
    dead_letter_body,
    dead_letter_rejected,
    process_isolating,
)
from workers.sanitize import INVALID_MESSAGE, sanitized, unstorable

log = structlog.get_logger(__name__)


_INSERT_BATCHES = """
INSERT INTO batches (id, account_id, total)
SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::int[]) ON CONFLICT (id) DO NOTHING
"""

_INSERT_MESSAGES = """
INSERT INTO messages (id, account_id, batch_id, to_number, sender, body, encoding, segments,
                      status, connector, price, cost, client_ref, callback_url, error_code,
                      error_text, created_at, updated_at, done_at)
SELECT u.*, u.created_at, CASE WHEN u.status = 'failed' THEN now() END
  FROM unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::text[], $5::text[], $6::text[], $7::text[],
              $8::int[], $9::text[], $10::text[], $11::numeric[], $12::numeric[], $13::text[],
              $14::text[], $15::text[], $16::text[], $17::timestamptz[])
       AS u(id, account_id, batch_id, to_number, sender, body, encoding, segments, status,
            connector, price, cost, client_ref, callback_url, error_code, error_text, created_at)
ON CONFLICT (id) DO NOTHING
RETURNING id
"""

_CHARGE_ACCOUNTS = """
UPDATE accounts a SET balance = a.balance - t.total
  FROM unnest($1::uuid[], $2::numeric[]) AS t(id, total)
 WHERE a.id = t.id AND a.balance >= t.total
RETURNING a.id
"""

_CHARGE_ONE = """
UPDATE accounts SET balance = balance - $2 WHERE id = $1 AND balance >= $2 RETURNING id
"""

_LEDGER_CHARGES = """
INSERT INTO ledger (account_id, amount, reason, message_id)
SELECT a, -c, 'charge', m FROM unnest($1::uuid[], $2::numeric[], $3::uuid[]) AS t(a, c, m)
 WHERE c > 0
"""

_FAIL_UNFUNDED = f"""
UPDATE messages SET status = 'failed', cost = 0, error_code = 'INSUFFICIENT_CREDITS',
       error_text = 'the balance could not cover this message', updated_at = now(),
       done_at = now()
 WHERE id = ANY($1::uuid[]) AND status = 'queued'
RETURNING {STATUS_RETURNING}
"""

_HISTORY = """
INSERT INTO message_events (message_id, status, detail)
SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[])
"""

_STILL_QUEUED = """
SELECT id, connector FROM messages WHERE id = ANY($1::uuid[]) AND status = 'queued'
"""

_FAILED_ROWS = f"SELECT {STATUS_RETURNING} FROM messages WHERE id = ANY($1::uuid[])"


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
    encoding: str = "GSM7"
    segments: int = 1
    connector: str | None = None
    price: Decimal = Decimal(0)
    #: Why the message fails at once (no route, a text that cannot be stored or sent).
    error: tuple[str, str] | None = None

    @property
    def cost(self) -> Decimal:
        return self.price * self.segments if self.connector else Decimal(0)

    def fail(self, code: str, text: str) -> None:
        """Fail at once, uncharged; the text fields become storable."""
        self.error, self.connector, self.price = (code, text), None, Decimal(0)
        if code == INVALID_MESSAGE:
            self.body = sanitized(self.body, limit=None, nonempty=True) or "\ufffd"
            self.sender = sanitized(self.sender, limit=None)
            self.client_ref = sanitized(self.client_ref, limit=200)
            self.callback_url = sanitized(self.callback_url, limit=2000)


def expand(request: IngestRequest) -> list[NewMessage]:
    """One API request's messages, one per recipient."""
    return [
        NewMessage(
            id=mid,
            account_id=request.account_id,
            batch_id=request.batch_id,
            to=to,
            sender=request.sender,
            body=request.body,
            client_ref=request.client_ref,
            callback_url=request.callback_url,
            accepted_at=request.accepted_at,
        )
        for mid, to in request.recipients
    ]


class _Counter:
    """segment() per distinct (text, mode): a request's recipients share one text object."""

    def __init__(self) -> None:
        self._seen: dict[tuple[str, LongMode], Segmentation] = {}

    def __call__(self, body: str, mode: LongMode) -> Segmentation:
        key = (body, mode)
        found = self._seen.get(key)
        if found is None:
            found = self._seen[key] = segment(body, mode, max_chars=max(1, len(body)))
        return found


class ChargeWorker:
    def __init__(self, pool: asyncpg.Pool, amqp: Amqp, *, batch_size: int = 200) -> None:
        self.pool = pool
        self.amqp = amqp
        self.routes = RouteTable()
        self.consumer = Consumer(
            amqp, amqp.names.ingest, self.handle, name="charge", prefetch=1000, batch=batch_size
        )

    async def start(self) -> None:
        await self.consumer.start()

    async def stop(self) -> None:
        await self.consumer.stop()

    async def handle(self, deliveries: list[AbstractIncomingMessage], attempt: int = 1) -> None:
        messages = await self.read(deliveries)
        if messages:
            await process_isolating(messages, self.process, self._unstorable)

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
        count = _Counter()
        for m in messages:
            problem = unstorable(m.body, m.sender, m.client_ref, m.callback_url)
            if m.error is None and problem is not None:
                m.fail(INVALID_MESSAGE, problem)
            route = self.routes.match(m.to) if m.error is None else None
            try:
                seg = count(m.body, route.mode if route is not None else LongMode())
            except (InputError, UnicodeError) as exc:
                m.fail(INVALID_MESSAGE, getattr(exc, "message", None) or "the text cannot be sent")
                m.segments = 1
                continue
            m.encoding, m.segments = seg.encoding.value, seg.segments
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
            if m.id in fresh and m.id not in unfunded and m.connector:
                to_submit[m.connector].append(m.id)
        redelivered = [m.id for m in messages if m.id not in inserted]
        if redelivered:
            async with self.pool.acquire() as conn:
                for row in await conn.fetch(_STILL_QUEUED, redelivered):
                    to_submit[row["connector"]].append(row["id"])
        await self._hand_on(to_submit)
        no_route = [m.id for m in messages if m.id in inserted and not m.connector]
        if no_route:
            failed_rows = [*failed_rows, *await self.pool.fetch(_FAILED_ROWS, no_route)]
        await publish_events(self.amqp, status_events(failed_rows))

    async def _record(self, messages: list[NewMessage]) -> tuple[set[UUID], list[asyncpg.Record]]:
        batches: dict[UUID, tuple[UUID, int]] = {}
        for m in messages:
            if m.batch_id is not None:
                account, n = batches.get(m.batch_id, (m.account_id, 0))
                batches[m.batch_id] = (account, n + 1)
        async with self.pool.acquire() as conn, conn.transaction():
            if batches:
                await conn.execute(
                    _INSERT_BATCHES,
                    list(batches),
                    [a for a, _ in batches.values()],
                    [n for _, n in batches.values()],
                )
            rows = await conn.fetch(_INSERT_MESSAGES, *_columns(messages))
            inserted = {r["id"] for r in rows}
            fresh = [m for m in messages if m.id in inserted]
            unfunded = await _charge(conn, [m for m in fresh if m.connector])
            failed_rows = await conn.fetch(_FAIL_UNFUNDED, unfunded) if unfunded else []
            failed_ids = {r["id"] for r in failed_rows}
            await conn.execute(
                _HISTORY,
                [m.id for m in fresh] + list(failed_ids),
                ["queued" if m.connector else "failed" for m in fresh]
                + ["failed"] * len(failed_ids),
                [m.error[0] if m.error else None for m in fresh]
                + ["INSUFFICIENT_CREDITS"] * len(failed_ids),
            )
        return inserted, list(failed_rows)

    async def _hand_on(self, to_submit: dict[str, list[UUID]]) -> None:
        publishes = []
        for connector, ids in to_submit.items():
            queue = self.amqp.names.submit(connector)
            await self.amqp.declare(queue)
            for start in range(0, len(ids), SUBMIT_CHUNK):
                job = SubmitJob(ids=ids[start : start + SUBMIT_CHUNK])
                publishes.append(self.amqp.publish(queue, job))
        await asyncio.gather(*publishes)


def _columns(messages: list[NewMessage]) -> list[list[Any]]:
    return [
        [m.id for m in messages],
        [m.account_id for m in messages],
        [m.batch_id for m in messages],
        [m.to for m in messages],
        [m.sender for m in messages],
        [m.body for m in messages],
        [m.encoding for m in messages],
        [m.segments for m in messages],
        ["queued" if m.connector else "failed" for m in messages],
        [m.connector for m in messages],
        [m.price for m in messages],
        [m.cost for m in messages],
        [m.client_ref for m in messages],
        [m.callback_url for m in messages],
        [m.error[0] if m.error else None for m in messages],
        [m.error[1] if m.error else None for m in messages],
        [m.accepted_at for m in messages],
    ]


async def _charge(conn: asyncpg.Connection, messages: list[NewMessage]) -> list[UUID]:
    """Take every message's cost; return the ids the balance could not cover.

    Each account is charged its batch total in one statement; only an account whose balance
    cannot cover the whole batch is charged message by message, in arrival order.
    """
    totals: dict[UUID, Decimal] = defaultdict(Decimal)
    for m in messages:
        totals[m.account_id] += m.cost
    covered = {
        r["id"] for r in await conn.fetch(_CHARGE_ACCOUNTS, list(totals), list(totals.values()))
    }
    charged: list[NewMessage] = [m for m in messages if m.account_id in covered]
    unfunded: list[UUID] = []
    for m in messages:
        if m.account_id in covered:
            continue
        if m.cost == 0 or await conn.fetchval(_CHARGE_ONE, m.account_id, m.cost):
            charged.append(m)
        else:
            unfunded.append(m.id)
    await conn.execute(
        _LEDGER_CHARGES,
        [m.account_id for m in charged],
        [m.cost for m in charged],
        [m.id for m in charged],
    )
    return unfunded
