"""The bench's own database: created fresh, provisioned, checked after the run, then dropped."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from decimal import Decimal

import asyncpg

from broker import accounts
from broker.store import ledger, messages

SIM_CONNECTOR = "sim"
SIM_SYSTEM_ID, SIM_PASSWORD = "smsbroker", "secret"
KEY_RATE_LIMIT = 1_000_000  # requests per minute: never the thing being measured


def fresh_name() -> str:
    return f"smsbroker_bench_{uuid.uuid4().hex[:10]}"


@dataclass(frozen=True)
class Tenant:
    account_id: uuid.UUID
    key: str
    credits: Decimal


async def provision(dsn: str, smsc_port: int, credits: Decimal) -> Tenant:
    """Connector and default route to the simulator, an account and a key for the load."""
    conn: asyncpg.Connection = await asyncpg.connect(dsn)
    try:
        await accounts.add_connector(
            conn,
            {
                "name": SIM_CONNECTOR,
                "host": "127.0.0.1",
                "port": smsc_port,
                "system_id": SIM_SYSTEM_ID,
                "password": SIM_PASSWORD,
                "binds": 2,
                "window_size": 100,
            },
        )
        await accounts.add_route(conn, "", SIM_CONNECTOR, Decimal(1))
        account_id = await accounts.create_account(conn, "Bench", credits, "US")
        key = await accounts.create_key(conn, account_id, name="bench", rate_limit=KEY_RATE_LIMIT)
    finally:
        await conn.close()
    return Tenant(account_id, key.secret, credits)


@dataclass(frozen=True)
class Books:
    """The account's balance, the sum of its ledger, and how many messages it has."""

    balance: Decimal
    ledger_sum: Decimal
    messages: int
    #: How many of the account's messages are in each status: where lost ones are stuck.
    statuses: dict[str, int] = field(default_factory=dict)


async def read_books(dsn: str, account_id: uuid.UUID) -> Books:
    conn: asyncpg.Connection = await asyncpg.connect(dsn)
    try:
        books = await ledger.books(conn, account_id)
        counts = await messages.count_by_status(conn, account_id)
    finally:
        await conn.close()
    assert books is not None, f"the bench account {account_id} is gone"
    by_status = {str(status): counts[status] for status in sorted(counts)}
    return Books(books.balance, books.ledger_sum, sum(counts.values()), by_status)


async def backend_pids(dsn: str, name: str) -> list[int]:
    """Server processes connected to database ``name`` (the bench's own connection excluded)."""
    conn: asyncpg.Connection = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch(
            "SELECT pid FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()",
            name,
        )
    finally:
        await conn.close()
    return [r["pid"] for r in rows]
