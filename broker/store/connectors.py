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

#: The only route of a prefix and channel: the connectors it named before are dropped.
REPLACE_ROUTE = """
WITH dropped AS (
    DELETE FROM routes WHERE prefix = $1 AND channel = $4 AND connector <> $2
)
INSERT INTO routes (prefix, connector, price, channel, priority, weight)
VALUES ($1, $2, $3, $4, 0, 1)
ON CONFLICT (prefix, channel, connector) DO UPDATE
   SET price = EXCLUDED.price, priority = 0, weight = 1
RETURNING id
"""

#: One connector of a prefix's routes, beside the others (failover by priority, weight).
PUT_ROUTE_ENTRY = """
INSERT INTO routes (prefix, connector, price, channel, priority, weight)
VALUES ($1, $2, $3, $4, $5, $6)
ON CONFLICT (prefix, channel, connector) DO UPDATE
   SET price = EXCLUDED.price, priority = EXCLUDED.priority, weight = EXCLUDED.weight
RETURNING id
"""

INSERT_ROUTE_IF_ABSENT = """
INSERT INTO routes (prefix, connector, price)
SELECT $1, $2, $3
 WHERE NOT EXISTS (SELECT 1 FROM routes WHERE prefix = $1 AND channel = 'sms')
ON CONFLICT DO NOTHING
RETURNING id
"""

#: Routes of a channel's prefix removed (one connector's, or all).
REMOVE_ROUTE = """
DELETE FROM routes
 WHERE prefix = $1 AND channel = $2 AND ($3::text IS NULL OR connector = $3)
RETURNING id
"""

ROUTE_LIST = """
SELECT r.prefix, r.channel, r.connector, r.price, r.priority, r.weight, c.enabled,
       o.since AS out_since, o.reason AS out_reason
  FROM routes r JOIN connectors c ON c.name = r.connector
  LEFT JOIN connector_outages o ON o.connector = r.connector
 ORDER BY r.channel, r.prefix, r.priority, r.connector
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

#: Every enabled SMPP connector with all its settings, as the submit worker binds them.
ALL_CONNECTORS = "SELECT * FROM connectors WHERE kind = 'smpp' AND enabled ORDER BY name"

#: The operator's view: settings (never a password or token), state, and binds leased now.
CONNECTOR_LIST = """
SELECT c.name, c.kind, c.host, c.port, c.system_id, c.binds, c.window_size, c.tps,
       c.bind_mode, c.dlr_id_format, c.long_mode, c.enabled, c.failover_after,
       o.since AS out_since, o.reason AS out_reason,
       (SELECT count(*) FROM bind_leases b
         WHERE b.connector = c.name AND b.expires_at > now()) AS slots_leased
  FROM connectors c LEFT JOIN connector_outages o ON o.connector = c.name
 ORDER BY c.name
"""

#: Settings changed in place ($2.. NULL: unchanged); no row: no such connector.
UPDATE_CONNECTOR = """
UPDATE connectors SET
    host = coalesce($2, host), port = coalesce($3, port), system_id = coalesce($4, system_id),
    password = coalesce($5, password), binds = coalesce($6, binds),
    window_size = coalesce($7, window_size),
    tps = CASE WHEN $8::boolean THEN $9::numeric ELSE tps END,
    dlr_id_format = coalesce($10, dlr_id_format), long_mode = coalesce($11, long_mode),
    failover_after = coalesce($12, failover_after), enabled = coalesce($13, enabled)
 WHERE name = $1
RETURNING name
"""

#: Every route of an enabled connector, with the connector's long-message settings (what a
#: text costs in parts) and whether it is out now.
ROUTES_WITH_MODES = """
SELECT r.prefix, r.connector, r.price, c.long_mode, c.gsm7_packed, r.channel, r.priority,
       r.weight, o.connector IS NOT NULL AS out
  FROM routes r JOIN connectors c ON c.name = r.connector
  LEFT JOIN connector_outages o ON o.connector = r.connector
 WHERE c.enabled
"""

#: A connector out (first report wins: `since` is when it went out).
MARK_OUT = """
INSERT INTO connector_outages (connector, reason) VALUES ($1, $2)
ON CONFLICT (connector) DO NOTHING
RETURNING since
"""
MARK_BACK = "DELETE FROM connector_outages WHERE connector = $1 RETURNING since"
#: Each connector out, and for how many seconds.
OUTAGES = "SELECT connector, extract(epoch FROM now() - since) AS seconds FROM connector_outages"


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
    db: Db,
    prefix: str,
    connector: str,
    price: Decimal,
    channel: str = "sms",
    *,
    failover: tuple[int, int] | None = None,
) -> int:
    """The prefix's only route (``failover`` None), or one of its connectors with
    ``failover`` = (priority, weight) beside the others."""
    if failover is None:
        route_id: int = await db.fetchval(REPLACE_ROUTE, prefix, connector, price, channel)
    else:
        route_id = await db.fetchval(PUT_ROUTE_ENTRY, prefix, connector, price, channel, *failover)
    return route_id


async def remove_route(db: Db, prefix: str, channel: str, connector: str | None) -> int:
    """How many routes were removed."""
    return len(await db.fetch(REMOVE_ROUTE, prefix, channel, connector))


async def route_list(db: Db) -> list[asyncpg.Record]:
    return list(await db.fetch(ROUTE_LIST))


async def mark_out(db: Db, connector: str, reason: str) -> bool:
    """True if this report put the connector out (it was not already)."""
    return await db.fetchval(MARK_OUT, connector, reason[:500]) is not None


async def outages(db: Db) -> dict[str, float]:
    """Connectors out now, and for how many seconds."""
    return {r["connector"]: float(r["seconds"]) for r in await db.fetch(OUTAGES)}


async def mark_back(db: Db, connector: str) -> bool:
    """True if the connector was out."""
    return await db.fetchval(MARK_BACK, connector) is not None


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
    priority: int = 0
    weight: int = 1
    out: bool = False


async def routes(db: Db) -> list[RouteRow]:
    rows: list[asyncpg.Record] = await db.fetch(ROUTES_WITH_MODES)
    return [
        RouteRow(
            r["prefix"],
            r["connector"],
            r["price"],
            r["long_mode"],
            r["gsm7_packed"],
            r["channel"],
            r["priority"],
            r["weight"],
            r["out"],
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


@dataclass(frozen=True, slots=True)
class ConnectorChange:
    """What `connector update` changes (None: left as it is); ``tps`` is set when ``set_tps``
    (None then means no cap)."""

    host: str | None = None
    port: int | None = None
    system_id: str | None = None
    password: str | None = None
    binds: int | None = None
    window_size: int | None = None
    set_tps: bool = False
    tps: float | None = None
    dlr_id_format: str | None = None
    long_mode: str | None = None
    failover_after: int | None = None
    enabled: bool | None = None


async def update(db: Db, name: str, change: ConnectorChange) -> bool:
    """False: no such connector. Raises CheckViolationError for a value the schema refuses."""
    found = await db.fetchval(UPDATE_CONNECTOR, name, *astuple(change))
    return found is not None


async def listing(db: Db) -> list[asyncpg.Record]:
    return list(await db.fetch(CONNECTOR_LIST))
