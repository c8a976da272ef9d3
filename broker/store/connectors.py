"""Connectors (SMPP carriers) and the routes that send number prefixes to them."""

from __future__ import annotations

from dataclasses import astuple, dataclass, fields
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

#: A route per prefix: adding one for a prefix that has a route replaces it.
UPSERT_ROUTE = """
INSERT INTO routes (prefix, connector, price) VALUES ($1, $2, $3)
ON CONFLICT (prefix) DO UPDATE SET connector = EXCLUDED.connector, price = EXCLUDED.price
RETURNING id
"""

INSERT_ROUTE_IF_ABSENT = """
INSERT INTO routes (prefix, connector, price) VALUES ($1, $2, $3)
ON CONFLICT (prefix) DO NOTHING
RETURNING id
"""

#: Every connector with all its settings, as the submit worker binds them.
ALL_CONNECTORS = "SELECT * FROM connectors ORDER BY name"

#: Every route with its connector's long-message settings (what a text costs in parts).
ROUTES_WITH_MODES = """
SELECT r.prefix, r.connector, r.price, c.long_mode, c.gsm7_packed
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
    """Every connectors row (all columns), by name."""
    return list(await db.fetch(ALL_CONNECTORS))


async def put_route(db: Db, prefix: str, connector: str, price: Decimal) -> int:
    route_id: int = await db.fetchval(UPSERT_ROUTE, prefix, connector, price)
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


async def routes(db: Db) -> list[RouteRow]:
    rows: list[asyncpg.Record] = await db.fetch(ROUTES_WITH_MODES)
    return [
        RouteRow(r["prefix"], r["connector"], r["price"], r["long_mode"], r["gsm7_packed"])
        for r in rows
    ]
