"""Run any set of worker roles in one process, sharing one pool and one AMQP connection.

Roles scale independently: run ``smsbroker worker --role submit`` on as many machines as the
carriers' binds allow, ``--role charge`` where PostgreSQL is close, and so on.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Protocol

import asyncpg
import structlog

from broker.config import Settings
from broker.db import create_pool
from broker.queues import Amqp, QueueNames
from workers.charge import ChargeWorker
from workers.events import EventsWorker
from workers.expander import Expander
from workers.forwarder import DeliverForwarder
from workers.metrics_server import MetricsServer
from workers.scheduler import Scheduler
from workers.submit import SubmitWorker
from workers.webhook_sender import WebhookSender
from workers.whatsapp_sender import WhatsAppSender

log = structlog.get_logger(__name__)

ROLES = ("charge", "scheduler", "expand", "submit", "whatsapp", "events", "webhooks")


class Role(Protocol):
    async def start(self) -> None: ...
    async def stop(self) -> None: ...


class WorkerSet:
    """The roles of one process; with ``metrics_port`` (0: any free port), also its
    Prometheus endpoint on ``metrics_host`` (workers.metrics_server)."""

    def __init__(
        self,
        settings: Settings,
        roles: tuple[str, ...] = ROLES,
        *,
        metrics_port: int | None = None,
        metrics_host: str = "127.0.0.1",
    ) -> None:
        unknown = set(roles) - set(ROLES)
        if unknown or not roles:
            raise ValueError(f"unknown roles {sorted(unknown)}; choose from {', '.join(ROLES)}")
        self.settings = settings
        self.roles = roles
        self.pool: asyncpg.Pool | None = None
        self.amqp = Amqp(settings.amqp_url, QueueNames(settings.queue_prefix))
        self.running: dict[str, Role] = {}
        self.metrics_port = metrics_port
        self.metrics_host = metrics_host
        self.metrics: MetricsServer | None = None

    async def start(self) -> None:
        self.pool = await create_pool(self.settings.database_url, size=self.settings.db_pool_size)
        await self.amqp.connect()
        await self.amqp.declare_topology(self.settings.webhook_retry_delays)
        if self.metrics_port is not None:
            metrics = MetricsServer(self.pool, self.amqp, self.metrics_host, self.metrics_port)
            await metrics.start()
            self.metrics = metrics
        for role in self.roles:
            worker = self._make(role, self.pool)
            await worker.start()
            self.running[role] = worker
            log.info("worker role started", role=role)

    def _make(self, role: str, pool: asyncpg.Pool) -> Role:
        if role == "charge":
            return ChargeWorker(pool, self.amqp)
        if role == "scheduler":
            return Scheduler(pool, self.amqp)
        if role == "expand":
            return Expander(pool, self.amqp, page_size=self.settings.expand_page_size)
        if role == "submit":
            return SubmitWorker(
                pool,
                self.amqp,
                DeliverForwarder(self.amqp),
                validity=self.settings.message_validity,
            )
        if role == "whatsapp":
            return WhatsAppSender(pool, self.amqp, validity=self.settings.message_validity)
        if role == "events":
            return EventsWorker(
                pool, self.amqp, receipt_wait=timedelta(seconds=self.settings.receipt_wait)
            )
        return WebhookSender(self.settings, pool, self.amqp)

    async def stop(self) -> None:
        if self.metrics is not None:
            await self.metrics.stop()
            self.metrics = None
        for role, worker in reversed(list(self.running.items())):
            await worker.stop()
            log.info("worker role stopped", role=role)
        self.running.clear()
        await self.amqp.close()
        if self.pool is not None:
            await self.pool.close()
