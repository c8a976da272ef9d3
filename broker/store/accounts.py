"""The accounts table: creation, existence, the account as its keys see it, its settings and
callback secret. Balances move only through store.ledger."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any
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


BALANCE = "SELECT balance, currency, status FROM accounts WHERE id = $1"


async def balance(db: Db, account_id: UUID) -> tuple[Decimal, str, AccountStatus] | None:
    """The balance, its currency and the status of an account (None: no such account)."""
    row = await db.fetchrow(BALANCE, account_id)
    return None if row is None else (row["balance"], row["currency"], AccountStatus(row["status"]))


@dataclass(frozen=True, slots=True)
class AccountRow:
    """What an account's own keys see of it (GET /v1/account)."""

    id: UUID
    name: str
    region: str
    balance: Decimal
    currency: str
    status: AccountStatus
    plan: str
    default_sender: str | None
    help_text: str | None
    webhook_secret: str
    previous_webhook_secret: str | None
    webhook_secret_rotated_at: datetime | None
    created_at: datetime


_ACCOUNT_COLUMNS = """
id, name, region, balance, currency, status, plan, default_sender, help_text, webhook_secret,
previous_webhook_secret, webhook_secret_rotated_at, created_at
"""
GET_ACCOUNT = f"SELECT {_ACCOUNT_COLUMNS} FROM accounts WHERE id = $1"
#: The current secret becomes the previous one (a previous one from an earlier rotation is
#: dropped: only the newest previous keeps verifying).
ROTATE_WEBHOOK_SECRET = f"""
UPDATE accounts
   SET previous_webhook_secret = webhook_secret, webhook_secret = $2,
       webhook_secret_rotated_at = now()
 WHERE id = $1
RETURNING {_ACCOUNT_COLUMNS}
"""
#: $2..$5: plan, currency, default_sender, help_text; $6..$9 say which of them to set (a NULL
#: default_sender or help_text clears it).
UPDATE_SETTINGS = f"""
UPDATE accounts
   SET plan = CASE WHEN $6::bool THEN $2::text ELSE plan END,
       currency = CASE WHEN $7::bool THEN $3::text ELSE currency END,
       default_sender = CASE WHEN $8::bool THEN $4::text ELSE default_sender END,
       help_text = CASE WHEN $9::bool THEN $5::text ELSE help_text END
 WHERE id = $1
RETURNING {_ACCOUNT_COLUMNS}
"""


def _account(row: asyncpg.Record) -> AccountRow:
    return AccountRow(
        row["id"],
        row["name"],
        row["region"],
        row["balance"],
        row["currency"],
        AccountStatus(row["status"]),
        row["plan"],
        row["default_sender"],
        row["help_text"],
        row["webhook_secret"],
        row["previous_webhook_secret"],
        row["webhook_secret_rotated_at"],
        row["created_at"],
    )


async def get(db: Db, account_id: UUID) -> AccountRow | None:
    row = await db.fetchrow(GET_ACCOUNT, account_id)
    return None if row is None else _account(row)


async def rotate_webhook_secret(db: Db, account_id: UUID, secret: str) -> AccountRow | None:
    """Make ``secret`` the callback secret; the one it replaces becomes the previous one."""
    row = await db.fetchrow(ROTATE_WEBHOOK_SECRET, account_id, secret)
    return None if row is None else _account(row)


#: Marks a setting that is not being changed (a None value means "clear it").
UNCHANGED: Any = object()


async def update_settings(
    db: Db,
    account_id: UUID,
    *,
    plan: str = UNCHANGED,
    currency: str = UNCHANGED,
    default_sender: str | None = UNCHANGED,
    help_text: str | None = UNCHANGED,
) -> AccountRow | None:
    """Set the given settings (others stay); None: no such account."""
    values = (plan, currency, default_sender, help_text)
    row = await db.fetchrow(
        UPDATE_SETTINGS,
        account_id,
        *(None if v is UNCHANGED else v for v in values),
        *(v is not UNCHANGED for v in values),
    )
    return None if row is None else _account(row)
