"""Secrets the gateway makes for itself once and every process shares (the OTP hash key)."""

from __future__ import annotations

from broker.store import Db

#: The first process to get here stores its value; every other one keeps the stored one.
INSERT_SECRET = """
INSERT INTO gateway_secrets (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING
"""
GET_SECRET = "SELECT value FROM gateway_secrets WHERE name = $1"


async def ensure(db: Db, name: str, candidate: bytes) -> bytes:
    """The secret ``name``: ``candidate`` if none was stored yet, else the stored one."""
    await db.execute(INSERT_SECRET, name, candidate)
    value: bytes | None = await db.fetchval(GET_SECRET, name)
    assert value is not None  # inserted just now, or by another process before
    return value
