"""Carrier receipts applied to parts and messages, in one round trip per batch.

A receipt is looked for among the parts submitted through any connector of the same carrier
account (``connectors.scope``), since the bind a receipt comes back on need not be the one the
part went out on.

A part moves once, from sent to its final state; a message becomes delivered when every part
is, undelivered as soon as one part is not. A receipt whose part is not recorded yet (it beat
its own submit_sm_resp into the database) is parked in pending_receipts and matched later.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from uuid import UUID

import asyncpg

from broker.notify import status_returning
from broker.queue_messages import ReceiptEvent

#: Receipt states that end a part, and what they make of it. ACCEPTD and ENROUTE end nothing.
FINAL_STATES = {
    "DELIVRD": "delivered",
    "UNDELIV": "undelivered",
    "EXPIRED": "undelivered",
    "REJECTD": "undelivered",
    "DELETED": "undelivered",
    "UNKNOWN": "undelivered",
}


@dataclass(frozen=True, slots=True)
class ReceiptUpdate:
    scope: str  # the carrier account the receipt came from: connectors.scope
    carrier_id: str
    state: str
    error: str | None

    @classmethod
    def from_event(cls, event: ReceiptEvent) -> ReceiptUpdate:
        """Receipts of the previous version carry no scope: their connector is their scope."""
        return cls(event.scope or event.connector, event.carrier_id, event.state, event.error)

    @property
    def part_status(self) -> str:
        return FINAL_STATES[self.state]

    @property
    def error_code(self) -> str | None:
        if self.state == "DELIVRD":
            return None
        return f"{self.state}:{self.error}" if self.error else self.state


_UPDATE_PARTS = """
UPDATE message_parts p SET status = u.status, error_code = u.error, done_at = now()
  FROM unnest($1::text[], $2::text[], $3::text[], $4::text[])
       AS u(scope, carrier_id, status, error)
 WHERE p.scope = u.scope AND p.carrier_id = u.carrier_id AND p.status = 'sent'
RETURNING p.message_id, u.scope, u.carrier_id
"""

_PARK = """
INSERT INTO pending_receipts (scope, carrier_id, state, error)
SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[])
ON CONFLICT DO NOTHING
"""

_SETTLE_MESSAGES = f"""
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

_MATCHED_PENDING = """
SELECT pr.scope, pr.carrier_id, pr.state, pr.error
  FROM pending_receipts pr
  JOIN message_parts p ON p.scope = pr.scope AND p.carrier_id = pr.carrier_id
 LIMIT 1000
"""

_DROP_PENDING = """
DELETE FROM pending_receipts
 WHERE (scope, carrier_id) IN (SELECT * FROM unnest($1::text[], $2::text[]))
    OR received_at < now() - interval '2 days'
"""


_SETTLE_UNRECEIPTED = f"""
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


async def settle_unreceipted(
    conn: asyncpg.Connection, older_than: timedelta, *, limit: int = 1000
) -> list[asyncpg.Record]:
    """Messages sent longer ago than ``older_than`` with no final receipt end undelivered.

    Every accepted message reaches a final state, even when its carrier never reports.
    """
    return list(await conn.fetch(_SETTLE_UNRECEIPTED, older_than, limit))


def latest_final(updates: list[ReceiptUpdate]) -> list[ReceiptUpdate]:
    """One final receipt per part: the last one read wins; intermediate states are dropped."""
    chosen: dict[tuple[str, str], ReceiptUpdate] = {}
    for u in updates:
        if u.state in FINAL_STATES:
            chosen[(u.scope, u.carrier_id)] = u
    return list(chosen.values())


async def apply_receipts(
    conn: asyncpg.Connection, updates: list[ReceiptUpdate], *, park_unknown: bool = True
) -> list[asyncpg.Record]:
    """Apply final receipts; return the rows of messages that reached a final state."""
    updates = latest_final(updates)
    if not updates:
        return []
    scopes = [u.scope for u in updates]
    carrier_ids = [u.carrier_id for u in updates]
    touched = await conn.fetch(
        _UPDATE_PARTS,
        scopes,
        carrier_ids,
        [u.part_status for u in updates],
        [u.error_code for u in updates],
    )
    if park_unknown:
        # Park whatever this UPDATE did not apply, without asking why: its part may not be
        # recorded yet, or may have been committed a moment after the UPDATE's snapshot. The
        # sweep applies it once the part is there, and drops it if the part is final already.
        applied = {(r["scope"], r["carrier_id"]) for r in touched}
        unknown = [u for u in updates if (u.scope, u.carrier_id) not in applied]
        if unknown:
            await conn.execute(
                _PARK,
                [u.scope for u in unknown],
                [u.carrier_id for u in unknown],
                [u.state for u in unknown],
                [u.error for u in unknown],
            )
    message_ids: list[UUID] = list({r["message_id"] for r in touched})
    if not message_ids:
        return []
    return list(await conn.fetch(_SETTLE_MESSAGES, message_ids))


async def match_pending(conn: asyncpg.Connection) -> list[asyncpg.Record]:
    """Apply parked receipts whose parts have been recorded since."""
    rows = await conn.fetch(_MATCHED_PENDING)
    updates = [ReceiptUpdate(r["scope"], r["carrier_id"], r["state"], r["error"]) for r in rows]
    settled = await apply_receipts(conn, updates, park_unknown=False)
    await conn.execute(_DROP_PENDING, [u.scope for u in updates], [u.carrier_id for u in updates])
    return settled
