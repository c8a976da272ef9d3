"""Idempotency keys: a claim per (account, key), later holding the first request's answer."""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID

from broker.store import Db

#: Claims the key, or takes over one older than 24 hours; no row when someone holds it.
CLAIM = """
INSERT INTO idempotency_keys (account_id, key, request_hash) VALUES ($1, $2, $3)
ON CONFLICT (account_id, key) DO UPDATE
   SET request_hash = EXCLUDED.request_hash, status = NULL, response = NULL, created_at = now()
 WHERE idempotency_keys.created_at < now() - interval '24 hours'
RETURNING true
"""

EARLIER = """
SELECT request_hash, status, response FROM idempotency_keys WHERE account_id = $1 AND key = $2
"""

STORE_ANSWER = """
UPDATE idempotency_keys SET status = $3, response = $4 WHERE account_id = $1 AND key = $2
"""

#: Only a claim without an answer is released: an answered key keeps replaying its answer.
RELEASE = "DELETE FROM idempotency_keys WHERE account_id = $1 AND key = $2 AND status IS NULL"


@dataclass(frozen=True, slots=True)
class Earlier:
    """The request that holds a key: its digest and, once answered, the answer (JSON text)."""

    request_hash: bytes
    status: int | None
    response: str | None


async def claim(db: Db, account_id: UUID, key: str, request_hash: bytes) -> bool:
    """True when this request owns the key now."""
    return bool(await db.fetchval(CLAIM, account_id, key, request_hash))


async def earlier(db: Db, account_id: UUID, key: str) -> Earlier | None:
    row = await db.fetchrow(EARLIER, account_id, key)
    if row is None:
        return None
    return Earlier(bytes(row["request_hash"]), row["status"], row["response"])


async def store_answer(db: Db, account_id: UUID, key: str, status: int, response: str) -> None:
    await db.execute(STORE_ANSWER, account_id, key, status, response)


async def release(db: Db, account_id: UUID, key: str) -> None:
    await db.execute(RELEASE, account_id, key)
