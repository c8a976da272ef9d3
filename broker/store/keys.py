"""API keys: stored as a digest, found by it (one indexed lookup per authenticated request).

A regenerate moves the replaced digest to api_key_retired_hashes, so that an old secret is
still recognised, and refused as disabled (403) rather than unknown (401).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from uuid import UUID

import asyncpg

from broker.store import Db

#: What the keys API and CLI show of a key (never its digest).
KEY_COLUMNS = (
    "id, account_id, name, prefix, channels, rate_limit, expires_at, last_used_at,"
    " revoked_at, created_at"
)

INSERT_KEY = f"""
INSERT INTO api_keys (account_id, name, prefix, key_hash, rate_limit, channels, expires_at)
VALUES ($1, $2, $3, $4, $5, $6, $7)
RETURNING {KEY_COLUMNS}
"""

#: The key and what a request needs of its account (region, balance, status) in one query.
#: A retired digest (replaced by a regenerate) answers as its key, revoked when it was retired;
#: the second branch runs only when the first finds nothing.
KEY_OWNER = """
(SELECT k.id, k.account_id, k.rate_limit, k.channels, k.expires_at, k.revoked_at,
        a.region, a.balance, a.status
   FROM api_keys k JOIN accounts a ON a.id = k.account_id
  WHERE k.key_hash = $1)
UNION ALL
(SELECT k.id, k.account_id, k.rate_limit, k.channels, k.expires_at, r.retired_at,
        a.region, a.balance, a.status
   FROM api_key_retired_hashes r
   JOIN api_keys k ON k.id = r.key_id
   JOIN accounts a ON a.id = k.account_id
  WHERE r.key_hash = $1)
LIMIT 1
"""

#: KEY_OWNER's row for a key named by its id (a token that stands for a key), in its account.
KEY_OWNER_BY_ID = """
SELECT k.id, k.account_id, k.rate_limit, k.channels, k.expires_at, k.revoked_at,
       a.region, a.balance, a.status
  FROM api_keys k JOIN accounts a ON a.id = k.account_id
 WHERE k.id = $1 AND k.account_id = $2
"""

GET_KEY = f"""
SELECT {KEY_COLUMNS} FROM api_keys WHERE id = $1 AND ($2::uuid IS NULL OR account_id = $2)
"""

PAGE = f"""
SELECT {KEY_COLUMNS} FROM api_keys
 WHERE account_id = $1
   AND ($2::timestamptz IS NULL OR (created_at, id) < ($2, $3::uuid))
 ORDER BY created_at DESC, id DESC
 LIMIT $4
"""

#: Revoking twice keeps the first time.
REVOKE = f"""
UPDATE api_keys SET revoked_at = coalesce(revoked_at, now())
 WHERE id = $1 AND ($2::uuid IS NULL OR account_id = $2)
RETURNING {KEY_COLUMNS}
"""

LOCK_KEY = f"""
SELECT {KEY_COLUMNS} FROM api_keys WHERE id = $1 AND account_id = $2 FOR UPDATE
"""

#: A new digest for the same key (and its settings, narrowed by the caller); the old digest
#: is kept as retired.
REPLACE_SECRET = f"""
WITH retired AS (
    INSERT INTO api_key_retired_hashes (key_hash, key_id)
    SELECT key_hash, id FROM api_keys WHERE id = $1
)
UPDATE api_keys
   SET key_hash = $2, prefix = $3, channels = $4, rate_limit = $5, expires_at = $6
 WHERE id = $1
RETURNING {KEY_COLUMNS}
"""

#: Use of many keys in one statement: each moves only if it was last written over a minute
#: before this use (so at most one write a minute per key, whatever the processes).
TOUCH_USED = """
UPDATE api_keys k SET last_used_at = u.used_at
  FROM unnest($1::uuid[], $2::timestamptz[]) AS u(id, used_at)
 WHERE k.id = u.id
   AND (k.last_used_at IS NULL OR k.last_used_at < u.used_at - interval '1 minute')
"""


async def insert_row(
    db: Db,
    account_id: UUID,
    *,
    name: str,
    prefix: str,
    key_hash: bytes,
    rate_limit: int,
    channels: Sequence[str],
    expires_at: datetime | None,
) -> asyncpg.Record:
    """The new key as KEY_COLUMNS."""
    row: asyncpg.Record = await db.fetchrow(
        INSERT_KEY, account_id, name, prefix, key_hash, rate_limit, list(channels), expires_at
    )
    return row


async def owner_by_hash(db: Db, key_hash: bytes) -> asyncpg.Record | None:
    """The KEY_OWNER row of the key with this digest: id, account_id, rate_limit, channels,
    expires_at, revoked_at, and the account's region, balance and status."""
    row: asyncpg.Record | None = await db.fetchrow(KEY_OWNER, key_hash)
    return row


async def owner_by_id(db: Db, key_id: UUID, account_id: UUID) -> asyncpg.Record | None:
    """The KEY_OWNER row of a key of ``account_id`` named by its id."""
    row: asyncpg.Record | None = await db.fetchrow(KEY_OWNER_BY_ID, key_id, account_id)
    return row


async def get(db: Db, key_id: UUID, account_id: UUID | None) -> asyncpg.Record | None:
    """One key (of this account, or of any when ``account_id`` is None)."""
    row: asyncpg.Record | None = await db.fetchrow(GET_KEY, key_id, account_id)
    return row


async def page(
    db: Db, account_id: UUID, *, after: tuple[datetime, UUID] | None, limit: int
) -> list[asyncpg.Record]:
    """The account's keys, newest first, after the (created_at, id) position."""
    stamp, last_id = after if after is not None else (None, None)
    rows = await db.fetch(PAGE, account_id, stamp, last_id, limit)
    return list(rows)


async def revoke(db: Db, key_id: UUID, account_id: UUID | None) -> asyncpg.Record | None:
    """Revoke a key (of this account, or of any when ``account_id`` is None); None: no key."""
    row: asyncpg.Record | None = await db.fetchrow(REVOKE, key_id, account_id)
    return row


async def lock(conn: asyncpg.Connection, account_id: UUID, key_id: UUID) -> asyncpg.Record | None:
    """The key, locked until the end of the caller's transaction."""
    row: asyncpg.Record | None = await conn.fetchrow(LOCK_KEY, key_id, account_id)
    return row


async def replace_secret(
    conn: asyncpg.Connection,
    key_id: UUID,
    *,
    key_hash: bytes,
    prefix: str,
    channels: Sequence[str],
    rate_limit: int,
    expires_at: datetime | None,
) -> asyncpg.Record:
    row: asyncpg.Record = await conn.fetchrow(
        REPLACE_SECRET, key_id, key_hash, prefix, list(channels), rate_limit, expires_at
    )
    return row


async def touch_used(db: Db, uses: Sequence[tuple[UUID, datetime]]) -> int:
    """Record the latest use of each key (one statement); the number of rows moved."""
    if not uses:
        return 0
    status: str = await db.execute(
        TOUCH_USED, [key_id for key_id, _ in uses], [at for _, at in uses]
    )
    return int(status.rsplit(" ", 1)[-1])
