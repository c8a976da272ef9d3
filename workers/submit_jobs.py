"""Handing messages to their connectors' submit queues, as SubmitJobs of at most SUBMIT_CHUNK
ids, all published at once and confirmed: the charge worker does it for what it has just
charged, the scheduler for what has come due. And what both senders of those queues (the SMPP
submit worker, the WhatsApp sender) do alike with a job: claim its messages, record what
happened to them, put back what could not go yet."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import asyncpg
from aio_pika.abc import AbstractIncomingMessage

from broker.db import transaction
from broker.queue_messages import NotDecodable, SubmitJob, decode
from broker.queues import SUBMIT_CHUNK, Amqp
from broker.store import ledger
from broker.store import messages as store
from workers.poison import dead_letter_body

#: Pause before messages a connector could not take yet go back to its queue.
RETRY_PAUSE = 2.0

#: How a sender handles one delivery of a connector's queue.
JobHandler = Callable[[str, AbstractIncomingMessage, int], Awaitable[None]]


@dataclass
class Outcomes:
    """What happened to the parts of one SubmitJob's messages."""

    parts: list[store.Part] = field(default_factory=list)
    sent: list[UUID] = field(default_factory=list)
    failed: dict[UUID, tuple[str, str]] = field(default_factory=dict)
    retry: list[UUID] = field(default_factory=list)
    #: Refused by the connector itself (not for the message): for another connector.
    handover: list[UUID] = field(default_factory=list)


async def hand_on(
    amqp: Amqp,
    by_connector: Mapping[str, Sequence[UUID]],
    plain_bodies: Mapping[UUID, str] | None = None,
) -> None:
    """Publish the jobs; ``plain_bodies`` (an OTP's text, never stored) ride with their ids."""
    plain = plain_bodies or {}
    publishes = []
    for connector, ids in by_connector.items():
        queue = amqp.names.submit(connector)
        await amqp.declare(queue)
        for start in range(0, len(ids), SUBMIT_CHUNK):
            chunk = list(ids[start : start + SUBMIT_CHUNK])
            texts = {i: plain[i] for i in chunk if i in plain}
            publishes.append(amqp.publish(queue, SubmitJob(ids=chunk, plain_bodies=texts)))
    await asyncio.gather(*publishes)


def expired(
    row: Mapping[str, Any], validity: float, taker: str, now: datetime | None = None
) -> tuple[str, str] | None:
    """Why a claimed message must not go out any more (EXPIRED), or None: its own validity
    period ended, or ``taker`` (a carrier, WhatsApp) did not take it within ``validity``
    seconds of when it was due (a scheduled message is not old)."""
    now = now or datetime.now(UTC)
    expires_at: datetime | None = row["expires_at"]
    if expires_at is not None and now >= expires_at:
        return "EXPIRED", f"its validity period ended before {taker} took it"
    if (now - row["due_at"]).total_seconds() > validity:
        return "EXPIRED", f"{taker} did not take the message within {validity:.0f} s"
    return None


def one_by_one(
    handle: JobHandler, name: str
) -> Callable[[list[AbstractIncomingMessage], int], Awaitable[None]]:
    """A consumer's handler for connector ``name``'s queue: each delivery in turn."""

    async def on_message(deliveries: list[AbstractIncomingMessage], attempt: int) -> None:
        for message in deliveries:
            await handle(name, message, attempt)

    return on_message


async def claim_job(
    pool: asyncpg.Pool, amqp: Amqp, name: str, message: AbstractIncomingMessage, attempt: int
) -> tuple[SubmitJob, list[asyncpg.Record]] | None:
    """The job and its messages, claimed (queued → sending); a redelivery, a retry job or a
    retried attempt also takes back what was left in 'sending'. None: the job cannot be read
    (it is dead-lettered)."""
    try:
        job = decode(SubmitJob, message.body)
    except NotDecodable as exc:
        queue = amqp.names.submit(name)
        await dead_letter_body(amqp, queue, message.body, exc.reason, version=exc.version)
        return None
    take_back = bool(message.redelivered or job.retry or attempt > 1)
    return job, await store.claim(pool, job.ids, take_back)


async def record(pool: asyncpg.Pool, name: str, out: Outcomes) -> list[asyncpg.Record]:
    """Parts, sent and failed messages and the failed ones' refunds, in one transaction; the
    failed messages' status rows (for their webhooks)."""
    if not (out.parts or out.sent or out.failed):
        return []
    async with pool.acquire() as conn, transaction(conn):
        await store.insert_parts(conn, name, out.parts)
        await store.mark_sent(conn, out.sent)
        rows = await store.mark_failed(conn, out.failed)
        await ledger.refund_failed(conn, list(out.failed))
        return rows


async def requeue(amqp: Amqp, name: str, job: SubmitJob, ids: list[UUID]) -> None:
    """After a pause, ``ids`` back on the connector's queue (with their carrier-only texts)."""
    await asyncio.sleep(RETRY_PAUSE)
    plain = {i: job.plain_bodies[i] for i in ids if i in job.plain_bodies}
    await amqp.publish(amqp.names.submit(name), SubmitJob(ids=ids, retry=True, plain_bodies=plain))
