"""Accounts, keys, connectors, routes and numbers: the operator's records, checked here and
written through broker.store (credits only through store.ledger)."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any
from uuid import UUID

import asyncpg
import phonenumbers

from broker import keys
from broker.errors import Conflict, InputError, NotFound
from broker.phone import check_sender, is_numeric_sender
from broker.store import Db, ledger
from broker.store import accounts as accounts_db
from broker.store import connectors as connectors_db
from broker.store import inbound as inbound_db
from broker.store import keys as keys_db
from broker.store import sender_ids as sender_ids_db
from broker.store.accounts import UNCHANGED, AccountRow
from broker.text import has_unstorable
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
        account_id = await accounts_db.insert(conn, name, region, new_secret())
        if credits:
            await _credit(conn, account_id, credits)
    return account_id


HELP_TEXT_MAX = 918


def _text(value: Any, *, field: str, most: int) -> str:
    if not isinstance(value, str) or not value.strip() or len(value) > most:
        raise InputError(f"{field} must be 1–{most} characters", field=field)
    if has_unstorable(value):
        raise InputError(
            f"{field} contains a NUL character or a lone surrogate",
            code="INVALID_CHARACTER",
            field=field,
        )
    return value


def sender_format(value: Any) -> str:
    """A default sender to set, in the form of any sender (broker.phone.check_sender); blank
    is refused (None, not '', clears it)."""
    sender = check_sender(value, field="default_sender")
    if sender is None:
        raise InputError(
            "`default_sender` must not be blank (null clears it)",
            code="INVALID_SENDER_ID",
            field="default_sender",
        )
    return sender


async def get_account(db: Db, account_id: UUID) -> AccountRow:
    found = await accounts_db.get(db, account_id)
    if found is None:
        raise NotFound(f"account {account_id} not found")
    return found


async def rotate_callback_secret(db: Db, account_id: UUID) -> AccountRow:
    """A fresh secret for per-message callback_url deliveries; the replaced one keeps signing
    beside it for 24 hours (a second rotation within them drops the older previous one)."""
    found = await accounts_db.rotate_webhook_secret(db, account_id, new_secret())
    if found is None:
        raise NotFound(f"account {account_id} not found")
    return found


async def update_account(
    conn: asyncpg.Connection,
    account_id: UUID,
    *,
    plan: str = UNCHANGED,
    currency: str = UNCHANGED,
    default_sender: str | None = UNCHANGED,
    help_text: str | None = UNCHANGED,
) -> AccountRow:
    """Change the given settings, all checked first (nothing changes on bad input).

    ``default_sender``/``help_text`` None clears them. An alphanumeric default sender must be
    a sender ID approved for this account; a number needs no approval.
    """
    if plan is not UNCHANGED:
        plan = _text(plan, field="plan", most=50).strip()
    if currency is not UNCHANGED:
        currency = _text(currency, field="currency", most=20).strip()
    if help_text is not UNCHANGED and help_text is not None:
        help_text = _text(help_text, field="help_text", most=HELP_TEXT_MAX)
    if default_sender is not UNCHANGED and default_sender is not None:
        default_sender = sender_format(default_sender)
    async with conn.transaction():
        if (
            default_sender is not UNCHANGED
            and default_sender is not None
            and not is_numeric_sender(default_sender)
            and not await sender_ids_db.is_approved(conn, account_id, default_sender)
        ):
            if not await accounts_db.exists(conn, account_id):
                raise NotFound(f"account {account_id} not found")
            raise InputError(
                f"sender ID {default_sender!r} is not approved for this account"
                " (register it with POST /v1/sender-ids and wait for approval)",
                code="INVALID_SENDER_ID",
                field="default_sender",
            )
        found = await accounts_db.update_settings(
            conn,
            account_id,
            plan=plan,
            currency=currency,
            default_sender=default_sender,
            help_text=help_text,
        )
    if found is None:
        raise NotFound(f"account {account_id} not found")
    return found


async def _credit(conn: asyncpg.Connection, account_id: UUID, amount: Decimal) -> Decimal:
    balance = await ledger.credit(conn, account_id, amount)
    if balance is None:
        if not await accounts_db.exists(conn, account_id):
            raise NotFound(f"account {account_id} not found")
        raise Conflict("the balance cannot go below zero", code="INSUFFICIENT_CREDITS")
    return balance


async def credit_account(conn: asyncpg.Connection, account_id: UUID, amount: Decimal) -> Decimal:
    """A top-up (or, negative, an adjustment) through the ledger; the new balance."""
    if amount == 0:
        raise InputError("amount must not be zero", field="amount")
    return await _credit(conn, account_id, amount)


async def account_books(conn: asyncpg.Connection, account_id: UUID) -> dict[str, Any]:
    """The account with its balance and the sum of its ledger, which must be equal, and its
    settings (not its callback secret)."""
    books = await ledger.books(conn, account_id)
    found = await accounts_db.get(conn, account_id)
    if books is None or found is None:
        raise NotFound(f"account {account_id} not found")
    settings = {
        "plan": found.plan,
        "currency": found.currency,
        "default_sender": found.default_sender,
        "help_text": found.help_text,
    }
    return {**asdict(books), "balanced": books.balanced, **settings}


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
    if not await accounts_db.exists(conn, account_id):
        raise NotFound(f"account {account_id} not found")
    secret = keys.new_key()
    expires_at = (
        datetime.now(UTC) + timedelta(days=expires_days) if expires_days is not None else None
    )
    row = await keys_db.insert_row(
        conn,
        account_id,
        name=name,
        prefix=keys.display_prefix(secret),
        key_hash=keys.key_hash(secret),
        rate_limit=rate_limit,
        channels=list(dict.fromkeys(channels)),
        expires_at=expires_at,
    )
    return CreatedKey(row["id"], secret, keys.display_prefix(secret), expires_at)


#: The settings an operator may give a connector (the connectors columns).
CONNECTOR_FIELDS = connectors_db.CONNECTOR_COLUMNS


def connector_spec(values: dict[str, Any]) -> connectors_db.ConnectorSpec:
    """A connector from operator settings: unknown ones are refused, missing ones default."""
    unknown = sorted(set(values) - set(CONNECTOR_FIELDS))
    if unknown:
        raise InputError(f"unknown connector setting(s): {', '.join(unknown)}")
    missing = [f for f in ("name", "host", "port", "system_id", "password") if f not in values]
    if missing:
        raise InputError(f"a connector needs {', '.join(missing)}")
    return connectors_db.ConnectorSpec(**values)


async def add_connector(conn: asyncpg.Connection, values: dict[str, Any]) -> None:
    spec = connector_spec(values)
    try:
        await connectors_db.insert(conn, spec)
    except asyncpg.UniqueViolationError as exc:
        raise Conflict(f"connector {spec.name!r} exists already") from exc
    except asyncpg.CheckViolationError as exc:
        raise InputError(f"invalid connector setting: {exc.constraint_name}") from exc


async def add_whatsapp_connector(
    conn: asyncpg.Connection, spec: connectors_db.WhatsAppSpec
) -> None:
    """A WhatsApp Business Cloud API number as a connector (routes of channel whatsapp)."""
    try:
        await connectors_db.insert_whatsapp(conn, spec)
    except asyncpg.UniqueViolationError as exc:
        raise Conflict(f"connector {spec.name!r} exists already") from exc
    except asyncpg.CheckViolationError as exc:
        raise InputError(f"invalid connector setting: {exc.constraint_name}") from exc


#: The kind of connector each channel's routes must lead to.
CHANNEL_KINDS = {"sms": "smpp", "whatsapp": "whatsapp"}


async def add_route(
    conn: asyncpg.Connection,
    prefix: str,
    connector: str,
    price: Decimal,
    channel: str = "sms",
    *,
    failover: tuple[int, int] | None = None,
) -> int:
    """The prefix's only route, or (``failover`` = (priority, weight)) one of its connectors
    beside the others: tried by priority, lower first, shared by weight within one."""
    prefix = prefix.lstrip("+")
    if not re.fullmatch(r"[0-9]{0,15}", prefix):
        raise InputError("prefix must be up to 15 digits (empty: default route)", field="prefix")
    if channel not in CHANNEL_KINDS:
        raise InputError("channel must be sms or whatsapp", field="channel")
    kind = await connectors_db.kind(conn, connector)
    if kind is None:
        raise NotFound(f"connector {connector!r} not found")
    if kind != CHANNEL_KINDS[channel]:
        raise InputError(
            f"connector {connector!r} is a {kind} connector: it cannot carry the {channel} channel",
            field="channel",
        )
    if failover is not None and not (0 <= failover[0] <= 1000 and 1 <= failover[1] <= 1000):
        raise InputError("priority must be 0–1000 and weight 1–1000", field="priority")
    return await connectors_db.put_route(conn, prefix, connector, price, channel, failover=failover)


async def add_number(conn: asyncpg.Connection, account_id: UUID, number: str, keyword: str) -> None:
    number = number.strip()
    if not re.fullmatch(r"\+?[0-9]{3,15}", number):
        raise InputError("number must be 3–15 digits, optionally with a leading +", field="number")
    if not await accounts_db.exists(conn, account_id):
        raise NotFound(f"account {account_id} not found")
    try:
        await inbound_db.add_number(conn, number.lstrip("+"), keyword.strip().upper(), account_id)
    except asyncpg.UniqueViolationError as exc:
        raise Conflict(f"number {number} with keyword {keyword!r} is taken") from exc
