"""API keys: stored as a digest, found by it (one indexed lookup per authenticated request)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from uuid import UUID

import asyncpg

from broker.store import Db

INSERT_KEY = """
INSERT INTO api_keys (account_id, name, prefix, key_hash, rate_limit, channels, expires_at)
VALUES ($1, $2, $3, $4, $5, $6, $7)
RETURNING id
"""

#: The key and what a request needs of its account (region, balance, status) in one query.
KEY_OWNER = """
SELECT k.id, k.account_id, k.rate_limit, k.channels, k.expires_at, k.revoked_at,
       a.region, a.balance, a.status
  FROM api_keys k JOIN accounts a ON a.id = k.account_id
 WHERE k.key_hash = $1
"""


async def insert(
    db: Db,
    account_id: UUID,
    *,
    name: str,
    prefix: str,
    key_hash: bytes,
    rate_limit: int,
    channels: Sequence[str],
    expires_at: datetime | None,
) -> UUID:
    key_id: UUID = await db.fetchval(
        INSERT_KEY, account_id, name, prefix, key_hash, rate_limit, list(channels), expires_at
    )
    return key_id


async def owner_by_hash(db: Db, key_hash: bytes) -> asyncpg.Record | None:
    """The KEY_OWNER row of the key with this digest: id, account_id, rate_limit, channels,
    expires_at, revoked_at, and the account's region, balance and status."""
    row: asyncpg.Record | None = await db.fetchrow(KEY_OWNER, key_hash)
    return row
