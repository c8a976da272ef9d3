"""Webhook endpoints and their delivery log, always scoped to one account (SQL: store.webhooks)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from uuid import UUID

import asyncpg

from broker.errors import Conflict
from broker.resources import iso
from broker.store import webhooks as webhooks_db
from broker.webhooks.endpoints import EndpointSpec
from broker.webhooks.signing import new_secret

MAX_ENDPOINTS = 20


#: An endpoint as stored (the API's response models read it by attribute).
Webhook = webhooks_db.EndpointRow


async def create(pool: asyncpg.Pool, account_id: UUID, spec: EndpointSpec) -> Webhook:
    """Insert an endpoint with a fresh secret; Conflict once the account has MAX_ENDPOINTS."""
    async with pool.acquire() as conn, conn.transaction():
        await webhooks_db.lock_account(conn, account_id)
        if await webhooks_db.count(conn, account_id) >= MAX_ENDPOINTS:
            raise Conflict(
                f"an account can have at most {MAX_ENDPOINTS} webhooks; delete one first",
                code="WEBHOOK_LIMIT",
            )
        row = await webhooks_db.insert(
            conn, account_id, spec.url, spec.events, new_secret(), spec.format
        )
    return row


async def list_for(pool: asyncpg.Pool, account_id: UUID) -> list[Webhook]:
    return await webhooks_db.list_for(pool, account_id)


async def get(pool: asyncpg.Pool, account_id: UUID, webhook_id: UUID) -> Webhook | None:
    return await webhooks_db.get(pool, account_id, webhook_id)


async def delete(pool: asyncpg.Pool, account_id: UUID, webhook_id: UUID) -> bool:
    return await webhooks_db.delete(pool, account_id, webhook_id)


@dataclass(frozen=True, slots=True)
class AttemptPage:
    data: list[dict[str, Any]]
    next_before: int | None


async def attempts(
    pool: asyncpg.Pool, account_id: UUID, webhook_id: UUID, *, limit: int, before: int | None
) -> AttemptPage:
    """Newest first; ``before`` is the id of the last attempt of the previous page."""
    rows = await webhooks_db.attempts_page(
        pool, account_id, webhook_id, limit=limit + 1, before=before
    )
    page = [_attempt(r) for r in rows[:limit]]
    next_before = rows[limit - 1]["id"] if len(rows) > limit else None
    return AttemptPage(page, next_before)


def _attempt(row: asyncpg.Record) -> dict[str, Any]:
    status = row["status_code"]
    return {
        "id": row["id"],
        "event_id": row["event_id"],
        "event_type": row["event_type"],
        "url": row["url"],
        "attempt": row["attempt"],
        "status_code": status,
        "success": status is not None and 200 <= status < 300,
        "error": row["error"],
        "duration_ms": row["duration_ms"],
        "final": row["final"],
        "created_at": iso(row["created_at"]),
    }
