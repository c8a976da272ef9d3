"""Scheduled messages: what the scheduler hands on when it is due, and a customer's cancel.

The scheduler takes due rows with FOR UPDATE SKIP LOCKED inside its own transaction, publishes
their submit jobs, then marks them queued and commits: several schedulers never take the same
row, and one that dies before its commit leaves the rows scheduled (its jobs still claim them:
see store.messages.CLAIM). A cancel waits for a scheduler holding the row, then finds it queued.
"""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID

import asyncpg

from broker.db import transaction
from broker.status import MessageStatus
from broker.store import Db
from broker.store.ledger import refund_failed
from broker.store.messages import STATUS_RETURNING

#: Due scheduled messages, oldest due first, locked for this transaction; rows another
#: scheduler holds are skipped (it hands them on).
DUE = """
SELECT id, connector FROM messages
 WHERE status = 'scheduled' AND scheduled_at <= now()
 ORDER BY scheduled_at
 LIMIT $1
   FOR UPDATE SKIP LOCKED
"""

#: scheduled → queued, with a history row each.
MARK_QUEUED = """
WITH queued AS (
    UPDATE messages SET status = 'queued', updated_at = now()
     WHERE id = ANY($1::uuid[]) AND status = 'scheduled'
    RETURNING id
)
INSERT INTO message_events (message_id, status, detail)
SELECT id, 'queued', 'due' FROM queued
"""

CANCELED_CODE = "CANCELED"
CANCELED_TEXT = "canceled before it was due"

#: scheduled → canceled for the account's own message, with its history row.
CANCEL = f"""
WITH canceled AS (
    UPDATE messages SET status = 'canceled', error_code = '{CANCELED_CODE}',
           error_text = '{CANCELED_TEXT}', updated_at = now(), done_at = now()
     WHERE id = $1 AND account_id = $2 AND status = 'scheduled'
    RETURNING {STATUS_RETURNING}
), history AS (
    INSERT INTO message_events (message_id, status, detail)
    SELECT id, 'canceled', '{CANCELED_TEXT}' FROM canceled
)
SELECT * FROM canceled
"""

STATUS_OF = "SELECT status FROM messages WHERE id = $1 AND account_id = $2"


@dataclass(frozen=True, slots=True)
class Due:
    id: UUID
    #: Never NULL for a scheduled message (messages_scheduled_routed).
    connector: str


async def take_due(conn: asyncpg.Connection, limit: int) -> list[Due]:
    """Lock up to ``limit`` due scheduled messages for the caller's transaction."""
    return [Due(r["id"], r["connector"]) for r in await conn.fetch(DUE, limit)]


async def mark_queued(conn: asyncpg.Connection, ids: list[UUID]) -> None:
    """scheduled → queued (their jobs are published), with a history row each."""
    if ids:
        await conn.execute(MARK_QUEUED, ids)


async def cancel(pool: asyncpg.Pool, account_id: UUID, message_id: UUID) -> asyncpg.Record | None:
    """Cancel the account's scheduled message and refund its charge, in one transaction; its
    STATUS_RETURNING row, or None when it is not (or no longer) scheduled or not the account's."""
    async with pool.acquire() as conn, transaction(conn):
        row: asyncpg.Record | None = await conn.fetchrow(CANCEL, message_id, account_id)
        if row is not None:
            await refund_failed(conn, [message_id])
        return row


async def status_of(db: Db, account_id: UUID, message_id: UUID) -> MessageStatus | None:
    """The account's message's status; None when there is no such message of the account."""
    status = await db.fetchval(STATUS_OF, message_id, account_id)
    return MessageStatus(status) if status is not None else None
