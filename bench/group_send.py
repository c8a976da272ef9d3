"""The group-send bench: import N contacts into a group over the API, send a template to the
group, and time the answer and the whole send until every message is final.

It runs the shipped shape (smsc-sim, worker and api processes on a fresh database and queue
prefix) and drives it only as a customer would: POST /v1/groups, POST /v1/contacts/import
(the CSV streamed, never built in memory), POST /v1/templates, POST /v1/messages with
`group_ids` and `template_id`, then GET /v1/batches/{id} until every message is final and
its status webhook has reached the customer's endpoint.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import asdict, dataclass, field, replace
from decimal import Decimal
from typing import Any

import aiohttp

from bench import database
from bench.database import SIM_CONNECTOR
from bench.options import BenchOptions
from bench.rabbit import delete_queues, queue_names
from bench.readiness import BenchFailed
from bench.receiver import WebhookReceiver
from bench.run import register_webhook
from bench.stack import ProcessStack
from broker import db_admin
from broker.config import Settings
from broker.queues import AMQP_ERRORS, QueueNames

FINAL = ("delivered", "undelivered", "failed")
CSV_ROWS_PER_CHUNK = 5000


@dataclass
class GroupSendResult:
    members: int
    receipt_delay_s: list[float]
    import_seconds: float = 0.0
    import_rows_per_s: float = 0.0
    imported: dict[str, int] = field(default_factory=dict)
    accept_ms: float = 0.0
    expanded_seconds: float = 0.0
    finish_seconds: float = 0.0
    webhooks_seconds: float = 0.0
    messages_per_s: float = 0.0
    statuses: dict[str, int] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def phone(i: int) -> str:
    """Distinct valid US numbers: +1 650 200-0000 onwards."""
    return f"+1650{2_000_000 + i:07d}"


async def contacts_csv(members: int) -> AsyncIterator[bytes]:
    """The import file, made a chunk at a time as it is uploaded."""
    yield b"phone,first_name,last_name,city\r\n"
    for start in range(0, members, CSV_ROWS_PER_CHUNK):
        rows = (
            f"{phone(i)},Name{i},Family,City{i % 50}\r\n"
            for i in range(start, min(members, start + CSV_ROWS_PER_CHUNK))
        )
        yield "".join(rows).encode()


async def run_group_bench(
    members: int,
    receipt_delay: tuple[float, float],
    settings: Settings | None = None,
    *,
    progress: Callable[[str], None] = lambda _: None,
    timeout: float = 1800.0,
) -> GroupSendResult:
    settings = settings or Settings.from_env()
    result = GroupSendResult(members, list(receipt_delay))
    name = database.fresh_name()
    prefix = f"bench-{uuid.uuid4().hex[:10]}"
    dsn = await db_admin.create_database(settings.database_url, name)
    bench_settings = replace(
        settings, database_url=dsn, queue_prefix=prefix, webhook_allow_private=True
    )
    stack = ProcessStack(bench_settings, BenchOptions(receipt_delay=receipt_delay))
    receiver = WebhookReceiver()
    try:
        port = await stack.start_carrier()
        tenant = await database.provision(dsn, port, Decimal(members * 2 + 1000))
        await stack.start_gateway()
        await receiver.start()
        await register_webhook(stack.api_urls[0], tenant.key, receiver.url)
        async with aiohttp.ClientSession(
            base_url=stack.api_urls[0],
            headers={"Authorization": f"Bearer {tenant.key}"},
            timeout=aiohttp.ClientTimeout(total=timeout),
        ) as http:
            await _measure(http, receiver, members, result, progress, timeout)
        result.problems += stack.failures()
    finally:
        await stack.stop()
        await receiver.stop()
        with contextlib.suppress(OSError):
            await db_admin.drop_database(settings.database_url, name)
        names = queue_names(QueueNames(prefix), [SIM_CONNECTOR], settings.webhook_retry_delays)
        with contextlib.suppress(*AMQP_ERRORS):
            await delete_queues(settings.amqp_url, names)
    return result


async def _call(http: aiohttp.ClientSession, method: str, path: str, **kw: Any) -> Any:
    async with http.request(method, path, **kw) as resp:
        body = await resp.json()
        if resp.status >= 300:
            raise BenchFailed(f"{method} {path}: HTTP {resp.status} {body}")
        return body


async def _measure(
    http: aiohttp.ClientSession,
    receiver: WebhookReceiver,
    members: int,
    result: GroupSendResult,
    progress: Callable[[str], None],
    timeout: float,
) -> None:
    group = await _call(http, "POST", "/v1/groups", json={"name": "bench"})
    progress(f"importing {members:,} contacts over POST /v1/contacts/import")
    started = time.perf_counter()
    imported = await _call(
        http,
        "POST",
        "/v1/contacts/import",
        params={"group_id": group["id"]},
        data=contacts_csv(members),
        headers={"Content-Type": "text/csv"},
    )
    result.import_seconds = round(time.perf_counter() - started, 2)
    result.import_rows_per_s = round(members / result.import_seconds)
    result.imported = {k: imported[k] for k in ("created", "updated", "failed")}
    template = await _call(
        http,
        "POST",
        "/v1/templates",
        json={"name": "bench", "body": "Hi {{first_name}}, your order from {{city}} is ready."},
    )
    progress(f"sending to the group of {members:,}")
    started = time.perf_counter()
    sent = await _call(
        http,
        "POST",
        "/v1/messages",
        json={"group_ids": [group["id"]], "template_id": template["id"]},
    )
    result.accept_ms = round((time.perf_counter() - started) * 1000, 1)
    deadline = started + timeout
    while True:
        batch = await _call(http, "GET", f"/v1/batches/{sent['batch_id']}")
        now = time.perf_counter()
        if not batch["expanding"] and not result.expanded_seconds:
            result.expanded_seconds = round(now - started, 2)
        final = sum(n for s, n in batch["statuses"].items() if s in FINAL)
        if final >= members and not result.finish_seconds:
            result.finish_seconds = round(now - started, 2)
            result.statuses = batch["statuses"]
        hooks = sum(1 for o in receiver.outcomes.values() if o.status in FINAL)
        if hooks >= members:
            result.webhooks_seconds = round(now - started, 2)
            break
        if now > deadline:
            result.problems.append(
                f"{final:,} of {members:,} final, {hooks:,} webhooks after {timeout:g} s"
            )
            result.statuses = batch["statuses"]
            return
        progress(f"{batch['expanded']:,} made, {final:,} final, {hooks:,} webhooks")
        await asyncio.sleep(1.0)
    result.messages_per_s = round(members / result.webhooks_seconds)
    if result.statuses.get("delivered", 0) != members:
        result.problems.append(f"not every message was delivered: {result.statuses}")
    if receiver.duplicates:
        result.problems.append(f"{receiver.duplicates} duplicate webhooks")
