"""A kill -9 of the expand worker in the middle of a group send: another one takes the send
over when the lease runs out, and the carrier gets every member exactly once, each charged once.

A module of its own: the expansion is claimed from the database, so no other gateway of the
test run (a module-scoped stack) may be running beside it.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from broker.config import Settings
from tests.fault_slice import WorkerProcess, api_server, fault_slice
from tests.harness import with_settings


async def test_expand_worker_killed_mid_send_sends_each_member_once(
    settings: Settings, pool: asyncpg.Pool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """kill -9 of the expand worker while it makes a 1,000-member send, a member a page: a second
    worker takes over when the lease runs out, and the carrier gets every member once."""
    members = 1000
    monkeypatch.setenv("EXPAND_PAGE_SIZE", "1")
    async with fault_slice(settings, pool, "exp-kill", "61491572", credits=2000) as piece:
        piece.settings = with_settings(piece.settings, max_recipients=10)
        phones = [f"+61491572{i:03d}" for i in range(members)]
        async with pool.acquire() as conn:
            contact_ids = await conn.fetchval(
                "WITH c AS (INSERT INTO contacts (account_id, phone)"
                " SELECT $1, unnest($2::text[]) RETURNING id) SELECT array_agg(id) FROM c",
                piece.account_id,
                phones,
            )
            gid = await conn.fetchval(
                "INSERT INTO contact_groups (account_id, name) VALUES ($1, 'all') RETURNING id",
                piece.account_id,
            )
            await conn.execute(
                "INSERT INTO group_members (account_id, group_id, contact_id)"
                " SELECT $1, $2, unnest($3::uuid[])",
                piece.account_id,
                gid,
                contact_ids,
            )
        others = WorkerProcess(
            piece.settings, ("charge", "submit", "events", "webhooks"), tmp_path / "others.log"
        )
        first = WorkerProcess(piece.settings, ("expand",), tmp_path / "expand-1.log")
        second = WorkerProcess(piece.settings, ("expand",), tmp_path / "expand-2.log")
        try:
            async with api_server(piece.settings) as piece.api:
                await others.start()
                await first.start()
                async with piece.http.post(
                    f"{piece.api}/v1/messages",
                    json={"group_ids": [str(gid)], "body": "to everyone"},
                    headers=piece.headers,
                ) as resp:
                    body = await resp.json()
                    assert resp.status == 202, body
                batch = uuid.UUID(body["batch_id"])
                await _until(
                    pool,
                    "SELECT expanded FROM batch_expansions WHERE batch_id = $1",
                    batch,
                    lambda n: n >= 50,
                )
                await first.kill()
                at_kill = await pool.fetchval(
                    "SELECT expanded FROM batch_expansions WHERE batch_id = $1", batch
                )
                assert at_kill < members, "the kill must land mid-expansion"
                await second.start()
                await _until(
                    pool,
                    "SELECT count(*) FROM messages WHERE batch_id = $1",
                    batch,
                    lambda n: n == members,
                    within=120,
                )
                delivered = await piece.wait_count(members, ("delivered",))
        finally:
            for proc in (first, second, others):
                await proc.kill()
        sent = Counter("+" + r.destination_addr for r in piece.sim.submitted)
        assert sent == Counter(phones), "each member exactly once at the carrier"
        assert delivered == members
        charged = await pool.fetchval(
            "SELECT count(*) FROM ledger l JOIN messages m ON m.id = l.message_id"
            " WHERE m.batch_id = $1 AND l.reason = 'charge'",
            batch,
        )
        assert charged == members


async def _until(
    pool: asyncpg.Pool, query: str, arg: Any, ok: Any, *, within: float = 60.0
) -> None:
    deadline = time.monotonic() + within
    while True:
        value = await pool.fetchval(query, arg)
        if value is not None and ok(value):
            return
        assert time.monotonic() < deadline, value
        await asyncio.sleep(0.02)
