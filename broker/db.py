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


async def create_pool(dsn: str, *, size: int = 10) -> asyncpg.Pool:
    try:
        pool = await asyncpg.create_pool(
            dsn, min_size=1, max_size=size, command_timeout=30, timeout=10
        )
    except CONNECTION_ERRORS as exc:
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
