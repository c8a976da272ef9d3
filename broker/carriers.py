"""Connectors and routes as the operator changes them while the gateway runs: settings updated,
a connector disabled or enabled, routes listed and removed. Workers see each change at their
next refresh (a few seconds), without a restart."""

from __future__ import annotations

import asyncpg

from broker.errors import InputError, NotFound
from broker.store import connectors as store
from broker.store.connectors import ConnectorChange


def check_change(change: ConnectorChange) -> None:
    """The limits the schema also holds, as clear errors before anything is written."""
    limits = [
        (change.port is None or 0 < change.port < 65536, "port", "must be 1..65535"),
        (change.binds is None or 1 <= change.binds <= 100, "binds", "must be 1..100"),
        (
            change.window_size is None or 1 <= change.window_size <= 1000,
            "window",
            "must be 1..1000",
        ),
        (change.tps is None or change.tps > 0, "tps", "must be positive"),
        (
            change.failover_after is None or 1 <= change.failover_after <= 86400,
            "failover_after",
            "must be 1..86400 seconds",
        ),
    ]
    for ok, field, problem in limits:
        if not ok:
            raise InputError(f"{field} {problem}", field=field)


async def update_connector(conn: asyncpg.Connection, name: str, change: ConnectorChange) -> None:
    check_change(change)
    try:
        found = await store.update(conn, name, change)
    except asyncpg.CheckViolationError as exc:
        raise InputError(f"the schema refuses that value ({exc.constraint_name})") from exc
    if not found:
        raise NotFound(f"connector {name!r} not found")


async def set_enabled(conn: asyncpg.Connection, name: str, enabled: bool) -> None:
    """A disabled connector is routed to by nothing and bound by no worker."""
    await update_connector(conn, name, ConnectorChange(enabled=enabled))


async def remove_route(
    conn: asyncpg.Connection, prefix: str, channel: str, connector: str | None
) -> int:
    removed = await store.remove_route(conn, prefix.lstrip("+"), channel, connector)
    if not removed:
        whose = f" to {connector}" if connector else ""
        raise NotFound(f"no {channel} route for prefix {prefix or '(default)'}{whose}")
    return removed
