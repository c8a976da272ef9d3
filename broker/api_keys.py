"""API keys managed by the account's own keys: create, list, read, revoke, regenerate.

A key may manage every key of its account, but a key it creates or regenerates is never
broader than itself: its channels, rate limit and expiry are bounded by the caller's (a
caller that expires makes keys that expire no later). Asking for more is refused
(KEY_SCOPE_EXCEEDED, naming the field) and nothing is written, so a leaked sms-only key cannot
mint a WhatsApp one. The secret exists only in the answer that made it; the database keeps
its digest.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any
from uuid import UUID

import asyncpg

from broker import keys
from broker.errors import Conflict, Forbidden, NotFound
from broker.store import Db
from broker.store import accounts as accounts_db
from broker.store import keys as keys_db

CHANNELS = ("sms", "whatsapp")
DEFAULT_RATE_LIMIT = 60


class KeyStatus(StrEnum):
    ACTIVE = "active"
    REVOKED = "revoked"
    EXPIRED = "expired"


class ScopeExceeded(Forbidden):
    """A key asked for a key broader than itself."""

    code = "KEY_SCOPE_EXCEEDED"

    def __init__(self, message: str, *, field: str) -> None:
        super().__init__(message, field=field)


@dataclass(frozen=True, slots=True)
class Scope:
    """What a key may do, and so the most a key it makes may do."""

    channels: tuple[str, ...]
    rate_limit: int
    expires_at: datetime | None


@dataclass(frozen=True, slots=True)
class KeyView:
    """A key as its account sees it (never the secret nor its digest)."""

    id: UUID
    account_id: UUID
    name: str
    prefix: str
    channels: list[str]
    rate_limit_per_minute: int
    expires_at: datetime | None
    last_used_at: datetime | None
    revoked_at: datetime | None
    status: KeyStatus
    created_at: datetime


@dataclass(frozen=True, slots=True)
class KeyWithSecret:
    key: KeyView
    secret: str


def status_of(revoked_at: datetime | None, expires_at: datetime | None, now: datetime) -> KeyStatus:
    if revoked_at is not None:
        return KeyStatus.REVOKED
    if expires_at is not None and expires_at <= now:
        return KeyStatus.EXPIRED
    return KeyStatus.ACTIVE


def view(row: asyncpg.Record | dict[str, Any], now: datetime | None = None) -> KeyView:
    now = now or datetime.now(UTC)
    return KeyView(
        id=row["id"],
        account_id=row["account_id"],
        name=row["name"],
        prefix=row["prefix"],
        channels=list(row["channels"]),
        rate_limit_per_minute=row["rate_limit"],
        expires_at=row["expires_at"],
        last_used_at=row["last_used_at"],
        revoked_at=row["revoked_at"],
        status=status_of(row["revoked_at"], row["expires_at"], now),
        created_at=row["created_at"],
    )


def _earlier(a: datetime | None, b: datetime | None) -> datetime | None:
    """The earlier of two expiries, None meaning never."""
    if a is None:
        return b
    if b is None:
        return a
    return min(a, b)


def narrowed(
    bound: Scope,
    *,
    channels: Sequence[str] | None,
    rate_limit: int | None,
    expires_in_days: int | None,
    now: datetime,
) -> Scope:
    """The scope of a key the ``bound`` key asks to create: what it asked for, or by default
    the most it may have; asking for more than the bound raises ScopeExceeded."""
    if channels is None:
        wanted = tuple(bound.channels)
    else:
        wanted = tuple(c for c in CHANNELS if c in channels)
        beyond = [c for c in wanted if c not in bound.channels]
        if beyond:
            raise ScopeExceeded(
                f"this key may not create a key for channel(s) {', '.join(beyond)}: a key can"
                " only create keys no broader than itself",
                field="channels",
            )
    if rate_limit is None:
        limit = min(DEFAULT_RATE_LIMIT, bound.rate_limit)
    elif rate_limit > bound.rate_limit:
        raise ScopeExceeded(
            f"rate_limit_per_minute {rate_limit} is above this key's own limit of"
            f" {bound.rate_limit}",
            field="rate_limit_per_minute",
        )
    else:
        limit = rate_limit
    if expires_in_days is None:
        expires_at = bound.expires_at
    else:
        expires_at = now + timedelta(days=expires_in_days)
        if bound.expires_at is not None and expires_at > bound.expires_at:
            raise ScopeExceeded(
                f"a key expiring in {expires_in_days} days would outlive this key, which"
                f" expires at {bound.expires_at.isoformat()}",
                field="expires_in_days",
            )
    return Scope(wanted, limit, expires_at)


async def create(
    db: Db,
    account_id: UUID,
    bound: Scope,
    *,
    name: str,
    channels: Sequence[str] | None = None,
    rate_limit: int | None = None,
    expires_in_days: int | None = None,
) -> KeyWithSecret:
    now = datetime.now(UTC)
    scope = narrowed(
        bound, channels=channels, rate_limit=rate_limit, expires_in_days=expires_in_days, now=now
    )
    secret = keys.new_key()
    row = await keys_db.insert_row(
        db,
        account_id,
        name=name,
        prefix=keys.display_prefix(secret),
        key_hash=keys.key_hash(secret),
        rate_limit=scope.rate_limit,
        channels=scope.channels,
        expires_at=scope.expires_at,
    )
    return KeyWithSecret(view(row, now), secret)


def _not_found(key_id: UUID) -> NotFound:
    return NotFound(f"API key {key_id} not found")


async def get(db: Db, account_id: UUID | None, key_id: UUID) -> KeyView:
    """One key of the account (any account's when ``account_id`` is None)."""
    row = await keys_db.get(db, key_id, account_id)
    if row is None:
        raise _not_found(key_id)
    return view(row)


@dataclass(frozen=True, slots=True)
class KeyPage:
    data: list[KeyView]
    #: (created_at, id) of the last key when there are more.
    next_position: tuple[datetime, UUID] | None


async def page(
    db: Db, account_id: UUID, *, after: tuple[datetime, UUID] | None, limit: int
) -> KeyPage:
    rows = await keys_db.page(db, account_id, after=after, limit=limit + 1)
    more = len(rows) > limit
    rows = rows[:limit]
    now = datetime.now(UTC)
    last = (rows[-1]["created_at"], rows[-1]["id"]) if more else None
    return KeyPage([view(r, now) for r in rows], last)


async def list_all(db: Db, account_id: UUID) -> list[KeyView]:
    """Every key of the account, newest first (the operator's list)."""
    if not await accounts_db.exists(db, account_id):
        raise NotFound(f"account {account_id} not found")
    found: list[KeyView] = []
    after: tuple[datetime, UUID] | None = None
    while True:
        batch = await page(db, account_id, after=after, limit=500)
        found.extend(batch.data)
        if batch.next_position is None:
            return found
        after = batch.next_position


async def revoke(db: Db, account_id: UUID | None, key_id: UUID) -> KeyView:
    """Revoke a key of the account (any account's when ``account_id`` is None); revoking a
    revoked key changes nothing."""
    row = await keys_db.revoke(db, key_id, account_id)
    if row is None:
        raise _not_found(key_id)
    return view(row)


async def regenerate(
    conn: asyncpg.Connection, account_id: UUID, bound: Scope, key_id: UUID
) -> KeyWithSecret:
    """A new secret for the same key; the old one is refused from now on. The key keeps its
    settings, narrowed to the caller's scope where they were broader."""
    async with conn.transaction():
        row = await keys_db.lock(conn, account_id, key_id)
        if row is None:
            raise _not_found(key_id)
        now = datetime.now(UTC)
        current = view(row, now)
        if current.status is not KeyStatus.ACTIVE:
            raise Conflict(
                f"API key {key_id} is {current.status.value}; create a new key instead",
                code="KEY_NOT_ACTIVE",
            )
        channels = tuple(c for c in current.channels if c in bound.channels)
        if not channels:
            raise ScopeExceeded(
                "this key shares no channel with the key to regenerate, so it may not"
                " regenerate it",
                field="channels",
            )
        secret = keys.new_key()
        updated = await keys_db.replace_secret(
            conn,
            key_id,
            key_hash=keys.key_hash(secret),
            prefix=keys.display_prefix(secret),
            channels=channels,
            rate_limit=min(current.rate_limit_per_minute, bound.rate_limit),
            expires_at=_earlier(current.expires_at, bound.expires_at),
        )
    return KeyWithSecret(view(updated, now), secret)
