"""Webhook endpoints, where an account's events go, and the log of every delivery attempt.

Every endpoint query is scoped to one account: another account's id finds nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

import asyncpg

from broker.store import Db

#: Class id of the advisory lock that serialises endpoint creation per account.
LOCK_CLASS = 0x5748  # "WH"

LOCK_ACCOUNT = "SELECT pg_advisory_xact_lock($1, hashtext($2::text))"
COUNT_ENDPOINTS = "SELECT count(*) FROM webhooks WHERE account_id = $1"
INSERT_ENDPOINT = """
INSERT INTO webhooks (account_id, url, events, secret, format) VALUES ($1, $2, $3, $4, $5)
RETURNING id, url, events, secret, created_at, format
"""
LIST_ENDPOINTS = """
SELECT id, url, events, secret, created_at, format FROM webhooks
 WHERE account_id = $1 ORDER BY created_at, id
"""
GET_ENDPOINT = """
SELECT id, url, events, secret, created_at, format FROM webhooks
 WHERE account_id = $1 AND id = $2
"""
DELETE_ENDPOINT = "DELETE FROM webhooks WHERE account_id = $1 AND id = $2 RETURNING id"

#: Each account's callback secret (and the previous one with the time it was rotated out) and
#: its endpoints (none: one row with NULL endpoint columns).
TARGETS = """
SELECT a.id AS account_id, a.webhook_secret, a.previous_webhook_secret,
       a.webhook_secret_rotated_at, w.id AS webhook_id, w.url, w.events, w.secret, w.format
  FROM accounts a
  LEFT JOIN webhooks w ON w.account_id = a.id
 WHERE a.id = ANY($1::uuid[])
 ORDER BY a.id, w.created_at, w.id
"""

# The subquery keeps the row when its webhook was deleted meanwhile (webhook_id becomes NULL,
# as ON DELETE SET NULL would have made it) instead of failing the foreign key.
INSERT_ATTEMPTS = """
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

#: Newest first; $3 is the id of the last attempt of the previous page (NULL: the first page).
ATTEMPTS_PAGE = """
SELECT id, event_id, event_type, url, attempt, status_code, error, duration_ms, final, created_at
  FROM webhook_attempts
 WHERE account_id = $1 AND webhook_id = $2 AND ($3::bigint IS NULL OR id < $3)
 ORDER BY id DESC
 LIMIT $4
"""


@dataclass(frozen=True, slots=True)
class EndpointRow:
    id: UUID
    url: str
    events: tuple[str, ...]
    secret: str
    created_at: datetime
    #: The body the endpoint receives: 'standard' or a dialect's (broker.webhooks.formats).
    format: str = "standard"


def _endpoint(row: asyncpg.Record) -> EndpointRow:
    return EndpointRow(
        row["id"],
        row["url"],
        tuple(row["events"]),
        row["secret"],
        row["created_at"],
        row["format"],
    )


async def lock_account(conn: asyncpg.Connection, account_id: UUID) -> None:
    """Serialise endpoint changes of one account until the caller's transaction ends."""
    await conn.execute(LOCK_ACCOUNT, LOCK_CLASS, str(account_id))


async def count(db: Db, account_id: UUID) -> int:
    n: int = await db.fetchval(COUNT_ENDPOINTS, account_id)
    return n


async def insert(
    db: Db,
    account_id: UUID,
    url: str,
    events: Sequence[str],
    secret: str,
    format_name: str = "standard",
) -> EndpointRow:
    row = await db.fetchrow(INSERT_ENDPOINT, account_id, url, list(events), secret, format_name)
    assert row is not None  # RETURNING of an INSERT that raised nothing
    return _endpoint(row)


async def list_for(db: Db, account_id: UUID) -> list[EndpointRow]:
    return [_endpoint(r) for r in await db.fetch(LIST_ENDPOINTS, account_id)]


async def get(db: Db, account_id: UUID, webhook_id: UUID) -> EndpointRow | None:
    row = await db.fetchrow(GET_ENDPOINT, account_id, webhook_id)
    return None if row is None else _endpoint(row)


async def delete(db: Db, account_id: UUID, webhook_id: UUID) -> bool:
    return await db.fetchval(DELETE_ENDPOINT, account_id, webhook_id) is not None


@dataclass(frozen=True, slots=True)
class TargetRow:
    account_id: UUID
    webhook_secret: str
    #: None on the one row of an account without endpoints.
    webhook_id: UUID | None
    url: str | None
    events: tuple[str, ...]
    secret: str | None
    #: The callback secret before the last rotation, and when that rotation happened.
    previous_webhook_secret: str | None = None
    webhook_secret_rotated_at: datetime | None = None
    #: The endpoint's body format (None on the row of an account without endpoints).
    format: str = "standard"


async def targets(db: Db, account_ids: Sequence[UUID]) -> list[TargetRow]:
    rows = await db.fetch(TARGETS, list(account_ids))
    return [
        TargetRow(
            r["account_id"],
            r["webhook_secret"],
            r["webhook_id"],
            r["url"],
            tuple(r["events"] or ()),
            r["secret"],
            r["previous_webhook_secret"],
            r["webhook_secret_rotated_at"],
            r["format"] or "standard",
        )
        for r in rows
    ]


@dataclass(frozen=True, slots=True)
class NewAttempt:
    account_id: UUID
    webhook_id: UUID | None
    event_id: str
    event_type: str
    url: str
    attempt: int
    status_code: int | None
    error: str | None
    duration_ms: int
    final: bool


async def insert_attempts(db: Db, attempts: Sequence[NewAttempt]) -> None:
    """One statement for the batch; a webhook deleted meanwhile leaves its rows' webhook_id
    NULL."""
    if not attempts:
        return
    args = (
        [a.account_id for a in attempts],
        [a.webhook_id for a in attempts],
        [a.event_id for a in attempts],
        [a.event_type for a in attempts],
        [a.url for a in attempts],
        [a.attempt for a in attempts],
        [a.status_code for a in attempts],
        [a.error for a in attempts],
        [a.duration_ms for a in attempts],
        [a.final for a in attempts],
    )
    try:
        await db.execute(INSERT_ATTEMPTS, *args)
    except asyncpg.ForeignKeyViolationError:
        # A webhook deleted between the subquery and the key check: its id is gone now.
        await db.execute(INSERT_ATTEMPTS, *args)


async def attempts_page(
    db: Db, account_id: UUID, webhook_id: UUID, *, limit: int, before: int | None
) -> list[asyncpg.Record]:
    """Up to ``limit`` ATTEMPTS_PAGE rows (ask one more to learn whether a next page exists)."""
    rows: list[asyncpg.Record] = await db.fetch(
        ATTEMPTS_PAGE, account_id, webhook_id, before, limit
    )
    return rows
