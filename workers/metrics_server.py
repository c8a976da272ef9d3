"""A worker process's Prometheus endpoint (``smsbroker worker --metrics-port``).

Serves ``GET /metrics`` with everything this process counts (broker.metrics, the workers'
own counters) and, every few seconds, samples what no single worker sees as it happens: the
depth of every queue (a passive declare per queue, on a channel of its own) and the receipts
parked until their part is recorded. Sampling runs only while the endpoint is on, so a worker
without a metrics port pays nothing for it.
"""

from __future__ import annotations

import asyncio

import asyncpg
import structlog
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, Gauge, generate_latest

from broker.db import CONNECTION_ERRORS
from broker.errors import DependencyUnavailable
from broker.queues import AMQP_ERRORS, Amqp
from broker.store import connectors
from broker.store import receipts as receipts_store

log = structlog.get_logger(__name__)

QUEUE_MESSAGES = Gauge(
    "smsbroker_queue_messages", "Messages ready in a queue, sampled every few seconds", ["queue"]
)
QUEUE_CONSUMERS = Gauge(
    "smsbroker_queue_consumers", "Consumers attached to a queue, sampled with its depth", ["queue"]
)
RECEIPTS_PENDING = Gauge(
    "smsbroker_receipts_pending",
    "Receipts parked until their part is recorded (pending_receipts), sampled",
)

DEFAULT_SAMPLE_EVERY = 5.0

#: What makes one round of sampling fail, not the sampler: it tries again next round.
SAMPLING_ERRORS: tuple[type[BaseException], ...] = (
    *AMQP_ERRORS,
    *CONNECTION_ERRORS,
    DependencyUnavailable,
)


class MetricsPortError(Exception):
    """The metrics port could not be listened on; ``error`` says why (the CLI words it)."""

    def __init__(self, error: OSError) -> None:
        super().__init__(str(error))
        self.error = error


class MetricsServer:
    """``GET /metrics`` on ``host:port`` (port 0: any free one, see ``port``) and the sampler."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        amqp: Amqp,
        host: str,
        port: int,
        *,
        sample_every: float = DEFAULT_SAMPLE_EVERY,
    ) -> None:
        self._pool = pool
        self._amqp = amqp
        self.host = host
        self.port = port
        self._sample_every = sample_every
        self._runner: web.AppRunner | None = None
        self._sampler: asyncio.Task[None] | None = None
        self._sampled: set[str] = set()

    async def start(self) -> None:
        """Sample once, listen (MetricsPortError when the port is taken), then sample in the
        background. Sampling first: a scrape that came while the first sample was under way
        found no queue gauges."""
        await self._sample_once()
        app = web.Application()
        app.router.add_get("/metrics", self._metrics)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        try:
            await web.TCPSite(runner, self.host, self.port).start()
        except OSError as exc:
            await runner.cleanup()
            raise MetricsPortError(exc) from exc
        self._runner = runner
        self.port = runner.addresses[0][1]
        self._sampler = asyncio.create_task(self._sample_loop(), name="metrics sampler")
        log.info("metrics served", host=self.host, port=self.port, path="/metrics")

    async def stop(self) -> None:
        if self._sampler is not None:
            self._sampler.cancel()
            await asyncio.gather(self._sampler, return_exceptions=True)
            self._sampler = None
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _metrics(self, request: web.Request) -> web.Response:
        response = web.Response(body=generate_latest(REGISTRY))
        response.headers["Content-Type"] = CONTENT_TYPE_LATEST
        return response

    async def queues(self) -> list[str]:
        """Every queue of this gateway: the fixed ones, webhook retries, each connector's."""
        names = self._amqp.names
        found = [names.ingest, names.events, names.webhooks, names.dead]
        found += [names.webhook_retry(d) for d in self._amqp.retry_delays]
        rows = await connectors.all_rows(self._pool)
        found += [names.submit(row["name"]) for row in rows]
        found += [names.submit(c.name) for c in await connectors.whatsapp_connectors(self._pool)]
        return found

    async def sample(self) -> None:
        """Read every queue's depth and the parked receipts into the gauges once."""
        RECEIPTS_PENDING.set(await receipts_store.count_pending(self._pool))
        queues = await self.queues()
        seen: set[str] = set()
        channel = await self._amqp.connection.channel()
        try:
            for queue in queues:
                if channel.is_closed:
                    # A queue not declared yet closes the channel (404): go on with a new one.
                    channel = await self._amqp.connection.channel()
                try:
                    declared = await channel.declare_queue(queue, passive=True)
                except AMQP_ERRORS:
                    continue
                result = declared.declaration_result
                QUEUE_MESSAGES.labels(queue).set(result.message_count or 0)
                QUEUE_CONSUMERS.labels(queue).set(result.consumer_count or 0)
                seen.add(queue)
        finally:
            if not channel.is_closed:
                await channel.close()
        for gone in self._sampled - seen:
            QUEUE_MESSAGES.remove(gone)
            QUEUE_CONSUMERS.remove(gone)
        self._sampled = seen

    async def _sample_once(self) -> None:
        try:
            await self.sample()
        except SAMPLING_ERRORS as exc:
            log.warning("metrics sampling failed", error=str(exc))

    async def _sample_loop(self) -> None:
        while True:
            await asyncio.sleep(self._sample_every)
            await self._sample_once()
