"""A misbehaving carrier: binds dropped mid-stream, submits refused for load. Every message still
ends delivered, charged once and never refunded."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from broker.config import Settings
from broker.smpp.constants import Status
from tests.fault_slice import FINAL_DEADLINE, Slice, api_server, fault_slice, workers

DROPS = 5


async def wait_progress(piece: Slice, submits: int) -> None:
    """Until the carrier has answered ``submits`` submit_sm in total, resubmissions included."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + FINAL_DEADLINE
    while (n := int(piece.sim.stats["submits"])) < submits:  # type: ignore[call-overload]
        assert loop.time() < deadline, f"the carrier saw {n} submits of {submits}"
        await asyncio.sleep(0.01)


async def test_carrier_drops_binds_mid_stream(settings: Settings, pool: asyncpg.Pool) -> None:
    async with (
        fault_slice(settings, pool, "fc-drops", "614915707") as piece,
        workers(piece.settings),
    ):
        # Slow answers keep submits in flight, and the receipts race the drops.
        piece.sim.set_faults(submit_delay=0.02)
        async with api_server(piece.settings) as piece.api:
            sender = asyncio.ensure_future(piece.send_many(200))
            dropped = 0
            for k in range(1, DROPS + 1):
                await wait_progress(piece, 30 * k)
                dropped += piece.sim.drop_connections()
            ids = await sender
            statuses = await piece.wait_final(ids)
        assert dropped >= DROPS
        assert set(statuses.values()) == {"delivered"}
        await piece.assert_charged_once(ids)
        await piece.assert_parts_unique(ids)


@pytest.mark.parametrize("refusal", [Status.ESME_RTHROTTLED, Status.ESME_RMSGQFUL])
async def test_carrier_refusing_for_load_slows_down_not_fails(
    settings: Settings, pool: asyncpg.Pool, refusal: Status
) -> None:
    name = f"fc-load-{int(refusal):x}"
    prefix = "614915708" if refusal == Status.ESME_RTHROTTLED else "614915709"
    async with fault_slice(settings, pool, name, prefix) as piece, workers(piece.settings):
        piece.sim.set_faults(submit_error=int(refusal), submit_error_count=20)
        async with api_server(piece.settings) as piece.api:
            ids = await piece.send_many(50)
            statuses = await piece.wait_final(ids)
        assert piece.sim.stats["submit_errors"] == 20
        assert set(statuses.values()) == {"delivered"}
        await piece.assert_charged_once(ids)
        await piece.assert_parts_unique(ids)
