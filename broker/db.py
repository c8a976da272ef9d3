"""PostgreSQL access: the pool, transactions whose side effects wait for their commit, and the
translation of connection failures into our errors."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import asyncpg

from broker.errors import DependencyUnavailable
from broker.store import Db

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


#: Effects waiting for the commit of a connection's transaction(), one list per open level
#: (the outermost first, then each savepoint); a connection is here only while one is open.
_waiting: dict[object, list[list[Callable[[], None]]]] = {}


@asynccontextmanager
async def transaction(conn: asyncpg.Connection) -> AsyncIterator[asyncpg.Connection]:
    """``conn.transaction()`` that runs the after_commit effects registered inside it once the
    outermost one has committed, and drops them when it (or the savepoint they were registered
    in) rolls back.

    A batch whose commit fails is redone whole; what its first attempt counted must not be
    counted again, since only the attempt that commits happened.
    """
    levels = _waiting.setdefault(conn, [])
    levels.append([])
    try:
        async with conn.transaction():
            yield conn
    finally:
        effects = levels.pop()
        if not levels:
            del _waiting[conn]
    # Only a commit (or a released savepoint) gets here.
    if levels:
        levels[-1].extend(effects)
    else:
        for effect in effects:
            effect()


def after_commit(db: Db, effect: Callable[[], None]) -> None:
    """Run ``effect`` (counting a metric) once what was just written on ``db`` is committed.

    Inside transaction(): when its outermost block commits, never if it rolls back. On a pool
    or a connection outside any transaction the statement committed already: now. A bare
    ``conn.transaction()`` tells nobody whether it commits, so it is refused (RuntimeError):
    open it with transaction() instead.
    """
    if isinstance(db, asyncpg.Pool) or not db.is_in_transaction():
        effect()
        return
    levels = _waiting.get(db)
    if not levels:
        raise RuntimeError(
            "after_commit inside conn.transaction(): open it with broker.db.transaction(conn)"
        )
    levels[-1].append(effect)
