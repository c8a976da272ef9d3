"""Carrier receipts on parts and messages, and the receipts parked until their part exists.

Part of the messages aggregate (messages.py holds the rows these settle); kept apart because a
receipt's whole life is here: applied to parts, parked, matched later, or settled by the
no-receipt sweep.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from uuid import UUID

import asyncpg

from broker.status import PartStatus
from broker.store import Db
from broker.store.messages import status_returning

#: Final receipts onto parts still sent, matched by the carrier account (scope) and its id;
#: with the connector each part went out on and the seconds since its submit (the metrics).
UPDATE_PARTS = """
UPDATE message_parts p SET status = u.status, error_code = u.error, done_at = now()
  FROM unnest($1::text[], $2::text[], $3::text[], $4::text[])
       AS u(scope, carrier_id, status, error)
 WHERE p.scope = u.scope AND p.carrier_id = u.carrier_id AND p.status = 'sent'
RETURNING p.message_id, u.scope, u.carrier_id, p.connector,
          extract(epoch FROM now() - p.submitted_at)::float8 AS latency
"""

#: Final receipts for parts that are final already: the part keeps its first outcome; one that
#: disagrees with it is written in the message's history (a repeat of the same outcome is not).
#: The (scope, carrier_id) of every receipt that found its part.
NOTE_LATE = """
WITH late AS (
    SELECT p.message_id, p.seq, p.status AS kept, u.scope, u.carrier_id, u.state, u.status
      FROM unnest($1::text[], $2::text[], $3::text[], $4::text[])
           AS u(scope, carrier_id, state, status)
      JOIN message_parts p ON p.scope = u.scope AND p.carrier_id = u.carrier_id
     WHERE p.status <> 'sent'
), noted AS (
    INSERT INTO message_events (message_id, status, detail)
    SELECT message_id, 'receipt_ignored',
           'part ' || seq || ': ' || state || ' after ' || kept
           || ' (the first final receipt stands)'
      FROM late WHERE status <> kept
)
SELECT scope, carrier_id FROM late
"""

PARK = """
INSERT INTO pending_receipts (scope, carrier_id, state, error)
SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[])
ON CONFLICT DO NOTHING
"""

#: A message becomes delivered when every part is, undelivered as soon as one part is not;
#: with its history row.
SETTLE_MESSAGES = f"""
WITH agg AS (
    SELECT message_id,
           CASE WHEN bool_or(status IN ('undelivered', 'failed')) THEN 'undelivered'
                WHEN bool_and(status = 'delivered') THEN 'delivered' END AS new_status,
           min(error_code) FILTER (WHERE status = 'undelivered') AS err
      FROM message_parts WHERE message_id = ANY($1::uuid[]) GROUP BY message_id
), upd AS (
    UPDATE messages m
       SET status = agg.new_status, done_at = now(), updated_at = now(),
           error_code = CASE WHEN agg.new_status = 'undelivered'
                             THEN split_part(agg.err, ':', 1) END,
           error_text = CASE WHEN agg.new_status = 'undelivered'
                             THEN 'the carrier reported ' || agg.err END
      FROM agg
     WHERE m.id = agg.message_id AND agg.new_status IS NOT NULL AND m.status = 'sent'
    RETURNING {status_returning("m")}
), history AS (
    INSERT INTO message_events (message_id, status, detail)
    SELECT id, status, error_text FROM upd
)
SELECT * FROM upd
"""

MATCHED_PENDING = """
SELECT pr.scope, pr.carrier_id, pr.state, pr.error
  FROM pending_receipts pr
  JOIN message_parts p ON p.scope = pr.scope AND p.carrier_id = pr.carrier_id
 LIMIT 1000
"""

#: The parked receipts just applied, and any older than two days (their part never came).
DROP_PENDING = """
DELETE FROM pending_receipts
 WHERE (scope, carrier_id) IN (SELECT * FROM unnest($1::text[], $2::text[]))
    OR received_at < now() - interval '2 days'
"""

SETTLE_UNRECEIPTED = f"""
WITH stale AS (
    SELECT id FROM messages
     WHERE status = 'sent' AND sent_at < now() - $1::interval
     ORDER BY sent_at LIMIT $2
       FOR UPDATE SKIP LOCKED
), upd AS (
    UPDATE messages m
       SET status = 'undelivered', error_code = 'NO_RECEIPT',
           error_text = 'the carrier sent no delivery receipt in time', done_at = now(),
           updated_at = now()
      FROM stale
     WHERE m.id = stale.id
    RETURNING {status_returning("m")}
), history AS (
    INSERT INTO message_events (message_id, status, detail)
    SELECT id, 'undelivered', 'NO_RECEIPT' FROM upd
)
SELECT * FROM upd
"""


async def update_parts(
    conn: asyncpg.Connection,
    scopes: Sequence[str],
    carrier_ids: Sequence[str],
    statuses: Sequence[PartStatus],
    errors: Sequence[str | None],
) -> list[asyncpg.Record]:
    """Apply final receipts to parts still sent: (message_id, scope, carrier_id, connector,
    latency) of each."""
    return list(await conn.fetch(UPDATE_PARTS, scopes, carrier_ids, statuses, errors))


async def note_late(
    conn: asyncpg.Connection,
    scopes: Sequence[str],
    carrier_ids: Sequence[str],
    states: Sequence[str],
    statuses: Sequence[PartStatus],
) -> set[tuple[str, str]]:
    """Receipts whose part already has its outcome: disagreeing ones into the history; the
    (scope, carrier_id) of each that found its part."""
    rows = await conn.fetch(NOTE_LATE, scopes, carrier_ids, states, statuses)
    return {(r["scope"], r["carrier_id"]) for r in rows}


async def park(
    conn: asyncpg.Connection,
    scopes: Sequence[str],
    carrier_ids: Sequence[str],
    states: Sequence[str],
    errors: Sequence[str | None],
) -> int:
    """Keep receipts (their raw state) whose part is not recorded yet; how many were new."""
    done = await conn.execute(PARK, scopes, carrier_ids, states, errors)
    return int(done.rsplit(" ", 1)[-1])


async def settle_messages(
    conn: asyncpg.Connection, message_ids: list[UUID]
) -> list[asyncpg.Record]:
    """Messages whose parts all reached an outcome take theirs; their STATUS_RETURNING rows."""
    return list(await conn.fetch(SETTLE_MESSAGES, message_ids))


async def matched_pending(conn: asyncpg.Connection) -> list[asyncpg.Record]:
    """Up to 1000 parked receipts (scope, carrier_id, state, error) whose part now exists."""
    return list(await conn.fetch(MATCHED_PENDING))


#: Receipts parked now: how far matching lags (an operator's gauge).
COUNT_PENDING = "SELECT count(*) FROM pending_receipts"


async def count_pending(db: Db) -> int:
    return int(await db.fetchval(COUNT_PENDING))


async def drop_pending(
    conn: asyncpg.Connection, scopes: Sequence[str], carrier_ids: Sequence[str]
) -> None:
    await conn.execute(DROP_PENDING, scopes, carrier_ids)


async def settle_unreceipted(
    conn: asyncpg.Connection, older_than: timedelta, limit: int
) -> list[asyncpg.Record]:
    """Up to ``limit`` messages sent longer ago than ``older_than`` become undelivered
    (NO_RECEIPT); their STATUS_RETURNING rows."""
    return list(await conn.fetch(SETTLE_UNRECEIPTED, older_than, limit))
