"""Refunds: a failed message gives its credits back, once, with a ledger row."""

from __future__ import annotations

from uuid import UUID

import asyncpg

# The ledger's unique index on (message_id) for refunds makes this safe to run twice: only
# refunds actually written move a balance.
_REFUND = """
WITH r AS (
    INSERT INTO ledger (account_id, amount, reason, message_id)
    SELECT account_id, cost, 'refund', id FROM messages
     WHERE id = ANY($1::uuid[]) AND cost > 0 AND status = 'failed'
    ON CONFLICT (message_id) WHERE reason = 'refund' DO NOTHING
    RETURNING account_id, amount
)
UPDATE accounts a SET balance = a.balance + s.total
  FROM (SELECT account_id, sum(amount) AS total FROM r GROUP BY account_id) s
 WHERE a.id = s.account_id
"""


async def refund_failed(conn: asyncpg.Connection, message_ids: list[UUID]) -> None:
    if message_ids:
        await conn.execute(_REFUND, message_ids)
