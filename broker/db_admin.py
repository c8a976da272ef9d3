"""Creating and dropping whole databases, for `smsbroker dev` and the benchmark.

Database names cannot be query parameters; callers pass names they generated or read from their
own configuration, and the name is quoted as an identifier.
"""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

import asyncpg

from broker.db import CONNECTION_ERRORS
from broker.errors import DependencyUnavailable
from broker.migrate import migrate


def with_database(dsn: str, name: str) -> str:
    return urlunsplit(urlsplit(dsn)._replace(path=f"/{name}"))


def database_name(dsn: str) -> str:
    return urlsplit(dsn).path.lstrip("/")


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


async def admin_connection(dsn: str) -> asyncpg.Connection:
    """A connection to the server's `postgres` database (where databases are made)."""
    try:
        conn: asyncpg.Connection = await asyncpg.connect(with_database(dsn, "postgres"), timeout=10)
    except CONNECTION_ERRORS as exc:
        where = urlsplit(dsn).netloc.rpartition("@")[2]
        raise DependencyUnavailable(f"PostgreSQL unreachable at {where}: {exc}") from exc
    return conn


async def ensure_database(dsn: str) -> None:
    """Create the database ``dsn`` names if it does not exist yet (a newcomer's first run)."""
    name = database_name(dsn)
    conn = await admin_connection(dsn)
    try:
        if not await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name):
            await conn.execute(f"CREATE DATABASE {_quoted(name)}")
    finally:
        await conn.close()


async def create_database(server_dsn: str, name: str) -> str:
    """Create and migrate database ``name`` on the server of ``server_dsn``; return its DSN."""
    conn = await admin_connection(server_dsn)
    try:
        await conn.execute(f"CREATE DATABASE {_quoted(name)}")
    finally:
        await conn.close()
    dsn = with_database(server_dsn, name)
    await migrate(dsn)
    return dsn


async def drop_database(server_dsn: str, name: str) -> None:
    conn = await admin_connection(server_dsn)
    try:
        await conn.execute(f"DROP DATABASE IF EXISTS {_quoted(name)} WITH (FORCE)")
    finally:
        await conn.close()
