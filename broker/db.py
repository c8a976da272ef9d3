"""PostgreSQL access: the pool, and the translation of connection failures into our errors."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg

from broker.errors import DependencyUnavailable

#: Errors that mean "PostgreSQL is not reachable right now", as opposed to a bad query.
CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    asyncpg.PostgresConnectionError,
    asyncpg.CannotConnectNowError,
    asyncpg.InterfaceError,
    asyncpg.AdminShutdownError,
    asyncpg.TooManyConnectionsError,
    TimeoutError,
)


async def _release(conn: asyncpg.Connection) -> None:
    """What a connection needs on its way back to the pool: no open transaction, nothing else.

    asyncpg's default reset (RESET ALL, UNLISTEN, advisory unlocks...) is a second round trip
    per checkout; the gateway sets no session state, listens to nothing and takes advisory
    locks only on connections of its own, so ending a stray transaction is all that is due.
    """
    if conn.is_in_transaction():
        await conn.execute("ROLLBACK")


async def create_pool(dsn: str, *, size: int = 10) -> asyncpg.Pool:
    try:
        pool = await asyncpg.create_pool(
            dsn, min_size=1, max_size=size, command_timeout=30, timeout=10, reset=_release
        )
    except (*CONNECTION_ERRORS, asyncpg.InvalidCatalogNameError) as exc:
        raise DependencyUnavailable(
            f"PostgreSQL unreachable: {exc}", code="DATABASE_UNAVAILABLE"
        ) from exc
    assert pool is not None
    return pool


@asynccontextmanager
async def unavailable_as_error() -> AsyncIterator[None]:
    """Turn a lost database connection into DependencyUnavailable (answered 503)."""
    try:
        yield
    except CONNECTION_ERRORS as exc:
        raise DependencyUnavailable(
            "the database is unreachable, try again shortly", code="DATABASE_UNAVAILABLE"
        ) from exc
