"""Webhook endpoints and their delivery log in PostgreSQL, always scoped to one account."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg

from broker.errors import Conflict
from broker.resources import iso
from broker.webhooks.endpoints import EndpointSpec
from broker.webhooks.signing import new_secret

MAX_ENDPOINTS = 20
#: Class id of the advisory lock that serialises endpoint creation per account.
_LOCK_CLASS = 0x5748  # "WH"


@dataclass(frozen=True, slots=True)
class Webhook:
    id: UUID
    url: str
    events: tuple[str, ...]
    secret: str
    created_at: datetime

    def public(self, *, with_secret: bool = False) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "id": str(self.id),
            "url": self.url,
            "events": list(self.events),
            "created_at": iso(self.created_at),
        }
        if with_secret:
            doc["secret"] = self.secret
        return doc


def _webhook(row: asyncpg.Record) -> Webhook:
    return Webhook(row["id"], row["url"], tuple(row["events"]), row["secret"], row["created_at"])


async def create(pool: asyncpg.Pool, account_id: UUID, spec: EndpointSpec) -> Webhook:
    """Insert an endpoint with a fresh secret; Conflict once the account has MAX_ENDPOINTS."""
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute(
            "SELECT pg_advisory_xact_lock($1, hashtext($2::text))", _LOCK_CLASS, str(account_id)
        )
        count = await conn.fetchval(
            "SELECT count(*) FROM webhooks WHERE account_id = $1", account_id
        )
        if count >= MAX_ENDPOINTS:
            raise Conflict(
                f"an account can have at most {MAX_ENDPOINTS} webhooks; delete one first",
                code="WEBHOOK_LIMIT",
            )
        row = await conn.fetchrow(
            "INSERT INTO webhooks (account_id, url, events, secret) VALUES ($1, $2, $3, $4)"
            " RETURNING id, url, events, secret, created_at",
            account_id,
            spec.url,
            list(spec.events),
            new_secret(),
        )
    assert row is not None
    return _webhook(row)


async def list_for(pool: asyncpg.Pool, account_id: UUID) -> list[Webhook]:
    rows = await pool.fetch(
        "SELECT id, url, events, secret, created_at FROM webhooks"
        " WHERE account_id = $1 ORDER BY created_at, id",
        account_id,
    )
    return [_webhook(r) for r in rows]


async def get(pool: asyncpg.Pool, account_id: UUID, webhook_id: UUID) -> Webhook | None:
    row = await pool.fetchrow(
        "SELECT id, url, events, secret, created_at FROM webhooks"
        " WHERE account_id = $1 AND id = $2",
        account_id,
        webhook_id,
    )
    return None if row is None else _webhook(row)


async def delete(pool: asyncpg.Pool, account_id: UUID, webhook_id: UUID) -> bool:
    deleted = await pool.fetchval(
        "DELETE FROM webhooks WHERE account_id = $1 AND id = $2 RETURNING id",
        account_id,
        webhook_id,
    )
    return deleted is not None


@dataclass(frozen=True, slots=True)
class AttemptPage:
    data: list[dict[str, Any]]
    next_before: int | None


async def attempts(
    pool: asyncpg.Pool, account_id: UUID, webhook_id: UUID, *, limit: int, before: int | None
) -> AttemptPage:
    """Newest first; ``before`` is the id of the last attempt of the previous page."""
    rows = await pool.fetch(
        "SELECT id, event_id, event_type, url, attempt, status_code, error, duration_ms, final,"
        " created_at FROM webhook_attempts"
        " WHERE account_id = $1 AND webhook_id = $2 AND ($3::bigint IS NULL OR id < $3)"
        " ORDER BY id DESC LIMIT $4",
        account_id,
        webhook_id,
        before,
        limit + 1,
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
