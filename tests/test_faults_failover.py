"""Routes with failover: the first connector's carrier goes away mid-stream (first refusing
with a connector error, then gone), and every message is delivered, the rest by the second
connector, none sent twice. The operator's connector and route commands act without a restart.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import uuid
from collections import Counter
from decimal import Decimal
from pathlib import Path

import asyncpg

from broker import accounts
from broker.config import Settings
from broker.smpp.constants import Status
from tests.fault_slice import api_server, fault_slice, workers
from tests.harness import add_connector, start_sim

SMSBROKER = str(Path(sys.executable).with_name("smsbroker"))


async def test_the_second_connector_takes_over_when_the_first_goes_away(
    settings: Settings, pool: asyncpg.Pool
) -> None:
    async with fault_slice(
        settings, pool, "fo-first", "614915731", credits=1000, receipt_delay=(0.0, 0.01)
    ) as piece:
        second_sim = await start_sim(outcome_rules={}, submit_status_rules={})
        second = f"fo-second-{uuid.uuid4().hex[:6]}"
        await add_connector(pool, second, second_sim.port)
        async with pool.acquire() as conn:
            await accounts.add_route(conn, piece.route_prefix, second, Decimal(1), failover=(1, 1))
        try:
            async with workers(piece.settings), api_server(piece.settings) as piece.api:
                piece.sim.set_faults(submit_delay=0.02)
                sending = asyncio.ensure_future(piece.send_many(150, concurrency=5))
                while int(piece.sim.stats["submits"]) < 40:  # type: ignore[call-overload]
                    await asyncio.sleep(0.01)
                # The first carrier refuses as a carrier (system error), then goes away.
                piece.sim.set_faults(submit_error=int(Status.ESME_RSYSERR))
                await asyncio.sleep(0.5)
                piece.sim.set_faults(reject_binds=int(Status.ESME_RBINDFAIL), drop=True)
                ids = await sending
                statuses = await piece.wait_final(ids)
        finally:
            await second_sim.stop()
        assert set(statuses.values()) == {"delivered"}
        first = Counter(
            r.short_message.decode() for r in piece.sim.submitted if r.outcome is not None
        )
        taken_over = Counter(r.short_message.decode() for r in second_sim.submitted)
        assert first and taken_over, "both carriers carried part of the stream"
        assert not set(first) & set(taken_over), "no message went to both"
        assert set(first.values()) | set(taken_over.values()) == {1}, "none twice"
        assert len(first) + len(taken_over) == 150
        await piece.assert_charged_once(ids)
        out = await pool.fetchval(
            "SELECT reason FROM connector_outages WHERE connector = $1", piece.name
        )
        assert out is not None


def _cli(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DATABASE_URL": settings.database_url}
    return subprocess.run(
        [SMSBROKER, *args], env=env, capture_output=True, text=True, timeout=60, check=False
    )


async def test_operator_lists_updates_disables_and_removes_without_a_restart(
    settings: Settings, pool: asyncpg.Pool
) -> None:
    async with fault_slice(settings, pool, "fo-ops", "614915732", credits=100) as piece:
        async with workers(piece.settings), api_server(piece.settings) as piece.api:
            ids = await piece.send_many(3)
            await piece.wait_final(ids)
            listed = _cli(settings, "connector", "list", "--json")
            assert listed.returncode == 0, listed.stderr
            mine = next(c for c in json.loads(listed.stdout)["data"] if c["name"] == piece.name)
            assert mine["enabled"] and mine["binds"] == 1 and mine["slots_leased"] == 1
            assert "password" not in mine
            done = _cli(settings, "connector", "update", piece.name, "--binds", "2", "--tps", "50")
            assert done.returncode == 0, done.stderr
            async with asyncio.timeout(20):  # the running worker rebinds with two binds
                while piece.sim.stats["bound"]["transceiver"] != 2:  # type: ignore[index]
                    await asyncio.sleep(0.1)
            assert _cli(settings, "connector", "disable", piece.name).returncode == 0
            async with asyncio.timeout(20):
                while piece.sim.stats["bound"]["transceiver"] != 0:  # type: ignore[index]
                    await asyncio.sleep(0.1)
            assert _cli(settings, "connector", "enable", piece.name).returncode == 0
            async with asyncio.timeout(20):
                while piece.sim.stats["bound"]["transceiver"] == 0:  # type: ignore[index]
                    await asyncio.sleep(0.1)
            routes = json.loads(_cli(settings, "route", "list", "--json").stdout)["data"]
            assert {"prefix": piece.route_prefix, "connector": piece.name}.items() <= next(
                r for r in routes if r["prefix"] == piece.route_prefix
            ).items()
            removed = _cli(settings, "route", "remove", "--prefix", piece.route_prefix, "--json")
            assert removed.returncode == 0 and json.loads(removed.stdout) == {"removed": 1}
            again = _cli(settings, "route", "remove", "--prefix", piece.route_prefix)
            assert again.returncode != 0 and "no sms route" in again.stderr
        bad = _cli(settings, "connector", "update", piece.name, "--binds", "0")
        assert bad.returncode == 2 and "binds" in bad.stderr
        missing = _cli(settings, "connector", "disable", "no-such-connector")
        assert missing.returncode != 0 and "not found" in missing.stderr
