"""Accounts, keys, connectors, routes and numbers: the operator's records, as named queries."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any
from uuid import UUID

import asyncpg
import phonenumbers

from broker import keys
from broker.errors import Conflict, InputError, NotFound
from broker.webhooks.signing import new_secret

_REGION = re.compile(r"^[A-Z]{2}$")


def parse_amount(raw: str | float | int | Decimal, *, field: str, allow_negative: bool) -> Decimal:
    try:
        value = Decimal(str(raw))
    except InvalidOperation as exc:
        raise InputError(f"{field} must be a number, got {raw!r}", field=field) from exc
    if not value.is_finite() or abs(value) >= Decimal("1e14"):
        raise InputError(f"{field} is out of range", field=field)
    if value.as_tuple().exponent < -4:  # type: ignore[operator]
        raise InputError(f"{field} has more than 4 decimal places", field=field)
    if value < 0 and not allow_negative:
        raise InputError(f"{field} must not be negative", field=field)
    return value


def parse_uuid(raw: str, *, what: str) -> UUID:
    try:
        return UUID(raw)
    except ValueError as exc:
        raise NotFound(f"{what} {raw!r} not found") from exc


async def create_account(
    conn: asyncpg.Connection, name: str, credits: Decimal, region: str
) -> UUID:
    name = name.strip()
    if not 1 <= len(name) <= 200:
        raise InputError("account name must be 1–200 characters", field="name")
    region = region.upper()
    if not _REGION.match(region) or region not in phonenumbers.SUPPORTED_REGIONS:
        raise InputError(f"unknown region {region!r} (ISO 3166 alpha-2, e.g. GH)", field="region")
    async with conn.transaction():
        account_id: UUID = await conn.fetchval(
            "INSERT INTO accounts (name, region, webhook_secret) VALUES ($1, $2, $3) RETURNING id",
            name,
            region,
            new_secret(),
        )
        if credits:
            await _change_balance(conn, account_id, credits, "topup")
    return account_id


async def _change_balance(
    conn: asyncpg.Connection, account_id: UUID, amount: Decimal, reason: str
) -> Decimal:
    balance: Decimal | None = await conn.fetchval(
        "UPDATE accounts SET balance = balance + $2 WHERE id = $1 AND balance + $2 >= 0"
        " RETURNING balance",
        account_id,
        amount,
    )
    if balance is None:
        exists = await conn.fetchval("SELECT 1 FROM accounts WHERE id = $1", account_id)
        if not exists:
            raise NotFound(f"account {account_id} not found")
        raise Conflict("the balance cannot go below zero", code="INSUFFICIENT_CREDITS")
    await conn.execute(
        "INSERT INTO ledger (account_id, amount, reason) VALUES ($1, $2, $3)",
        account_id,
        amount,
        reason,
    )
    return balance


async def credit_account(conn: asyncpg.Connection, account_id: UUID, amount: Decimal) -> Decimal:
    if amount == 0:
        raise InputError("amount must not be zero", field="amount")
    async with conn.transaction():
        return await _change_balance(
            conn, account_id, amount, "topup" if amount > 0 else "adjustment"
        )


async def account_books(conn: asyncpg.Connection, account_id: UUID) -> dict[str, Any]:
    """The account with its balance and the sum of its ledger, which must be equal."""
    row = await conn.fetchrow(
        "SELECT a.id, a.name, a.region, a.status, a.balance,"
        " (SELECT coalesce(sum(amount), 0) FROM ledger l WHERE l.account_id = a.id) AS ledger_sum"
        " FROM accounts a WHERE a.id = $1",
        account_id,
    )
    if row is None:
        raise NotFound(f"account {account_id} not found")
    return {**dict(row), "balanced": row["balance"] == row["ledger_sum"]}


@dataclass(frozen=True)
class CreatedKey:
    id: UUID
    secret: str
    prefix: str
    expires_at: datetime | None


async def create_key(
    conn: asyncpg.Connection,
    account_id: UUID,
    *,
    name: str = "",
    rate_limit: int = 60,
    channels: tuple[str, ...] = ("sms",),
    expires_days: int | None = None,
) -> CreatedKey:
    if expires_days is not None and not 1 <= expires_days <= 365:
        raise InputError("expiry must be 1–365 days", field="expires_days")
    if not 1 <= rate_limit <= 1_000_000:
        raise InputError("rate limit must be 1–1000000 requests per minute", field="rate_limit")
    bad = [c for c in channels if c not in ("sms", "whatsapp")]
    if bad or not channels:
        raise InputError("channels must be a subset of sms,whatsapp", field="channels")
    if len(name) > 100:
        raise InputError("key name must be at most 100 characters", field="name")
    if not await conn.fetchval("SELECT 1 FROM accounts WHERE id = $1", account_id):
        raise NotFound(f"account {account_id} not found")
    secret = keys.new_key()
    expires_at = (
        datetime.now(UTC) + timedelta(days=expires_days) if expires_days is not None else None
    )
    key_id: UUID = await conn.fetchval(
        "INSERT INTO api_keys (account_id, name, prefix, key_hash, rate_limit, channels,"
        " expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
        account_id,
        name,
        keys.display_prefix(secret),
        keys.key_hash(secret),
        rate_limit,
        list(dict.fromkeys(channels)),
        expires_at,
    )
    return CreatedKey(key_id, secret, keys.display_prefix(secret), expires_at)


CONNECTOR_FIELDS = (
    "name",
    "host",
    "port",
    "system_id",
    "password",
    "system_type",
    "binds",
    "window_size",
    "tps",
    "bind_mode",
    "dlr_id_format",
    "long_mode",
    "gsm7_packed",
)


async def add_connector(conn: asyncpg.Connection, values: dict[str, Any]) -> None:
    cols = [c for c in CONNECTOR_FIELDS if c in values]
    try:
        await conn.execute(
            f"INSERT INTO connectors ({', '.join(cols)})"  # noqa: S608 -- fixed column names
            f" VALUES ({', '.join(f'${i + 1}' for i in range(len(cols)))})",
            *[values[c] for c in cols],
        )
    except asyncpg.UniqueViolationError as exc:
        raise Conflict(f"connector {values['name']!r} exists already") from exc
    except asyncpg.CheckViolationError as exc:
        raise InputError(f"invalid connector setting: {exc.constraint_name}") from exc


async def add_route(conn: asyncpg.Connection, prefix: str, connector: str, price: Decimal) -> int:
    prefix = prefix.lstrip("+")
    if not re.fullmatch(r"[0-9]{0,15}", prefix):
        raise InputError("prefix must be up to 15 digits (empty: default route)", field="prefix")
    if not await conn.fetchval("SELECT 1 FROM connectors WHERE name = $1", connector):
        raise NotFound(f"connector {connector!r} not found")
    route_id: int = await conn.fetchval(
        "INSERT INTO routes (prefix, connector, price) VALUES ($1, $2, $3)"
        " ON CONFLICT (prefix) DO UPDATE SET connector = EXCLUDED.connector,"
        " price = EXCLUDED.price RETURNING id",
        prefix,
        connector,
        price,
    )
    return route_id


async def add_number(conn: asyncpg.Connection, account_id: UUID, number: str, keyword: str) -> None:
    number = number.strip()
    if not re.fullmatch(r"\+?[0-9]{3,15}", number):
        raise InputError("number must be 3–15 digits, optionally with a leading +", field="number")
    if not await conn.fetchval("SELECT 1 FROM accounts WHERE id = $1", account_id):
        raise NotFound(f"account {account_id} not found")
    try:
        await conn.execute(
            "INSERT INTO numbers (number, keyword, account_id) VALUES ($1, $2, $3)",
            number.lstrip("+"),
            keyword.strip().upper(),
            account_id,
        )
    except asyncpg.UniqueViolationError as exc:
        raise Conflict(f"number {number} with keyword {keyword!r} is taken") from exc
