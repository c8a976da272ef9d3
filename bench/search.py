"""The message-search bench: how fast GET /v1/messages answers a filtered page on a big table.

A fresh database is filled server-side (generate_series, no round trip per row) with one
account's messages spread like real traffic (90 days, many recipients, batches, client
references, mostly delivered, a few failed or still in flight) plus a second account's, so
every query must also skip what is not the caller's. Then the real API, started on that
database, is asked for filtered pages over HTTP, each filter and cursor page many times, and
the latency percentiles of each are printed.
"""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import aiohttp
import asyncpg

from api.schemas.messages import MessageQuery
from api.server import start_api
from bench import database
from bench.rabbit import delete_queues, queue_names
from bench.stats import latency_summary
from broker import accounts, db_admin
from broker.config import Settings
from broker.migrate import migrate
from broker.queues import AMQP_ERRORS, QueueNames
from broker.store import messages

#: Batches of 100 messages: one in ten messages was sent in a batch.
FILL_BATCHES = """
INSERT INTO batches (id, account_id, total, created_at)
SELECT md5($1::uuid::text || ':' || g)::uuid, $1::uuid, 100,
       $3::timestamptz - (g * interval '1 second')
  FROM generate_series(0, $2::int) AS g
"""

#: ``$2`` messages of account ``$1`` over the 90 days before ``$3``: 50,000 recipients, a
#: client reference on every third, statuses as traffic leaves them.
FILL_MESSAGES = """
INSERT INTO messages (id, account_id, batch_id, to_number, sender, body, encoding, segments,
                      status, connector, price, cost, client_ref, created_at, updated_at)
SELECT gen_random_uuid(), $1::uuid,
       CASE WHEN g % 10 = 0 THEN md5($1::uuid::text || ':' || (g / 1000))::uuid END,
       '+165025' || lpad((g % 50000)::text, 5, '0'), 'Bench', 'bench message', 'GSM7', 1,
       CASE WHEN g % 100 < 90 THEN 'delivered' WHEN g % 100 < 93 THEN 'failed'
            WHEN g % 100 < 95 THEN 'undelivered' WHEN g % 100 < 99 THEN 'sent'
            ELSE 'queued' END,
       NULL, 1, 1,
       CASE WHEN g % 3 = 0 THEN 'order-' || (g % 100000) END,
       $3::timestamptz - g * (interval '90 days' / $2::int),
       $3::timestamptz - g * (interval '90 days' / $2::int)
  FROM generate_series(1, $2::int) AS g
"""

ANALYZE = "ANALYZE messages"

A_BATCH = "SELECT batch_id FROM messages WHERE account_id = $1 AND batch_id IS NOT NULL LIMIT 1"


@dataclass
class SearchResult:
    messages: int
    fill_seconds: float
    #: Per query name: p50/p95/p99/max in ms over ``repeat`` requests, over HTTP.
    latency_ms: dict[str, dict[str, float | None]] = field(default_factory=dict)
    #: The same pages read by the API's own query function on a pool: the database's share.
    query_ms: dict[str, dict[str, float | None]] = field(default_factory=dict)
    rows: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "messages": self.messages,
            "fill_seconds": round(self.fill_seconds, 1),
            "latency_ms": self.latency_ms,
            "query_ms": self.query_ms,
            "rows": self.rows,
        }


async def fill(dsn: str, messages: int) -> tuple[uuid.UUID, str]:
    """The account (with a key) owning ``messages`` messages, and another's 10% beside them."""
    conn: asyncpg.Connection = await asyncpg.connect(dsn)
    try:
        owner = await accounts.create_account(conn, "Search bench", Decimal(0), "US")
        other = await accounts.create_account(conn, "Neighbour", Decimal(0), "US")
        key = await accounts.create_key(
            conn, owner, name="search bench", rate_limit=database.KEY_RATE_LIMIT
        )
        now = datetime.now(UTC)
        for account, count in ((owner, messages), (other, max(1, messages // 10))):
            await conn.execute(FILL_BATCHES, account, count // 1000 + 1, now)
            await conn.execute(FILL_MESSAGES, account, count, now)
        await conn.execute(ANALYZE)
    finally:
        await conn.close()
    return owner, key.secret


def queries(now: datetime) -> dict[str, dict[str, str]]:
    """The searches a customer makes, by name: each a set of query parameters."""
    return {
        "newest page": {},
        "status=failed": {"status": "failed"},
        "status=queued (rare)": {"status": "queued"},
        "to": {"to": "+16502512345"},
        "client_ref": {"client_ref": "order-4242"},
        "batch_id": {},  # filled in with a real batch id
        "last 24 h": {"created_after": (now - timedelta(days=1)).isoformat()},
        "a day a month ago": {
            "created_after": (now - timedelta(days=31)).isoformat(),
            "created_before": (now - timedelta(days=30)).isoformat(),
        },
        "status=undelivered + to": {"status": "undelivered", "to": "+16502500093"},
    }


async def _timed_pages(
    http: aiohttp.ClientSession, url: str, headers: dict[str, str], params: dict[str, str], n: int
) -> tuple[list[float], int]:
    """``n`` requests (the first page, then the next pages in turn); seconds each, rows."""
    seconds: list[float] = []
    rows = 0
    cursor: str | None = None
    for _ in range(n):
        query = {**params, "limit": "50", **({"cursor": cursor} if cursor else {})}
        start = time.perf_counter()
        async with http.get(url, params=query, headers=headers) as resp:
            page = await resp.json()
            if resp.status != 200:
                raise RuntimeError(f"search {params} answered {resp.status}: {page}")
        seconds.append(time.perf_counter() - start)
        rows = max(rows, len(page["data"]))
        cursor = page["next_cursor"]
    return seconds, rows


async def run_search_bench(
    messages: int,
    repeat: int,
    settings: Settings | None = None,
    progress: Callable[[str], None] = lambda _: None,
) -> SearchResult:
    settings = settings or Settings.from_env()
    name = database.fresh_name()
    prefix = f"bench-{uuid.uuid4().hex[:10]}"
    dsn = await db_admin.create_database(settings.database_url, name)
    bench = replace(settings, database_url=dsn, queue_prefix=prefix)
    try:
        await migrate(dsn)
        progress(f"filling {messages:,} messages")
        started = time.perf_counter()
        owner, key = await fill(dsn, messages)
        result = SearchResult(messages, time.perf_counter() - started)
        batch = await _a_batch(dsn, owner)
        runner = await start_api(bench, "127.0.0.1", 0)
        try:
            url = f"http://127.0.0.1:{runner.addresses[0][1]}/v1/messages"
            headers = {"Authorization": f"Bearer {key}"}
            async with aiohttp.ClientSession() as http:
                for label, params in queries(datetime.now(UTC)).items():
                    if label == "batch_id":
                        params = {"batch_id": str(batch)}
                    progress(f"searching: {label}")
                    await _timed_pages(http, url, headers, params, 3)  # warm the caches
                    seconds, rows = await _timed_pages(http, url, headers, params, repeat)
                    result.latency_ms[label] = latency_summary(seconds)
                    result.rows[label] = rows
                    result.query_ms[label] = await _query_times(dsn, owner, params, repeat)
        finally:
            await runner.cleanup()
    finally:
        with contextlib.suppress(OSError, asyncpg.PostgresError):
            await db_admin.drop_database(settings.database_url, name)
        with contextlib.suppress(*AMQP_ERRORS):
            queues = queue_names(QueueNames(prefix), [], bench.webhook_retry_delays)
            await delete_queues(bench.amqp_url, queues)
    return result


async def _query_times(
    dsn: str, account_id: uuid.UUID, params: dict[str, str], n: int
) -> dict[str, float | None]:
    """The first page of a search read ``n`` times by the API's query function."""
    filters = MessageQuery.model_validate(params, context={"region": "US"}).filters
    conn: asyncpg.Connection = await asyncpg.connect(dsn)
    seconds: list[float] = []
    try:
        for _ in range(n + 3):
            start = time.perf_counter()
            await messages.page(conn, account_id, filters, after=None, limit=51)
            seconds.append(time.perf_counter() - start)
    finally:
        await conn.close()
    return latency_summary(seconds[3:])


async def _a_batch(dsn: str, account_id: uuid.UUID) -> uuid.UUID:
    conn: asyncpg.Connection = await asyncpg.connect(dsn)
    try:
        found: uuid.UUID = await conn.fetchval(A_BATCH, account_id)
    finally:
        await conn.close()
    return found
