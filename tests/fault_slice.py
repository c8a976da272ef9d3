"""What the fault tests share: an isolated slice of the gateway, worker processes, and checks.

Every fault test gets its own queue prefix, account, connector, simulated carrier and route
prefix (Australian fictional mobile numbers, +61 491 570 xxx), so it never sees another test's
traffic although the database, vhost and route table are shared by the whole run.
This module holds no tests itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
from aiohttp import web

from api.server import start_api
from broker import accounts
from broker.config import Settings
from smsc_sim import SmscSimulator
from tests.harness import add_connector, start_sim, with_settings
from workers.runner import WorkerSet

SMSBROKER = Path(sys.executable).parent / "smsbroker"
FINAL = frozenset({"delivered", "undelivered", "failed", "canceled"})
FINAL_DEADLINE = 60.0


@dataclass
class Slice:
    """One fault test's own corner of the gateway."""

    name: str
    settings: Settings
    pool: asyncpg.Pool
    sim: SmscSimulator
    route_prefix: str
    account_id: uuid.UUID
    key: str
    initial_credits: int
    api: str = ""
    http: aiohttp.ClientSession = field(default_factory=aiohttp.ClientSession)

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}

    def number(self, i: int) -> str:
        """A valid +61 4 mobile number under this slice's route prefix."""
        return f"+{self.route_prefix}{i % 100:02d}"

    async def send(self, i: int, *, timeout: float = 20.0) -> tuple[int, Any]:
        async with self.http.post(
            f"{self.api}/v1/messages",
            json={"to": self.number(i), "body": f"fault test message {i}"},
            headers=self.headers,
            timeout=aiohttp.ClientTimeout(total=timeout),
        ) as resp:
            return resp.status, await resp.json()

    async def send_many(self, count: int, *, offset: int = 0, concurrency: int = 10) -> list[str]:
        """Send ``count`` one-recipient messages; every one must be accepted; their ids."""
        gate = asyncio.Semaphore(concurrency)

        async def one(i: int) -> str:
            async with gate:
                status, body = await self.send(i)
            assert status == 202, body
            mid: str = body["messages"][0]["id"]
            return mid

        return list(await asyncio.gather(*(one(offset + i) for i in range(count))))

    async def count(self, statuses: tuple[str, ...] | None = None) -> int:
        query = "SELECT count(*) FROM messages WHERE account_id = $1"
        if statuses is None:
            return int(await self.pool.fetchval(query, self.account_id))
        return int(
            await self.pool.fetchval(query + " AND status = ANY($2)", self.account_id, statuses)
        )

    async def wait_count(
        self,
        at_least: int,
        statuses: tuple[str, ...] | None = None,
        *,
        worker: WorkerProcess | None = None,
    ) -> int:
        """Poll until ``at_least`` messages of the account are in ``statuses`` (any if None)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + FINAL_DEADLINE
        while (n := await self.count(statuses)) < at_least:
            assert loop.time() < deadline, f"only {n} of {at_least} messages in {statuses}"
            if worker is not None:
                assert worker.running, f"the worker exited:\n{worker.log_tail()}"
            await asyncio.sleep(0.02)
        return n

    async def wait_submits(self, at_least: int, *, worker: WorkerProcess) -> None:
        """Poll until the carrier has seen ``at_least`` submit_sm."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + FINAL_DEADLINE
        while (n := self.sim.stats["submits"]) < at_least:  # type: ignore[operator]
            assert loop.time() < deadline, f"only {n} submits of {at_least}"
            assert worker.running, f"the worker exited:\n{worker.log_tail()}"
            await asyncio.sleep(0.01)

    async def wait_final(self, ids: list[str], *, within: float = FINAL_DEADLINE) -> dict[str, str]:
        """Poll until every message is in a final state; their statuses by id."""
        wanted = [uuid.UUID(i) for i in ids]
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while True:
            rows = await self.pool.fetch(
                "SELECT id, status FROM messages WHERE id = ANY($1::uuid[])", wanted
            )
            statuses = {str(r["id"]): r["status"] for r in rows}
            if len(statuses) == len(wanted) and FINAL.issuperset(statuses.values()):
                return statuses
            if loop.time() > deadline:
                missing = len(wanted) - len(statuses)
                waiting = sorted({s for s in statuses.values() if s not in FINAL})
                raise AssertionError(
                    f"{missing} accepted messages have no row; others still in {waiting}"
                )
            await asyncio.sleep(0.1)

    async def assert_charged_once(self, ids: list[str], *, price: int = 1) -> None:
        """Every message charged exactly once, none refunded; balance = initial - cost = ledger."""
        wanted = [uuid.UUID(i) for i in ids]
        rows = await self.pool.fetch(
            "SELECT message_id, reason, count(*) AS n FROM ledger"
            " WHERE message_id = ANY($1::uuid[]) GROUP BY message_id, reason",
            wanted,
        )
        charges = {r["message_id"]: r["n"] for r in rows if r["reason"] == "charge"}
        refunds = [r["message_id"] for r in rows if r["reason"] == "refund"]
        assert len(charges) == len(wanted) and set(charges.values()) == {1}, charges
        assert refunds == []
        balance = await self.pool.fetchval(
            "SELECT balance FROM accounts WHERE id = $1", self.account_id
        )
        total = await self.pool.fetchval(
            "SELECT sum(amount) FROM ledger WHERE account_id = $1", self.account_id
        )
        assert balance == Decimal(self.initial_credits - price * len(wanted))
        assert total == balance

    async def assert_parts_unique(self, ids: list[str]) -> None:
        dupes = await self.pool.fetch(
            "SELECT message_id, seq FROM message_parts WHERE message_id = ANY($1::uuid[])"
            " GROUP BY message_id, seq HAVING count(*) > 1",
            [uuid.UUID(i) for i in ids],
        )
        assert dupes == []
        parts = await self.pool.fetchval(
            "SELECT count(DISTINCT message_id) FROM message_parts"
            " WHERE message_id = ANY($1::uuid[])",
            [uuid.UUID(i) for i in ids],
        )
        assert parts == len(ids)


@contextlib.asynccontextmanager
async def fault_slice(
    base: Settings,
    pool: asyncpg.Pool,
    name: str,
    route_prefix: str,
    *,
    credits: int = 1000,
    window: int = 50,
    **sim_overrides: Any,
) -> AsyncIterator[Slice]:
    """A carrier, a connector routed from ``route_prefix``, and a funded account with a key."""
    # A carrier account of its own: a stale connector of an earlier test whose carrier had the
    # same ephemeral port cannot bind here and take this slice's receipts.
    system_id = f"f{uuid.uuid4().hex[:12]}"
    # Every message is delivered unless a test says otherwise: no suffix rules.
    sim_overrides = {
        "outcome_rules": {},
        "submit_status_rules": {},
        "accounts": {system_id: "secret"},
        **sim_overrides,
    }
    sim = await start_sim(**sim_overrides)
    async with pool.acquire() as conn:
        account_id = await accounts.create_account(conn, name, Decimal(credits), "AU")
        key = await accounts.create_key(conn, account_id, rate_limit=1_000_000)
    await add_connector(pool, name, sim.port, system_id=system_id, window_size=window)
    async with pool.acquire() as conn:
        await accounts.add_route(conn, route_prefix, name, Decimal(1))
    settings = with_settings(base, queue_prefix=name)
    piece = Slice(name, settings, pool, sim, route_prefix, account_id, key.secret, credits)
    try:
        yield piece
    finally:
        await piece.http.close()
        await sim.stop()
        # Receipts for submissions a fault orphaned (accepted by the carrier, answer lost,
        # resubmitted) stay parked; they are this slice's, not other tests' business.
        await pool.execute(
            "DELETE FROM pending_receipts"
            " WHERE scope = (SELECT scope FROM connectors WHERE name = $1)",
            name,
        )


@contextlib.asynccontextmanager
async def api_server(settings: Settings) -> AsyncIterator[str]:
    """The API in this process; its base URL."""
    runner: web.AppRunner = await start_api(settings, "127.0.0.1", 0)
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()


@contextlib.asynccontextmanager
async def workers(settings: Settings) -> AsyncIterator[None]:
    """Every worker role in this process (for faults that need no kill -9)."""
    running = WorkerSet(settings)
    await running.start()
    try:
        yield
    finally:
        await running.stop()


class WorkerProcess:
    """``smsbroker worker`` as a real process, so a test can SIGKILL it."""

    def __init__(self, settings: Settings, roles: tuple[str, ...], log_path: Path) -> None:
        self.settings = settings
        self.roles = roles
        self.log_path = log_path
        self.proc: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        env = {
            **os.environ,
            "DATABASE_URL": self.settings.database_url,
            "AMQP_URL": self.settings.amqp_url,
            "QUEUE_PREFIX": self.settings.queue_prefix,
            # Queue arguments must match what the API declared, or RabbitMQ refuses them.
            "WEBHOOK_RETRY_DELAYS": ",".join(str(d) for d in self.settings.webhook_retry_delays),
        }
        args = [str(SMSBROKER), "worker"]
        for role in self.roles:
            args += ["--role", role]
        with self.log_path.open("ab") as log_file:
            self.proc = await asyncio.create_subprocess_exec(
                *args,
                env=env,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log_file,
                stderr=log_file,
            )

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.returncode is None

    async def kill(self) -> None:
        """SIGKILL: no graceful stop, no acks, no unbind."""
        proc, self.proc = self.proc, None
        if proc is None or proc.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGKILL)
        await proc.wait()

    def log_tail(self, lines: int = 40) -> str:
        if not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
