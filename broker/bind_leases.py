"""Bind slots shared by every submit process: a connector's ``binds`` and ``tps`` hold across
processes and machines.

Each connector has ``binds`` numbered slots; a submit process opens a bind only for a slot it
leases in PostgreSQL (bind_leases), and submits at the connector's TPS times the share of the
slots it holds. Every ``every`` seconds a process notes itself alive, renews its leases, gives
back what is beyond its fair share (closing those binds first, so the carrier never sees one
too many), and takes free or expired slots up to its share. A process that dies stops renewing:
its leases run out after ``ttl`` seconds and the others take them over. A process that cannot
renew (PostgreSQL unreachable) closes its binds before its leases can have run out.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

import asyncpg

from broker.store import bind_leases as store


def fair_share(binds: int, processes: int) -> int:
    """The slots one of ``processes`` may hold: every slot is used when they share them all."""
    return -(-binds // max(1, processes))


def tps_share(tps: float | None, held: int, binds: int) -> float | None:
    """The TPS of a process holding ``held`` of ``binds`` slots (None: no limit; 0 slots: None,
    as nothing is submitted without a bind)."""
    if tps is None or held <= 0:
        return None
    return tps * min(held, binds) / binds


@dataclass(frozen=True, slots=True)
class Wanted:
    """A connector as the leases see it."""

    binds: int
    tps: float | None


#: Close these slots' binds of a connector (and return once they are closed).
CloseSlots = Callable[[str, set[int]], Awaitable[None]]


class BindLeases:
    def __init__(
        self, pool: asyncpg.Pool, gateway: str, *, ttl: float = 10.0, every: float = 2.0
    ) -> None:
        if not 0 < every * 2 < ttl:
            raise ValueError("leases must be renewed at least twice within their ttl")
        self.pool = pool
        #: The QUEUE_PREFIX: one gateway's processes share the slots (one gateway per prefix).
        self.gateway = gateway
        self.ttl = ttl
        self.every = every
        self.holder = uuid.uuid4()
        self.held: dict[str, set[int]] = {}
        self._renewed_at = 0.0

    @property
    def expired(self) -> bool:
        """Too long since the last renewal: the leases may have gone to another process."""
        return time.monotonic() - self._renewed_at > self.ttl - self.every

    async def round(
        self, connectors: Mapping[str, Wanted], close: CloseSlots
    ) -> dict[str, set[int]]:
        """One renewal: the slots held per connector afterwards (the binds to keep open)."""
        started = time.monotonic()
        async with self.pool.acquire() as conn:
            processes = await store.heartbeat(conn, self.holder, self.gateway, self.ttl)
            held = await store.renew(conn, self.holder, list(connectors), self.ttl)
        self._renewed_at = started
        excess: list[tuple[str, int]] = []
        for name, slots in held.items():
            want = connectors[name]
            share = fair_share(want.binds, processes)
            keep = sorted(s for s in slots if s < want.binds)[:share]
            drop = slots - set(keep)
            if drop:
                await close(name, drop)
                excess += [(name, s) for s in drop]
                held[name] = set(keep)
        for name in set(self.held) - set(connectors):
            # A connector removed (or no longer this process's): its binds go too.
            await close(name, self.held[name])
            excess += [(name, s) for s in self.held[name]]
        async with self.pool.acquire() as conn:
            await store.release(conn, self.holder, excess)
            for name, want in connectors.items():
                slots = held.setdefault(name, set())
                wanted = fair_share(want.binds, processes) - len(slots)
                slots |= await store.claim(
                    conn, self.holder, self.gateway, name, want.binds, wanted, self.ttl
                )
        self.held = {name: slots for name, slots in held.items() if name in connectors}
        return self.held

    async def release_all(self) -> None:
        """On a clean stop (the binds are closed): the slots go to the others at once."""
        async with self.pool.acquire() as conn:
            await store.release_all(conn, self.holder)
        self.held = {}
