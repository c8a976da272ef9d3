"""The same ingest request delivered twice (a redelivery after a crash, a publish repeated after a
lost confirm) becomes one set of message rows, charged once."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import asyncpg

from broker.config import Settings
from broker.queues import Amqp, QueueNames
from tests.fault_slice import Slice, fault_slice, workers

RECIPIENTS = 3


def ingest_payload(piece: Slice, recipients: int = RECIPIENTS) -> dict[str, Any]:
    """What POST /v1/messages publishes for a request to several numbers."""
    return {
        "account_id": str(piece.account_id),
        "batch_id": str(uuid.uuid4()),
        "body": "sent twice, charged once",
        "sender": None,
        "client_ref": "redelivered",
        "callback_url": None,
        "encoding": "GSM7",
        "segments": 1,
        "accepted_at": datetime.now(UTC).isoformat(),
        "recipients": [[str(uuid.uuid4()), piece.number(i)] for i in range(recipients)],
    }


@asynccontextmanager
async def publisher(settings: Settings) -> AsyncIterator[Amqp]:
    amqp = Amqp(settings.amqp_url, QueueNames(settings.queue_prefix))
    await amqp.connect()
    await amqp.declare_topology(settings.webhook_retry_delays)
    try:
        yield amqp
    finally:
        await amqp.close()


def message_ids(*payloads: dict[str, Any]) -> list[str]:
    return [mid for payload in payloads for mid, _ in payload["recipients"]]


async def check_once(piece: Slice, *payloads: dict[str, Any]) -> None:
    """Each request's messages exist once, delivered, charged once; nothing else exists."""
    ids = message_ids(*payloads)
    # A handful of messages on an idle gateway: far less than this when all is well.
    statuses = await piece.wait_final(ids, within=15.0)
    assert set(statuses.values()) == {"delivered"}
    rows = await piece.pool.fetchval(
        "SELECT count(*) FROM messages WHERE account_id = $1", piece.account_id
    )
    assert rows == len(ids)
    totals = await piece.pool.fetch(
        "SELECT total FROM batches WHERE account_id = $1", piece.account_id
    )
    assert [r["total"] for r in totals] == [RECIPIENTS]
    await piece.assert_charged_once(ids)
    await piece.assert_parts_unique(ids)


async def test_redelivered_after_processing(settings: Settings, pool: asyncpg.Pool) -> None:
    async with (
        fault_slice(settings, pool, "fr-later", "614915710") as piece,
        publisher(piece.settings) as amqp,
        workers(piece.settings),
    ):
        payload = ingest_payload(piece)
        await amqp.publish(amqp.names.ingest, payload)
        await piece.wait_final(message_ids(payload))
        await amqp.publish(amqp.names.ingest, payload)
        # Batches are handled in delivery order: once a request sent after the copy is
        # delivered, the copy has been handled too.
        marker = ingest_payload(piece, 1)
        marker["batch_id"] = None
        await amqp.publish(amqp.names.ingest, marker)
        await check_once(piece, payload, marker)


async def test_both_copies_in_one_batch(settings: Settings, pool: asyncpg.Pool) -> None:
    async with (
        fault_slice(settings, pool, "fr-same", "614915711") as piece,
        publisher(piece.settings) as amqp,
    ):
        payload = ingest_payload(piece)
        # Queued before any worker runs, the two copies reach the charge worker together.
        await amqp.publish(amqp.names.ingest, payload)
        await amqp.publish(amqp.names.ingest, payload)
        async with workers(piece.settings):
            await check_once(piece, payload)
