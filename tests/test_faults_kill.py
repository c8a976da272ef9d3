"""kill -9 of a worker process while messages flow: nothing accepted is lost, nothing is charged
twice. The workers run as real ``smsbroker worker`` processes; the API runs in this process."""

from __future__ import annotations

import asyncio
from pathlib import Path

import asyncpg

from broker.config import Settings
from tests.fault_slice import WorkerProcess, api_server, fault_slice

HALF = 150
OTHER_ROLES = ("charge", "events", "webhooks")


async def test_kill_worker_during_ingest_and_charge(
    settings: Settings, pool: asyncpg.Pool, tmp_path: Path
) -> None:
    async with fault_slice(settings, pool, "fk-charge", "614915701") as piece:
        first = WorkerProcess(piece.settings, (), tmp_path / "worker-1.log")
        second = WorkerProcess(piece.settings, (), tmp_path / "worker-2.log")
        try:
            async with api_server(piece.settings) as piece.api:
                await first.start()
                sender = asyncio.ensure_future(piece.send_many(HALF))
                # Kill once the charge worker is visibly at work, with more still arriving.
                await piece.wait_count(30, worker=first)
                await first.kill()
                ids = await sender
                # Accepted while no worker runs: they wait, durable, in the ingest queue.
                ids += await piece.send_many(HALF, offset=HALF)
                await second.start()
                statuses = await piece.wait_final(ids)
            assert set(statuses.values()) == {"delivered"}, second.log_tail()
            await piece.assert_charged_once(ids)
            await piece.assert_parts_unique(ids)
        finally:
            await first.kill()
            await second.kill()


async def test_kill_submit_worker_mid_submission(
    settings: Settings, pool: asyncpg.Pool, tmp_path: Path
) -> None:
    async with fault_slice(settings, pool, "fk-submit", "614915702") as piece:
        others = WorkerProcess(piece.settings, OTHER_ROLES, tmp_path / "others.log")
        first = WorkerProcess(piece.settings, ("submit",), tmp_path / "submit-1.log")
        second = WorkerProcess(piece.settings, ("submit",), tmp_path / "submit-2.log")
        # Slow answers keep many submit_sm in flight when the kill comes.
        piece.sim.set_faults(submit_delay=0.05)
        try:
            async with api_server(piece.settings) as piece.api:
                await others.start()
                await first.start()
                ids = await piece.send_many(2 * HALF)
                await piece.wait_submits(40, worker=first)
                await first.kill()
                await second.start()
                statuses = await piece.wait_final(ids)
            assert set(statuses.values()) == {"delivered"}, second.log_tail()
            await piece.assert_charged_once(ids)
            await piece.assert_parts_unique(ids)
        finally:
            for proc in (first, second, others):
                await proc.kill()
