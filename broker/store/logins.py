"""Username and password logins (account_logins): each stands for one API key of its account."""

from __future__ import annotations

from uuid import UUID

import asyncpg

from broker.store import Db

#: The login's password hash beside what KEY_OWNER (broker.store.keys) gives for its key.
OWNER_BY_LOGIN = """
SELECT l.password_hash, k.id, k.account_id, k.rate_limit, k.channels, k.expires_at,
       k.revoked_at, a.region, a.balance, a.status
  FROM account_logins l
  JOIN api_keys k ON k.id = l.key_id
  JOIN accounts a ON a.id = k.account_id
 WHERE l.username = $1
"""
KEY_OF = "SELECT key_id FROM account_logins WHERE username = $1 AND account_id = $2"
UPSERT = """
INSERT INTO account_logins (username, account_id, key_id, password_hash)
VALUES ($1, $2, $3, $4)
ON CONFLICT (username) DO UPDATE SET password_hash = EXCLUDED.password_hash, updated_at = now()
 WHERE account_logins.account_id = EXCLUDED.account_id
RETURNING key_id
"""


async def owner_by_login(db: Db, username: str) -> asyncpg.Record | None:
    row: asyncpg.Record | None = await db.fetchrow(OWNER_BY_LOGIN, username)
    return row


async def key_of(db: Db, username: str, account_id: UUID) -> UUID | None:
    """The key an account's login stands for (None: the account has no such login)."""
    key_id: UUID | None = await db.fetchval(KEY_OF, username, account_id)
    return key_id


async def upsert(
    db: Db, username: str, account_id: UUID, key_id: UUID, password_hash: str
) -> UUID | None:
    """Create the login or set its password; None when the username is another account's."""
    found: UUID | None = await db.fetchval(UPSERT, username, account_id, key_id, password_hash)
    return found
