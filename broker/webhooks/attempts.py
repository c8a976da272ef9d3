"""The delivery log: every attempt is a row of webhook_attempts, written in one batch."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import asyncpg

from broker.webhooks.delivery import Delivery, Outcome


@dataclass(frozen=True, slots=True)
class AttemptRow:
    delivery: Delivery
    outcome: Outcome
    final: bool


# The subquery keeps the row when its webhook was deleted meanwhile (webhook_id becomes NULL,
# as ON DELETE SET NULL would have made it) instead of failing the foreign key.
_INSERT = """
INSERT INTO webhook_attempts
    (account_id, webhook_id, event_id, event_type, url, attempt, status_code, error,
     duration_ms, final)
SELECT u.account_id, (SELECT w.id FROM webhooks w WHERE w.id = u.webhook_id),
       u.event_id, u.event_type, u.url, u.attempt, u.status_code, u.error, u.duration_ms, u.final
FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::text[], $5::text[], $6::int[], $7::int[],
            $8::text[], $9::int[], $10::bool[])
    AS u(account_id, webhook_id, event_id, event_type, url, attempt, status_code, error,
         duration_ms, final)
"""


async def record(pool: asyncpg.Pool, rows: Sequence[AttemptRow]) -> None:
    if not rows:
        return
    args = (
        [r.delivery.event.account_id for r in rows],
        [r.delivery.webhook_id for r in rows],
        [r.delivery.event.id for r in rows],
        [r.delivery.event.type for r in rows],
        [r.delivery.url for r in rows],
        [r.delivery.attempt for r in rows],
        [r.outcome.status_code for r in rows],
        [r.outcome.error for r in rows],
        [r.outcome.duration_ms for r in rows],
        [r.final for r in rows],
    )
    try:
        await pool.execute(_INSERT, *args)
    except asyncpg.ForeignKeyViolationError:
        # A webhook deleted between the subquery and the key check: its id is gone now.
        await pool.execute(_INSERT, *args)
