"""The delivery log: every attempt is a row of webhook_attempts, written in one batch."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import asyncpg

from broker.store import webhooks as webhooks_db
from broker.webhooks.delivery import Delivery, Outcome


@dataclass(frozen=True, slots=True)
class AttemptRow:
    delivery: Delivery
    outcome: Outcome
    final: bool


async def record(pool: asyncpg.Pool, rows: Sequence[AttemptRow]) -> None:
    await webhooks_db.insert_attempts(
        pool,
        [
            webhooks_db.NewAttempt(
                account_id=r.delivery.event.account_id,
                webhook_id=r.delivery.webhook_id,
                event_id=r.delivery.event.id,
                event_type=r.delivery.event.type,
                url=r.delivery.url,
                attempt=r.delivery.attempt,
                status_code=r.outcome.status_code,
                error=r.outcome.error,
                duration_ms=r.outcome.duration_ms,
                final=r.final,
            )
            for r in rows
        ],
    )
