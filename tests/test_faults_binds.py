"""A connector's binds and TPS hold across submit processes: three of them against one connector
of 2 binds at 20 TPS never show the carrier a third bind or more than 20 submit_sm a second;
killed while holding slots, a process's slots go to the others and every message is delivered.

Before: each process opened the connector's `binds` and sent at its `tps` (2 processes: 2× both).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg

from broker.config import Settings
from tests.fault_slice import Slice, WorkerProcess, api_server, fault_slice

BINDS, TPS = 2, 20


class BindWatch:
    """The most binds the carrier had at once, sampled every 10 ms."""

    def __init__(self, piece: Slice) -> None:
        self.piece = piece
        self.most = 0
        self.now = 0

    async def run(self) -> None:
        while True:
            bound = self.piece.sim.stats["bound"]
            assert isinstance(bound, dict)
            self.now = int(bound["transceiver"])
            self.most = max(self.most, self.now)
            await asyncio.sleep(0.01)


@contextlib.asynccontextmanager
async def watching(piece: Slice) -> AsyncIterator[BindWatch]:
    watch = BindWatch(piece)
    task = asyncio.create_task(watch.run())
    try:
        yield watch
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def most_in_a_second(times: list[float]) -> int:
    """The most submit_sm the carrier took within any one second."""
    times = sorted(times)
    most, start = 0, 0
    for end, at in enumerate(times):
        while at - times[start] >= 1.0:
            start += 1
        most = max(most, end - start + 1)
    return most


async def test_three_submit_processes_share_two_binds_and_the_tps(
    settings: Settings, pool: asyncpg.Pool, tmp_path: Path
) -> None:
    async with fault_slice(settings, pool, "binds-share", "614915730", credits=1000) as piece:
        await pool.execute(
            "UPDATE connectors SET binds = $2, tps = $3 WHERE name = $1", piece.name, BINDS, TPS
        )
        others = WorkerProcess(
            piece.settings, ("charge", "events", "webhooks"), tmp_path / "others.log"
        )
        submits = [
            WorkerProcess(piece.settings, ("submit",), tmp_path / f"submit-{i}.log")
            for i in range(3)
        ]
        try:
            async with api_server(piece.settings) as piece.api, watching(piece) as watch:
                for proc in (others, *submits):
                    await proc.start()
                ids = await piece.send_many(120)
                statuses = await piece.wait_final(ids)
                assert set(statuses.values()) == {"delivered"}
                first_round = len(piece.sim.submitted)
                # A process holding slots dies: the others take its slots over.
                holders = await pool.fetchval(
                    "SELECT count(DISTINCT holder) FROM bind_leases WHERE connector = $1",
                    piece.name,
                )
                assert 1 <= holders <= BINDS
                await _kill_a_holder(watch, submits)
                more = await piece.send_many(40, offset=120)
                statuses = await piece.wait_final(more)
                assert set(statuses.values()) == {"delivered"}
                async with asyncio.timeout(30):
                    while watch.now < BINDS:
                        await asyncio.sleep(0.1)
        finally:
            for proc in (*submits, others):
                await proc.kill()
        assert watch.most <= BINDS, f"the carrier saw {watch.most} binds at once"
        times = [r.submitted_at for r in piece.sim.submitted]
        assert len(times) >= first_round + 40
        busiest = most_in_a_second(times[:first_round])
        # GCRA lets each holder burst one submit ahead of its pace.
        assert busiest <= TPS + BINDS, f"{busiest} submit_sm in one second at {TPS} TPS"
        await piece.assert_charged_once(ids + more)


async def _kill_a_holder(watch: BindWatch, submits: list[WorkerProcess]) -> None:
    """SIGKILL submit processes one by one until one that held a bind is gone (the carrier's
    bind count drops: the kernel resets a killed process's connections)."""
    for proc in submits[:-1]:
        await proc.kill()
        await asyncio.sleep(1.0)
        if watch.now < BINDS:
            return
    raise AssertionError("no killed process held a bind")
