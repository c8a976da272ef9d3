"""Bind slot leases on the real database: several submit processes (here BindLeases holders)
share a connector's binds without ever holding more than it has, share them out fairly, give
back what they no longer need (closing the binds first), and take over a dead one's slots."""

from __future__ import annotations

import asyncio
import uuid

import asyncpg
import pytest
from hypothesis import given
from hypothesis import strategies as st

from broker.bind_leases import BindLeases, Wanted, fair_share, tps_share


@given(st.integers(1, 64), st.integers(1, 64))
def test_fair_shares_use_every_slot_and_never_more(binds: int, processes: int) -> None:
    share = fair_share(binds, processes)
    assert share * processes >= binds, "together they can hold every slot"
    assert share <= binds and (share - 1) * processes < binds


@pytest.mark.parametrize(
    ("tps", "held", "binds", "expected"),
    [(50, 1, 2, 25), (50, 2, 2, 50), (50, 0, 2, None), (None, 1, 2, None), (30, 1, 3, 10)],
)
def test_tps_follows_the_slots_held(
    tps: float | None, held: int, binds: int, expected: float | None
) -> None:
    assert tps_share(tps, held, binds) == expected


@pytest.fixture
async def connector(pool: asyncpg.Pool) -> str:
    name = f"bl{uuid.uuid4().hex[:8]}"
    await pool.execute(
        "INSERT INTO connectors (name, host, port, system_id, password, binds)"
        " VALUES ($1, 'h', 1, 's', 'p', 3)",
        name,
    )
    return name


class Closed:
    def __init__(self) -> None:
        self.slots: list[tuple[str, int]] = []

    async def __call__(self, connector: str, slots: set[int]) -> None:
        self.slots += [(connector, s) for s in sorted(slots)]


async def _holders(pool: asyncpg.Pool, connector: str) -> dict[uuid.UUID, set[int]]:
    rows = await pool.fetch(
        "SELECT holder, slot FROM bind_leases WHERE connector = $1 AND expires_at > now()",
        connector,
    )
    found: dict[uuid.UUID, set[int]] = {}
    for r in rows:
        found.setdefault(r["holder"], set()).add(r["slot"])
    return found


async def test_processes_share_the_slots_and_a_dead_ones_are_taken_over(
    pool: asyncpg.Pool, connector: str
) -> None:
    want = {connector: Wanted(binds=3, tps=30.0)}
    gateway = f"g{uuid.uuid4().hex[:8]}"
    first = BindLeases(pool, gateway, ttl=1.2, every=0.3)
    closed = Closed()
    assert await first.round(want, closed) == {connector: {0, 1, 2}}
    second = BindLeases(pool, gateway, ttl=1.2, every=0.3)
    assert await second.round(want, Closed()) == {connector: set()}, "nothing free yet"
    # The first sees two processes: it closes one bind and gives its slot back...
    assert await first.round(want, closed) == {connector: {0, 1}}
    assert closed.slots == [(connector, 2)]
    # ... which the second takes.
    assert await second.round(want, Closed()) == {connector: {2}}
    holders = await _holders(pool, connector)
    assert sorted(map(len, holders.values())) == [1, 2]
    assert sum(map(len, holders.values())) == 3
    # The first dies (stops renewing): its leases run out and the second takes them.
    await asyncio.sleep(1.3)
    assert await second.round(want, Closed()) == {connector: {0, 1, 2}}
    await second.release_all()
    assert await _holders(pool, connector) == {}


async def test_many_processes_at_once_never_hold_more_than_the_binds(
    pool: asyncpg.Pool, connector: str
) -> None:
    want = {connector: Wanted(binds=3, tps=None)}
    gateway = f"g{uuid.uuid4().hex[:8]}"
    leases = [BindLeases(pool, gateway, ttl=5.0, every=1.0) for _ in range(6)]
    for _ in range(6):  # a slot given back in one round is taken in a later one
        held = await asyncio.gather(*(lease.round(want, Closed()) for lease in leases))
        slots = [s for h in held for s in h[connector]]
        assert len(slots) == len(set(slots)) <= 3
    holders = await _holders(pool, connector)
    assert sum(map(len, holders.values())) == 3
    for lease in leases:
        await lease.release_all()
