"""The accounts table: creation and existence. Balances move only through store.ledger."""

from __future__ import annotations

from decimal import Decimal
from uuid import UUID

import asyncpg

from broker.status import AccountStatus
from broker.store import Db

INSERT_ACCOUNT = """
INSERT INTO accounts (name, region, webhook_secret) VALUES ($1, $2, $3) RETURNING id
"""
ACCOUNT_EXISTS = "SELECT true FROM accounts WHERE id = $1"
FIRST_NAMED = "SELECT id FROM accounts WHERE name = $1 ORDER BY created_at LIMIT 1"


async def insert(conn: asyncpg.Connection, name: str, region: str, webhook_secret: str) -> UUID:
    """A new account with a zero balance; credit it through store.ledger."""
    account_id: UUID = await conn.fetchval(INSERT_ACCOUNT, name, region, webhook_secret)
    return account_id


async def exists(db: Db, account_id: UUID) -> bool:
    return bool(await db.fetchval(ACCOUNT_EXISTS, account_id))


async def first_named(db: Db, name: str) -> UUID | None:
    """The oldest account of this name (the dev demo account is found again by its name)."""
    account_id: UUID | None = await db.fetchval(FIRST_NAMED, name)
    return account_id


BALANCE = "SELECT balance, status FROM accounts WHERE id = $1"


async def balance(db: Db, account_id: UUID) -> tuple[Decimal, AccountStatus] | None:
    """The balance and status of an account (None: no such account)."""
    row = await db.fetchrow(BALANCE, account_id)
    return None if row is None else (row["balance"], AccountStatus(row["status"]))
