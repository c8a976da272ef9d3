"""Messages, their parts and their history."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from uuid import UUID

import asyncpg

from broker.resources import MESSAGE_COLUMNS
from broker.status import MessageStatus
from broker.store import Db

COUNT_BY_STATUS = "SELECT status, count(*) AS n FROM messages WHERE account_id = $1 GROUP BY status"


async def count_by_status(db: Db, account_id: UUID) -> dict[MessageStatus, int]:
    """How many of the account's messages are in each status (absent: none)."""
    rows = await db.fetch(COUNT_BY_STATUS, account_id)
    return {MessageStatus(r["status"]): r["n"] for r in rows}


MESSAGE = f"SELECT {MESSAGE_COLUMNS} FROM messages WHERE id = $1 AND account_id = $2"
PARTS = "SELECT * FROM message_parts WHERE message_id = $1 ORDER BY seq"
HISTORY = "SELECT status, detail, at FROM message_events WHERE message_id = $1 ORDER BY id"
#: Newest first; every filter optional; the position is the last row of the previous page.
PAGE = f"""
SELECT {MESSAGE_COLUMNS} FROM messages
 WHERE account_id = $1
   AND ($2::text IS NULL OR status = $2)
   AND ($3::uuid IS NULL OR batch_id = $3)
   AND ($4::timestamptz IS NULL OR (created_at, id) < ($4, $5::uuid))
 ORDER BY created_at DESC, id DESC
 LIMIT $6
"""
BATCH_TOTAL = "SELECT total FROM batches WHERE id = $1 AND account_id = $2"
BATCH_BY_STATUS = """
SELECT status, count(*) AS n, sum(cost) AS cost FROM messages
 WHERE batch_id = $1 AND account_id = $2 GROUP BY status
"""


@dataclass(frozen=True, slots=True)
class MessageView:
    """A message with its parts and status history, as one account may read it."""

    message: asyncpg.Record
    parts: list[asyncpg.Record]
    history: list[asyncpg.Record]


async def find(db: Db, account_id: UUID, message_id: UUID) -> MessageView | None:
    message = await db.fetchrow(MESSAGE, message_id, account_id)
    if message is None:
        return None
    parts = await db.fetch(PARTS, message_id)
    history = await db.fetch(HISTORY, message_id)
    return MessageView(message, list(parts), list(history))


async def page(
    db: Db,
    account_id: UUID,
    *,
    status: MessageStatus | None,
    batch_id: UUID | None,
    after: tuple[datetime, UUID] | None,
    limit: int,
) -> list[asyncpg.Record]:
    """Up to ``limit`` messages, newest first, older than ``after`` (created_at, id)."""
    stamp, last_id = after if after is not None else (None, None)
    rows = await db.fetch(PAGE, account_id, status, batch_id, stamp, last_id, limit)
    return list(rows)


@dataclass(frozen=True, slots=True)
class BatchSummary:
    total: int
    statuses: dict[str, int]
    cost: Decimal


async def batch(db: Db, account_id: UUID, batch_id: UUID) -> BatchSummary | None:
    total = await db.fetchval(BATCH_TOTAL, batch_id, account_id)
    if total is None:
        return None
    rows = await db.fetch(BATCH_BY_STATUS, batch_id, account_id)
    return BatchSummary(
        total,
        {r["status"]: r["n"] for r in rows},
        sum((r["cost"] for r in rows), Decimal(0)),
    )
