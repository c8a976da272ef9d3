"""Bind slot leases (bind_leases) and the submit processes that hold them (submit_holders)."""

from __future__ import annotations

from collections.abc import Sequence
from uuid import UUID

import asyncpg

#: This process (of gateway $3) is alive; how many of the gateway's are (seen within $2 s).
HEARTBEAT = """
WITH beat AS (
    INSERT INTO submit_holders (holder, gateway, seen_at) VALUES ($1, $3, now())
    ON CONFLICT (holder) DO UPDATE SET seen_at = now()
), gone AS (
    DELETE FROM submit_holders WHERE seen_at < now() - make_interval(secs => $2 * 10)
)
SELECT count(*) + 1 FROM submit_holders
 WHERE holder <> $1 AND gateway = $3 AND seen_at >= now() - make_interval(secs => $2)
"""

#: Keep this process's leases of the connectors it still runs for another $3 seconds; the
#: slots it holds, per connector.
RENEW = """
UPDATE bind_leases SET expires_at = now() + make_interval(secs => $3)
 WHERE holder = $1 AND connector = ANY($2::text[]) AND expires_at >= now()
RETURNING connector, slot
"""

#: Give slots back (their binds are closed already).
RELEASE = """
DELETE FROM bind_leases
 WHERE holder = $1 AND (connector, slot) IN (SELECT * FROM unnest($2::text[], $3::int[]))
"""

#: Take up to $4 free (or expired) slots of connector $2, which has $3 binds, in gateway $6.
CLAIM = """
INSERT INTO bind_leases (gateway, connector, slot, holder, expires_at)
SELECT $6, $2, s, $1, now() + make_interval(secs => $5)
  FROM generate_series(0, $3 - 1) AS s
 WHERE NOT EXISTS (SELECT 1 FROM bind_leases b
                    WHERE b.gateway = $6 AND b.connector = $2 AND b.slot = s
                      AND b.expires_at >= now())
 ORDER BY s
 LIMIT $4
ON CONFLICT (gateway, connector, slot) DO UPDATE
   SET holder = EXCLUDED.holder, expires_at = EXCLUDED.expires_at
 WHERE bind_leases.expires_at < now()
RETURNING slot
"""

#: Leases a process gives up when it stops.
RELEASE_ALL = """
WITH gone AS (DELETE FROM submit_holders WHERE holder = $1)
DELETE FROM bind_leases WHERE holder = $1
"""


async def heartbeat(
    conn: asyncpg.Connection, holder: UUID, gateway: str, alive_within: float
) -> int:
    """Note this process alive; how many of its gateway's submit processes are (itself too)."""
    count: int = await conn.fetchval(HEARTBEAT, holder, alive_within, gateway)
    return count


async def renew(
    conn: asyncpg.Connection, holder: UUID, connectors: Sequence[str], ttl: float
) -> dict[str, set[int]]:
    held: dict[str, set[int]] = {}
    for row in await conn.fetch(RENEW, holder, list(connectors), ttl):
        held.setdefault(row["connector"], set()).add(row["slot"])
    return held


async def release(conn: asyncpg.Connection, holder: UUID, slots: Sequence[tuple[str, int]]) -> None:
    if slots:
        await conn.execute(RELEASE, holder, [c for c, _ in slots], [s for _, s in slots])


async def claim(
    conn: asyncpg.Connection,
    holder: UUID,
    gateway: str,
    connector: str,
    binds: int,
    wanted: int,
    ttl: float,
) -> set[int]:
    if wanted <= 0:
        return set()
    rows = await conn.fetch(CLAIM, holder, connector, binds, wanted, ttl, gateway)
    return {r["slot"] for r in rows}


async def release_all(conn: asyncpg.Connection, holder: UUID) -> None:
    await conn.execute(RELEASE_ALL, holder)
