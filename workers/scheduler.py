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

import asyncio
import contextlib
from collections import defaultdict
from uuid import UUID

import asyncpg
import structlog

from broker.queues import Amqp
from broker.store import schedule
from workers.consumer import TRANSIENT, Backoff
from workers.submit_jobs import hand_on

log = structlog.get_logger(__name__)


class Scheduler:
    def __init__(
        self, pool: asyncpg.Pool, amqp: Amqp, *, every: float = 0.5, batch: int = 1000
    ) -> None:
        self.pool = pool
        self.amqp = amqp
        self.every = every
        self.batch = batch
        self._task: asyncio.Task[None] | None = None
        self._backoff = Backoff()

    async def start(self) -> None:
        self._task = asyncio.create_task(self._loop())

    async def stop(self) -> None:
        """Stop between passes: a pass in flight is cancelled and its transaction rolls back
        (its rows stay scheduled; jobs it published still send them once)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _loop(self) -> None:
        failures = 0
        while True:
            try:
                moved = await self.run_once()
                failures = 0
            except TRANSIENT as exc:
                failures += 1
                pause = self._backoff.delay(failures)
                log.warning(
                    "scheduler pass failed", error=repr(exc), failures=failures, pause=pause
                )
                await asyncio.sleep(pause)
                continue
            except Exception:  # noqa: BLE001 - a bug must not stop every scheduled send
                failures += 1
                log.exception("scheduler pass failed unexpectedly", failures=failures)
                await asyncio.sleep(self._backoff.delay(failures))
                continue
            # A full batch: more may be due already, so go on at once.
            if moved < self.batch:
                await asyncio.sleep(self.every)

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
