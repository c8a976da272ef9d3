"""How long a large contacts CSV takes to import, over the API and over the operator CLI.

    python -m bench.contact_import [-n 100000]

Writes a file of N rows (phone, first_name, last_name, email and two custom columns; half
the phones in national format), creates a fresh database on DATABASE_URL's server, starts
the real API in this process (AMQP_URL for its queues) and times:

- POST /v1/contacts/import into a new account (every row created), then the same file
  again with ?group_id= (every row updated and joining a group);
- `smsbroker contacts import` (a subprocess, interpreter start included) the same two ways
  into another account.

While the API imports, a ticker in the same event loop records the longest time the loop
was not free (what any other request would have waited). The database is dropped after.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import csv
import json
import os
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, replace
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg

from api.server import start_api
from bench import database
from bench.rabbit import delete_queues, queue_names
from broker import accounts, contacts, db_admin
from broker.config import Settings
from broker.migrate import migrate
from broker.queues import AMQP_ERRORS, QueueNames

FIRST = ("Ada", "Kofi", "Ama", "Grace", "Yaw", "Linus", "Esi", "Alan", "Efua", "Kwame")
LAST = ("Mensah", "Lovelace", "Owusu", "Hopper", "Boateng", "Turing", "Asante", "Torvalds")
CITIES = ("Accra", "Kumasi", "London", "Lagos", "Nairobi", "Berlin")
SMSBROKER = str(Path(sys.executable).with_name("smsbroker"))


def write_file(path: Path, rows: int) -> None:
    """N distinct valid US numbers (+1 650 2xx xxxx), every other one in national format."""
    with path.open("w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["phone", "first_name", "last_name", "email", "City", "Plan"])
        for i in range(rows):
            exchange, line = 200 + i // 10_000, i % 10_000
            phone = f"+1650{exchange}{line:04d}" if i % 2 else f"(650) {exchange}-{line:04d}"
            writer.writerow(
                [
                    phone,
                    FIRST[i % len(FIRST)],
                    LAST[i % len(LAST)],
                    f"user{i}@example.com",
                    CITIES[i % len(CITIES)],
                    "gold" if i % 3 else "silver",
                ]
            )


@dataclass(frozen=True)
class Timed:
    label: str
    seconds: float
    answer: dict[str, Any]
    #: The longest the API's event loop was busy without a break (API runs only).
    stall_ms: float | None = None


async def _ticker(longest: list[float]) -> None:
    while True:
        before = time.perf_counter()
        await asyncio.sleep(0.001)
        longest[0] = max(longest[0], time.perf_counter() - before - 0.001)


async def over_api(url: str, key: str, path: Path, group: uuid.UUID | None, label: str) -> Timed:
    longest = [0.0]
    ticker = asyncio.create_task(_ticker(longest))
    params = {"group_id": str(group)} if group else {}
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "text/csv"}
    try:
        async with aiohttp.ClientSession() as http:
            with path.open("rb") as body:
                started = time.perf_counter()
                async with http.post(url, data=body, headers=headers, params=params) as resp:
                    answer = await resp.json()
                    seconds = time.perf_counter() - started
    finally:
        ticker.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await ticker
    assert resp.status == 200, answer
    return Timed(label, seconds, answer, longest[0] * 1000)


async def over_cli(
    dsn: str, account: uuid.UUID, path: Path, group: uuid.UUID | None, label: str
) -> Timed:
    args = [SMSBROKER, "contacts", "import", str(account), str(path), "--json"]
    if group is not None:
        args += ["--group", str(group)]
    started = time.perf_counter()
    proc = await asyncio.create_subprocess_exec(
        *args,
        env={**os.environ, "DATABASE_URL": dsn},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await proc.communicate()
    seconds = time.perf_counter() - started
    assert proc.returncode == 0, err.decode()
    return Timed(label, seconds, json.loads(out))


async def _account(dsn: str) -> tuple[uuid.UUID, str, uuid.UUID]:
    conn: asyncpg.Connection = await asyncpg.connect(dsn)
    try:
        account_id = await accounts.create_account(conn, "Import bench", Decimal(0), "US")
        key = await accounts.create_key(conn, account_id, name="bench", rate_limit=1_000_000)
        group = await contacts.create_group(conn, account_id, "bench")
    finally:
        await conn.close()
    return account_id, key.secret, group.id


async def run(rows: int, settings: Settings) -> list[Timed]:
    name = database.fresh_name()
    prefix = f"bench-{uuid.uuid4().hex[:10]}"
    dsn = await db_admin.create_database(settings.database_url, name)
    bench = replace(settings, database_url=dsn, queue_prefix=prefix)
    results: list[Timed] = []
    try:
        await migrate(dsn)
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "contacts.csv"
            write_file(path, rows)
            size = path.stat().st_size
            print(f"{rows:,} rows, {size / 1e6:.1f} MB: {path}", file=sys.stderr)
            api_account, key, api_group = await _account(dsn)
            cli_account, _, cli_group = await _account(dsn)
            runner = await start_api(bench, "127.0.0.1", 0)
            try:
                url = f"http://127.0.0.1:{runner.addresses[0][1]}/v1/contacts/import"
                results.append(await over_api(url, key, path, None, "API, new contacts"))
                results.append(
                    await over_api(url, key, path, api_group, "API, again (updates) + group")
                )
            finally:
                await runner.cleanup()
            results.append(await over_cli(dsn, cli_account, path, None, "CLI, new contacts"))
            results.append(
                await over_cli(dsn, cli_account, path, cli_group, "CLI, again (updates) + group")
            )
    finally:
        with contextlib.suppress(OSError, asyncpg.PostgresError):
            await db_admin.drop_database(settings.database_url, name)
        with contextlib.suppress(*AMQP_ERRORS):
            queues = queue_names(QueueNames(prefix), [], bench.webhook_retry_delays)
            await delete_queues(bench.amqp_url, queues)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("-n", "--rows", type=int, default=100_000, help="rows (default 100000)")
    args = parser.parse_args()
    results = asyncio.run(run(args.rows, Settings.from_env()))
    print(
        f"{'import':<32} {'seconds':>8} {'rows/s':>9} {'created':>8} {'updated':>8}"
        f" {'failed':>7} {'loop stall ms':>14}"
    )
    for r in results:
        stall = f"{r.stall_ms:.1f}" if r.stall_ms is not None else "-"
        print(
            f"{r.label:<32} {r.seconds:>8.2f} {args.rows / r.seconds:>9,.0f}"
            f" {r.answer['created']:>8} {r.answer['updated']:>8} {r.answer['failed']:>7}"
            f" {stall:>14}"
        )


if __name__ == "__main__":
    main()
