"""The scheduler: scheduled messages handed to their connector's submit queue when they are due.

Every ``every`` seconds, in one transaction: lock the due rows (FOR UPDATE SKIP LOCKED, so any
number of schedulers share the work and never take one row twice), publish their SubmitJobs
per connector and wait for RabbitMQ's confirms, then mark them queued and commit. A scheduler
killed after publishing but before its commit leaves the rows scheduled; the published jobs
still claim them (the submit claim accepts a due scheduled row), and a job published again
later finds them taken: each message is sent once.

Messages were charged and routed when they were accepted (the schema holds that a scheduled
message has a connector).
"""

from __future__ import annotations

from collections import defaultdict
from uuid import UUID

import asyncpg
import structlog

from broker.queues import Amqp
from broker.store import schedule
from workers.polling import PollingWorker
from workers.submit_jobs import hand_on

log = structlog.get_logger(__name__)


class Scheduler(PollingWorker):
    name = "scheduler"

    def __init__(
        self, pool: asyncpg.Pool, amqp: Amqp, *, every: float = 0.5, batch: int = 1000
    ) -> None:
        super().__init__(every=every, batch=batch)
        self.pool = pool
        self.amqp = amqp

    async def run_once(self) -> int:
        """Hand on what is due now (up to one batch); how many messages were taken."""
        async with self.pool.acquire() as conn, conn.transaction():
            due = await schedule.take_due(conn, self.batch)
            if not due:
                return 0
            by_connector: dict[str, list[UUID]] = defaultdict(list)
            for d in due:
                by_connector[d.connector].append(d.id)
            await hand_on(self.amqp, by_connector)
            await schedule.mark_queued(conn, [d.id for d in due])
        log.info("scheduled messages due", count=len(due))
        return len(due)
