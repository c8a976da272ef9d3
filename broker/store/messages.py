"""Messages, their parts and their history: what the API reads, and the writes of the charge
and submit workers (receipts, which settle parts and messages, are in store.receipts).

The writes are the hot path: each takes a whole batch in one statement (unnest arrays), so a
function here is one round trip, never one per message.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Protocol
from uuid import UUID

import asyncpg

from broker.resources import MESSAGE_COLUMNS
from broker.status import MessageStatus, PartStatus
from broker.store import Db

#: Columns a status-changing statement returns so its rows can become webhook events
#: (broker.notify.status_events).
STATUS_RETURNING = MESSAGE_COLUMNS + ", callback_url, connector"


def status_returning(alias: str) -> str:
    """STATUS_RETURNING with each column qualified by ``alias`` (for UPDATE ... FROM)."""
    return ", ".join(f"{alias}.{c.strip()}" for c in STATUS_RETURNING.split(","))


COUNT_BY_STATUS = "SELECT status, count(*) AS n FROM messages WHERE account_id = $1 GROUP BY status"


async def count_by_status(db: Db, account_id: UUID) -> dict[MessageStatus, int]:
    """How many of the account's messages are in each status (absent: none)."""
    rows = await db.fetch(COUNT_BY_STATUS, account_id)
    return {MessageStatus(r["status"]): r["n"] for r in rows}


MESSAGE = f"SELECT {MESSAGE_COLUMNS} FROM messages WHERE id = $1 AND account_id = $2"
PARTS = "SELECT * FROM message_parts WHERE message_id = $1 ORDER BY seq"
HISTORY = "SELECT status, detail, at FROM message_events WHERE message_id = $1 ORDER BY id"
#: The message list, newest first. Each filter is its own fixed predicate, so that every
#: combination is a statement of its own whose plan uses the index of its filter (a generic
#: "$n IS NULL OR ..." plan would scan); the values are always parameters.
PAGE_FILTERS: dict[str, str] = {
    "status": "status = $",
    "batch_id": "batch_id = $",
    "to_number": "to_number = $",
    "client_ref": "client_ref = $",
    "created_after": "created_at > $",
    "created_before": "created_at < $",
}
PAGE_AFTER = "(created_at, id) < ($, $)"
PAGE = f"SELECT {MESSAGE_COLUMNS} FROM messages WHERE account_id = $1"
PAGE_ORDER = " ORDER BY created_at DESC, id DESC LIMIT $"


def page_statement(filters: Sequence[str], after: bool) -> str:
    """PAGE with the named filters (keys of PAGE_FILTERS), numbered from $2; the limit last."""
    predicates = [PAGE_FILTERS[f] for f in filters] + ([PAGE_AFTER] if after else [])
    sql, n = PAGE, 2
    for predicate in predicates:
        parts = predicate.split("$")
        numbered = parts[0]
        for rest in parts[1:]:
            numbered += f"${n}{rest}"
            n += 1
        sql += f" AND {numbered}"
    return f"{sql}{PAGE_ORDER}{n}"


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
    filters: Mapping[str, object],
    *,
    after: tuple[datetime, UUID] | None,
    limit: int,
) -> list[asyncpg.Record]:
    """Up to ``limit`` messages, newest first, older than ``after`` (created_at, id), matching
    every filter (PAGE_FILTERS names; None values are left out)."""
    given = {k: v for k, v in filters.items() if v is not None}
    unknown = set(given) - set(PAGE_FILTERS)
    if unknown:
        raise ValueError(f"unknown message filters: {sorted(unknown)}")
    names = [f for f in PAGE_FILTERS if f in given]
    args: list[object] = [given[f] for f in names]
    if after is not None:
        args.extend(after)
    sql = page_statement(names, after is not None)
    return list(await db.fetch(sql, account_id, *args, limit))


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


# --- The charge worker: new messages, their batches, failures for want of credit ---------

INSERT_BATCHES = """
INSERT INTO batches (id, account_id, total)
SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::int[]) ON CONFLICT (id) DO NOTHING
"""

#: A redelivered message inserts nothing (its id exists): only the ids returned are new.
INSERT_MESSAGES = """
INSERT INTO messages (id, account_id, batch_id, to_number, sender, body, encoding, segments,
                      status, connector, price, cost, client_ref, callback_url, error_code,
                      error_text, created_at, scheduled_at, expires_at, channel, updated_at,
                      done_at)
SELECT u.*, u.created_at, CASE WHEN u.status = 'failed' THEN now() END
  FROM unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::text[], $5::text[], $6::text[], $7::text[],
              $8::int[], $9::text[], $10::text[], $11::numeric[], $12::numeric[], $13::text[],
              $14::text[], $15::text[], $16::text[], $17::timestamptz[], $18::timestamptz[],
              $19::timestamptz[], $20::text[])
       AS u(id, account_id, batch_id, to_number, sender, body, encoding, segments, status,
            connector, price, cost, client_ref, callback_url, error_code, error_text, created_at,
            scheduled_at, expires_at, channel)
ON CONFLICT (id) DO NOTHING
RETURNING id
"""

FAIL_UNFUNDED = f"""
UPDATE messages SET status = 'failed', cost = 0, error_code = 'INSUFFICIENT_CREDITS',
       error_text = 'the balance could not cover this message', updated_at = now(),
       done_at = now()
 WHERE id = ANY($1::uuid[]) AND status IN ('queued', 'scheduled')
RETURNING {STATUS_RETURNING}
"""

ADD_HISTORY = """
INSERT INTO message_events (message_id, status, detail)
SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[])
"""

STILL_QUEUED = """
SELECT id, connector FROM messages WHERE id = ANY($1::uuid[]) AND status = 'queued'
"""

STATUS_ROWS = f"SELECT {STATUS_RETURNING} FROM messages WHERE id = ANY($1::uuid[])"


class NewMessage(Protocol):
    """A message as the charge worker stores it (workers.charge.NewMessage)."""

    id: UUID
    account_id: UUID
    batch_id: UUID | None
    to: str
    sender: str | None
    body: str
    encoding: str
    segments: int
    connector: str | None
    price: Decimal
    client_ref: str | None
    callback_url: str | None
    #: (code, text) of a message that fails at once.
    error: tuple[str, str] | None
    accepted_at: datetime
    scheduled_at: datetime | None
    expires_at: datetime | None
    channel: str

    @property
    def status(self) -> MessageStatus: ...

    @property
    def cost(self) -> Decimal: ...


async def insert_batches(
    conn: asyncpg.Connection, batches: Mapping[UUID, tuple[UUID, int]]
) -> None:
    """Batch rows by id: (account id, message count); an existing batch is left as it is."""
    if batches:
        await conn.execute(
            INSERT_BATCHES,
            list(batches),
            [a for a, _ in batches.values()],
            [n for _, n in batches.values()],
        )


async def insert_new(conn: asyncpg.Connection, messages: Sequence[NewMessage]) -> set[UUID]:
    """Insert the messages; return the ids that were new (a redelivery's exist already)."""
    rows = await conn.fetch(
        INSERT_MESSAGES,
        [m.id for m in messages],
        [m.account_id for m in messages],
        [m.batch_id for m in messages],
        [m.to for m in messages],
        [m.sender for m in messages],
        [m.body for m in messages],
        [m.encoding for m in messages],
        [m.segments for m in messages],
        [m.status for m in messages],
        [m.connector for m in messages],
        [m.price for m in messages],
        [m.cost for m in messages],
        [m.client_ref for m in messages],
        [m.callback_url for m in messages],
        [m.error[0] if m.error else None for m in messages],
        [m.error[1] if m.error else None for m in messages],
        [m.accepted_at for m in messages],
        [m.scheduled_at for m in messages],
        [m.expires_at for m in messages],
        [m.channel for m in messages],
    )
    return {r["id"] for r in rows}


async def fail_unfunded(conn: asyncpg.Connection, ids: list[UUID]) -> list[asyncpg.Record]:
    """Queued or scheduled messages the balance could not cover become failed, uncharged (no
    history row: the caller writes it with add_history); their STATUS_RETURNING rows."""
    if not ids:
        return []
    return list(await conn.fetch(FAIL_UNFUNDED, ids))


async def add_history(
    conn: asyncpg.Connection,
    ids: Sequence[UUID],
    statuses: Sequence[MessageStatus],
    details: Sequence[str | None],
) -> None:
    """One message_events row per (id, status, detail)."""
    await conn.execute(ADD_HISTORY, ids, statuses, details)


async def still_queued(db: Db, ids: list[UUID]) -> list[tuple[UUID, str]]:
    """(id, connector) of those messages still queued: a redelivery hands them on again."""
    return [(r["id"], r["connector"]) for r in await db.fetch(STILL_QUEUED, ids)]


async def status_rows(db: Db, ids: list[UUID]) -> list[asyncpg.Record]:
    """The messages' STATUS_RETURNING rows, as a status-changing statement returns them."""
    return list(await db.fetch(STATUS_ROWS, ids))


# --- The submit worker: claims, parts on the wire, sent and failed ------------------------

#: queued → sending (with take_back, also what a crashed attempt left in sending), with the
#: parts already recorded, so a retry submits only the rest. A scheduled message that is due
#: is claimed too: a scheduler that published its job but died before its commit rolled back,
#: and the job still sends it (once: a second job's claim finds it sending).
#: ``due_at`` is when its validity started: when it was due, or else when it was accepted.
CLAIM = """
WITH claimed AS (
    UPDATE messages SET status = 'sending', updated_at = now()
     WHERE id = ANY($1::uuid[])
       AND (status = 'queued' OR ($2 AND status = 'sending')
            OR (status = 'scheduled' AND scheduled_at <= now()))
    RETURNING id, to_number, sender, body, created_at, expires_at, channel,
              coalesce(scheduled_at, created_at) AS due_at,
              ARRAY(SELECT seq FROM message_parts p WHERE p.message_id = messages.id) AS done
), history AS (
    INSERT INTO message_events (message_id, status) SELECT id, 'sending' FROM claimed
)
SELECT * FROM claimed
"""

#: Messages (claimed, 'sending', no part accepted) given to another connector: its submit
#: worker takes them back from 'sending' (a retry job); charged as they were.
HAND_OVER = """
WITH moved AS (
    UPDATE messages m SET connector = u.connector, updated_at = now()
      FROM unnest($1::uuid[], $2::text[]) AS u(id, connector)
     WHERE m.id = u.id AND m.status = 'sending'
       AND NOT EXISTS (SELECT 1 FROM message_parts p WHERE p.message_id = m.id)
    RETURNING m.id, u.connector
), history AS (
    INSERT INTO message_events (message_id, status, detail)
    SELECT id, 'sending', 'handed over to ' || connector || ': ' || $3 FROM moved
)
SELECT id, connector FROM moved
"""

INSERT_PARTS = """
INSERT INTO message_parts (message_id, seq, connector, carrier_id, status, command_status,
                           error_code)
SELECT u.m, u.s, $1, u.c, u.st, u.cs, u.e
  FROM unnest($2::uuid[], $3::int[], $4::text[], $5::text[], $6::int[], $7::text[])
       AS u(m, s, c, st, cs, e)
ON CONFLICT (message_id, seq) DO NOTHING
"""

MARK_SENT = """
WITH done AS (
    UPDATE messages SET status = 'sent', sent_at = now(), updated_at = now()
     WHERE id = ANY($1::uuid[]) AND status = 'sending'
    RETURNING id
)
INSERT INTO message_events (message_id, status) SELECT id, 'sent' FROM done
"""

MARK_FAILED = f"""
UPDATE messages m SET status = 'failed', error_code = u.code, error_text = u.text,
       updated_at = now(), done_at = now()
  FROM unnest($1::uuid[], $2::text[], $3::text[]) AS u(id, code, text)
 WHERE m.id = u.id AND m.status = 'sending'
RETURNING {status_returning("m")}
"""

#: (message id, seq, carrier id, status, command_status, error code) of one submitted part.
Part = tuple[UUID, int, str | None, PartStatus, int | None, str | None]


async def claim(db: Db, ids: list[UUID], take_back: bool) -> list[asyncpg.Record]:
    """Claim messages for submission: id, to_number, sender, body, created_at, expires_at,
    due_at, done (seqs)."""
    return list(await db.fetch(CLAIM, ids, take_back))


async def insert_parts(conn: asyncpg.Connection, connector: str, parts: Sequence[Part]) -> None:
    """Record submitted parts; a part recorded already (a retry) is left as it is."""
    if parts:
        await conn.execute(INSERT_PARTS, connector, *map(list, zip(*parts, strict=True)))


async def mark_sent(conn: asyncpg.Connection, ids: list[UUID]) -> None:
    """sending → sent, with its history row."""
    if ids:
        await conn.execute(MARK_SENT, ids)


async def mark_failed(
    conn: asyncpg.Connection, failed: Mapping[UUID, tuple[str, str]]
) -> list[asyncpg.Record]:
    """sending → failed with (code, text), and a history row each; the STATUS_RETURNING rows
    of the messages that moved. Refunds are the caller's: store.ledger.refund_failed."""
    if not failed:
        return []
    ids = list(failed)
    texts = [failed[i][1] for i in ids]
    rows = await conn.fetch(MARK_FAILED, ids, [failed[i][0] for i in ids], texts)
    await add_history(conn, ids, [MessageStatus.FAILED] * len(ids), texts)
    return list(rows)


async def hand_over(db: Db, moves: Mapping[UUID, str], reason: str) -> list[tuple[UUID, str]]:
    """Give claimed messages to other connectors; (id, connector) of each one moved."""
    if not moves:
        return []
    rows = await db.fetch(HAND_OVER, list(moves), list(moves.values()), reason)
    return [(r["id"], r["connector"]) for r in rows]
