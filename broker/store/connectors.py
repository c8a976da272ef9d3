"""Connectors (SMPP carriers, WhatsApp Cloud API numbers) and the routes that send number
prefixes of a channel to them."""

from __future__ import annotations

from dataclasses import astuple, dataclass, field, fields
from decimal import Decimal

import asyncpg

from broker.store import Db


@dataclass(frozen=True, slots=True)
class ConnectorSpec:
    """A connectors row as an operator gives it; the defaults are the schema's column defaults
    (tests/test_store.py holds them equal)."""

    name: str
    host: str
    port: int
    system_id: str
    password: str
    system_type: str = ""
    binds: int = 1
    window_size: int = 10
    tps: float | Decimal | None = None
    bind_mode: str = "trx"
    dlr_id_format: str = "as-is"
    long_mode: str = "udh8"
    gsm7_packed: bool = False


#: Column names in ConnectorSpec order.
CONNECTOR_COLUMNS: tuple[str, ...] = tuple(f.name for f in fields(ConnectorSpec))

INSERT_CONNECTOR = """
INSERT INTO connectors (name, host, port, system_id, password, system_type, binds, window_size,
                        tps, bind_mode, dlr_id_format, long_mode, gsm7_packed)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
"""

#: Insert, or point an existing connector of this name at the spec's port (the dev simulator
#: listens on a new port at each start); its other settings stay as the operator left them.
INSERT_OR_REPOINT = INSERT_CONNECTOR + " ON CONFLICT (name) DO UPDATE SET port = EXCLUDED.port"

CONNECTOR_EXISTS = "SELECT true FROM connectors WHERE name = $1"

#: A route per prefix and channel: adding one for a prefix that has a route replaces it.
UPSERT_ROUTE = """
INSERT INTO routes (prefix, connector, price, channel) VALUES ($1, $2, $3, $4)
ON CONFLICT (prefix, channel) DO UPDATE SET connector = EXCLUDED.connector,
                                            price = EXCLUDED.price
RETURNING id
"""

INSERT_ROUTE_IF_ABSENT = """
INSERT INTO routes (prefix, connector, price) VALUES ($1, $2, $3)
ON CONFLICT (prefix, channel) DO NOTHING
RETURNING id
"""

INSERT_WHATSAPP = """
INSERT INTO connectors (name, kind, wa_url, wa_phone_number_id, wa_token, wa_app_secret,
                        wa_verify_token)
VALUES ($1, 'whatsapp', $2, $3, $4, $5, $6)
"""

CONNECTOR_KIND = "SELECT kind FROM connectors WHERE name = $1"

#: The WhatsApp connectors, with what their sender and their webhooks need.
WHATSAPP_CONNECTORS = """
SELECT name, wa_url, wa_phone_number_id, wa_token, wa_app_secret, wa_verify_token, scope
  FROM connectors WHERE kind = 'whatsapp' ORDER BY name
"""
WHATSAPP_CONNECTOR = """
SELECT name, wa_url, wa_phone_number_id, wa_token, wa_app_secret, wa_verify_token, scope
  FROM connectors WHERE kind = 'whatsapp' AND name = $1
"""

#: Every SMPP connector with all its settings, as the submit worker binds them.
ALL_CONNECTORS = "SELECT * FROM connectors WHERE kind = 'smpp' ORDER BY name"

#: Every route with its connector's long-message settings (what a text costs in parts).
ROUTES_WITH_MODES = """
SELECT r.prefix, r.connector, r.price, c.long_mode, c.gsm7_packed, r.channel
  FROM routes r JOIN connectors c ON c.name = r.connector
"""


async def insert(db: Db, spec: ConnectorSpec) -> None:
    """Raises asyncpg.UniqueViolationError for a taken name, CheckViolationError for a value
    outside the schema's constraints."""
    await db.execute(INSERT_CONNECTOR, *astuple(spec))


async def insert_or_repoint(db: Db, spec: ConnectorSpec) -> None:
    await db.execute(INSERT_OR_REPOINT, *astuple(spec))


async def exists(db: Db, name: str) -> bool:
    return bool(await db.fetchval(CONNECTOR_EXISTS, name))


async def all_rows(db: Db) -> list[asyncpg.Record]:
    """Every SMPP connectors row (all columns), by name."""
    return list(await db.fetch(ALL_CONNECTORS))


async def put_route(
    db: Db, prefix: str, connector: str, price: Decimal, channel: str = "sms"
) -> int:
    route_id: int = await db.fetchval(UPSERT_ROUTE, prefix, connector, price, channel)
    return route_id


async def add_route_if_absent(db: Db, prefix: str, connector: str, price: Decimal) -> int | None:
    """The new route's id, or None when the prefix has a route already (left as it is)."""
    route_id: int | None = await db.fetchval(INSERT_ROUTE_IF_ABSENT, prefix, connector, price)
    return route_id


@dataclass(frozen=True, slots=True)
class RouteRow:
    prefix: str
    connector: str
    price: Decimal
    long_mode: str
    gsm7_packed: bool
    channel: str = "sms"


async def routes(db: Db) -> list[RouteRow]:
    rows: list[asyncpg.Record] = await db.fetch(ROUTES_WITH_MODES)
    return [
        RouteRow(
            r["prefix"], r["connector"], r["price"], r["long_mode"], r["gsm7_packed"], r["channel"]
        )
        for r in rows
    ]


@dataclass(frozen=True, slots=True)
class WhatsAppSpec:
    """A WhatsApp Business Cloud API number as an operator gives it."""

    name: str
    #: The API's base URL up to its version, e.g. https://graph.facebook.com/v21.0
    url: str
    phone_number_id: str
    token: str = field(repr=False)
    app_secret: str = field(repr=False)
    verify_token: str = field(repr=False)


@dataclass(frozen=True, slots=True)
class WhatsAppConnector(WhatsAppSpec):
    """A stored one, with the scope its statuses are matched within (connectors.scope)."""

    scope: str = ""


async def insert_whatsapp(db: Db, spec: WhatsAppSpec) -> None:
    """Raises asyncpg.UniqueViolationError for a taken name, CheckViolationError for a value
    outside the schema's constraints."""
    await db.execute(
        INSERT_WHATSAPP,
        spec.name,
        spec.url,
        spec.phone_number_id,
        spec.token,
        spec.app_secret,
        spec.verify_token,
    )


async def kind(db: Db, name: str) -> str | None:
    """'smpp' or 'whatsapp'; None for no such connector."""
    found: str | None = await db.fetchval(CONNECTOR_KIND, name)
    return found


def _whatsapp(row: asyncpg.Record) -> WhatsAppConnector:
    return WhatsAppConnector(
        row["name"],
        row["wa_url"],
        row["wa_phone_number_id"],
        row["wa_token"],
        row["wa_app_secret"],
        row["wa_verify_token"],
        row["scope"],
    )


async def whatsapp_connectors(db: Db) -> list[WhatsAppConnector]:
    return [_whatsapp(r) for r in await db.fetch(WHATSAPP_CONNECTORS)]


async def whatsapp_connector(db: Db, name: str) -> WhatsAppConnector | None:
    row = await db.fetchrow(WHATSAPP_CONNECTOR, name)
    return _whatsapp(row) if row is not None else None
