"""One bench run: fresh database and queues, the stack, the load, the figures, the checks."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import time
import uuid
from collections import Counter
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Any

import aiohttp
import asyncpg
import structlog

from bench import database
from bench.database import SIM_CONNECTOR, Books, Tenant
from bench.load import LoadGenerator, LoadResult
from bench.meters import BENCH, BENCH_WITH_GATEWAY, MARK_END, Meters
from bench.options import BenchOptions
from bench.rabbit import delete_queues, queue_names
from bench.readiness import BenchFailed
from bench.receiver import WebhookReceiver
from bench.report import BenchResult, cpu_summary
from bench.stack import BenchStack, make_stack
from bench.stats import latency_summary, rate
from broker import db_admin
from broker.config import Settings
from broker.errors import BrokerError
from broker.queues import AMQP_ERRORS, QueueNames
from broker.resources import number
from broker.segmentation import split
from broker.status import MessageStatus

log = structlog.get_logger(__name__)


@dataclass
class Measured:
    load: LoadResult
    receiver: WebhookReceiver
    timed_out: bool


def opening_credits(opts: BenchOptions, segments: int) -> Decimal:
    """Twice what the run can cost: credits are never what stops it."""
    return Decimal(opts.messages * segments * 2 + 1000)


async def run_bench(opts: BenchOptions, settings: Settings | None = None) -> BenchResult:
    """Run the bench; the stack is stopped and (unless ``keep``) its database and queues removed."""
    settings = settings or Settings.from_env()
    segments = split(opts.body, max_chars=settings.max_body_chars).segments
    name = database.fresh_name()
    prefix = f"bench-{uuid.uuid4().hex[:10]}"
    dsn = await db_admin.create_database(settings.database_url, name)
    bench_settings = replace(
        settings, database_url=dsn, queue_prefix=prefix, webhook_allow_private=True
    )
    stack = make_stack(bench_settings, opts)
    receiver = WebhookReceiver()
    failed = True
    try:
        port = await stack.start_carrier()
        tenant = await database.provision(dsn, port, opening_credits(opts, segments))
        await stack.start_gateway()
        await receiver.start()
        await register_webhook(stack.api_urls[0], tenant.key, receiver.url)
        label = BENCH_WITH_GATEWAY if opts.in_process else BENCH
        meters = Meters(stack.processes(), dsn, name, bench_label=label)
        await meters.start()
        measured = await measure(stack, receiver, tenant, opts, meters)
        books = await database.read_books(dsn, tenant.account_id)
        result = build_result(opts, segments, measured, meters, tenant, books)
        result.problems += stack.failures()
        failed = not result.ok
    except BrokerError as exc:
        if stack.log_dir is None:
            raise
        raise BenchFailed(f"{exc.message} (logs: {stack.log_dir})") from exc
    except asyncio.CancelledError:
        failed = False  # interrupted, not broken: nothing to look into afterwards
        raise
    finally:
        await _teardown(stack, receiver)
        if not opts.keep:
            await _remove(settings, name, bench_settings)
            if not failed and stack.log_dir is not None:
                shutil.rmtree(stack.log_dir, ignore_errors=True)
    if stack.log_dir is not None and (failed or opts.keep):
        result.log_dir = str(stack.log_dir)
    if opts.keep:
        result.config.update(database=name, queue_prefix=prefix)
    return result


async def _teardown(stack: BenchStack, receiver: WebhookReceiver) -> None:
    try:
        await stack.stop()
    finally:
        await receiver.stop()


async def _remove(settings: Settings, name: str, bench: Settings) -> None:
    with contextlib.suppress(OSError, asyncpg.PostgresError):
        await db_admin.drop_database(settings.database_url, name)
    queues = queue_names(
        QueueNames(bench.queue_prefix), [SIM_CONNECTOR], bench.webhook_retry_delays
    )
    with contextlib.suppress(*AMQP_ERRORS):
        await delete_queues(bench.amqp_url, queues)


async def register_webhook(api_url: str, key: str, url: str) -> None:
    """The customer's endpoint, created through the API as a customer would."""
    headers = {"Authorization": f"Bearer {key}"}
    body = {"url": url, "events": ["message.status"]}
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{api_url}/v1/webhooks", json=body, headers=headers) as resp,
    ):
        if resp.status != 201:
            raise BenchFailed(
                f"creating the webhook failed: HTTP {resp.status} {await resp.text()}"
            )


async def measure(
    stack: BenchStack,
    receiver: WebhookReceiver,
    tenant: Tenant,
    opts: BenchOptions,
    meters: Meters,
) -> Measured:
    deadline = time.monotonic() + opts.timeout
    generator = LoadGenerator(stack.api_urls, tenant.key, opts)
    sampler = asyncio.create_task(
        meters.run(lambda: len(receiver.outcomes), tenth=max(1, opts.messages // 10))
    )
    timed_out = False
    try:
        async with asyncio.timeout_at(_loop_time(deadline)):
            load = await generator.run()
            await receiver.wait_for(list(load.sent_at))
    except TimeoutError:
        timed_out = True
    finally:
        sampler.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sampler
    await meters.sample()
    meters.mark(MARK_END)
    return Measured(generator.result, receiver, timed_out)


def _loop_time(deadline: float) -> float:
    """A time.monotonic() deadline on the running loop's clock."""
    loop = asyncio.get_running_loop()
    return loop.time() + (deadline - time.monotonic())


def build_result(
    opts: BenchOptions,
    segments: int,
    measured: Measured,
    meters: Meters,
    tenant: Tenant,
    books: Books,
) -> BenchResult:
    load, outcomes = measured.load, measured.receiver.outcomes
    start = load.first_sent or 0.0
    finals = {mid: outcomes[mid] for mid in load.sent_at if mid in outcomes}
    last_webhook = max((o.at for o in finals.values()), default=start)
    accept_span = (load.last_accepted or start) - start
    e2e_span = last_webhook - start
    processes = meters.figures()
    correctness = _correctness(load, measured.receiver, tenant, books)
    result = BenchResult(
        config=_config(opts, segments),
        accept={
            "requests": sum(load.statuses.values()) + sum(load.errors.values()),
            "accepted": load.accepted,
            "seconds": round(accept_span, 3),
            "rate": rate(load.accepted, accept_span),
            "requests_per_s": rate(load.statuses[202], accept_span),
            "latency_ms": latency_summary(load.accept_latencies),
            "http_statuses": {str(k): v for k, v in sorted(load.statuses.items())},
            "errors": dict(load.errors),
            "error_samples": load.error_samples,
            "late_starts": load.late_starts if opts.rate is not None else None,
        },
        end_to_end={
            "completed": len(finals),
            "seconds": round(e2e_span, 3),
            "rate": rate(len(finals), e2e_span),
            "latency_ms": latency_summary([o.at - load.sent_at[m] for m, o in finals.items()]),
        },
        statuses=dict(Counter(o.status for o in finals.values())),
        processes=processes,
        cpu=cpu_summary(processes, len(finals), opts.in_process),
        correctness=correctness,
    )
    result.problems = _problems(opts, measured, correctness)
    return result


def _config(opts: BenchOptions, segments: int) -> dict[str, Any]:
    return {
        "messages": opts.messages,
        "concurrency": opts.concurrency,
        "recipients_per_request": opts.recipients_per_request,
        "segments": segments,
        "body_chars": len(opts.body),
        "in_process": opts.in_process,
        "api_procs": 0 if opts.in_process else opts.api_procs,
        "worker_procs": 0 if opts.in_process else opts.worker_procs,
        "split_roles": opts.split_roles and not opts.in_process,
        "receipt_delay_s": list(opts.receipt_delay),
        "rate": opts.rate,
    }


def _correctness(
    load: LoadResult, receiver: WebhookReceiver, tenant: Tenant, books: Books
) -> dict[str, Any]:
    missing = receiver.missing(list(load.sent_at))
    charged = sum(
        (
            Decimal(str(o.cost))
            for mid, o in receiver.outcomes.items()
            if mid in load.sent_at and o.status != MessageStatus.FAILED
        ),
        Decimal(0),
    )
    return {
        "accepted": load.accepted,
        "lost": len(missing),
        "lost_sample": missing[:10],
        "duplicate_webhooks": receiver.duplicates,
        "unexpected_webhooks": sum(1 for m in receiver.outcomes if m not in load.sent_at),
        "messages_in_db": books.messages,
        "db_statuses": books.statuses,
        "initial_credits": number(tenant.credits),
        "charged": number(charged),
        "balance": number(books.balance),
        "ledger_sum": number(books.ledger_sum),
        "balance_ok": books.balance == tenant.credits - charged,
        "ledger_ok": books.ledger_sum == books.balance,
    }


def _problems(opts: BenchOptions, measured: Measured, k: dict[str, Any]) -> list[str]:
    problems = []
    if measured.timed_out:
        problems.append(f"the run did not finish within {opts.timeout:g} s")
    load = measured.load
    if load.accepted < opts.messages:
        problems.append(f"{opts.messages - load.accepted:,} messages were not accepted")
    if k["lost"]:
        problems.append(f"{k['lost']:,} accepted messages never reached a final status webhook")
    if k["messages_in_db"] != load.accepted:
        problems.append(
            f"{k['messages_in_db']:,} messages in the database, {load.accepted:,} accepted"
        )
    if not k["balance_ok"]:
        problems.append("the balance is not the opening credits minus what was charged")
    if not k["ledger_ok"]:
        problems.append("the balance is not the sum of the ledger")
    return problems
