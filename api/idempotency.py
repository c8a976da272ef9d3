"""Idempotency-Key: the same key with the same request answers what the first one answered.

A key is claimed before the publish and holds the answer after it, for 24 hours. A second
request while the first is still running gets 409, one with a different body gets 409 too;
a request that failed (nothing was accepted) releases its key so the customer can retry.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any
from uuid import UUID

import asyncpg

from api.errors import ApiError
from broker.db import unavailable_as_error
from broker.store import idempotency as idempotency_db

HEADER = "Idempotency-Key"


def request_hash(body: dict[str, Any]) -> bytes:
    return hashlib.sha256(json.dumps(body, sort_keys=True, default=str).encode()).digest()


def check_key(raw: str | None) -> str | None:
    if raw is None:
        return None
    key = raw.strip()
    if not 1 <= len(key) <= 255:
        raise ApiError(400, "INVALID_IDEMPOTENCY_KEY", f"{HEADER} must be 1–255 characters")
    return key


async def claim(
    pool: asyncpg.Pool, account_id: UUID, key: str, digest: bytes
) -> tuple[int, Any] | None:
    """None when this request owns the key now; else the earlier answer to replay."""
    async with unavailable_as_error():
        if await idempotency_db.claim(pool, account_id, key, digest):
            return None
        row = await idempotency_db.earlier(pool, account_id, key)
    if row is None:  # released between the two statements: the customer may simply retry
        raise ApiError(409, "REQUEST_IN_PROGRESS", f"a request with this {HEADER} is running")
    if row.request_hash != digest:
        raise ApiError(
            409,
            "IDEMPOTENCY_KEY_REUSED",
            f"this {HEADER} was used with a different request in the last 24 hours",
        )
    if row.status is None or row.response is None:
        raise ApiError(409, "REQUEST_IN_PROGRESS", f"a request with this {HEADER} is running")
    return row.status, json.loads(row.response)


async def store(pool: asyncpg.Pool, account_id: UUID, key: str, status: int, answer: Any) -> None:
    async with unavailable_as_error():
        await idempotency_db.store_answer(pool, account_id, key, status, json.dumps(answer))


async def release(pool: asyncpg.Pool, account_id: UUID, key: str) -> None:
    async with unavailable_as_error():
        await idempotency_db.release(pool, account_id, key)
