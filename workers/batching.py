"""Turn a stream of AMQP deliveries into batches, so the database sees one round trip per batch.

A batch is handled when it reaches ``max_size`` or ``max_wait`` seconds after its first
message, whichever comes first; batches of one consumer run one at a time, so the next batch
grows while the database works. Messages are acked only after their batch was handled; if
handling fails they are requeued after a pause, so a dependency outage costs time, not data.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

import asyncpg
import structlog
from aio_pika.abc import AbstractIncomingMessage

from broker.db import CONNECTION_ERRORS
from broker.errors import BrokerError
from broker.queues import AMQP_ERRORS

log = structlog.get_logger(__name__)

BatchHandler = Callable[[list[AbstractIncomingMessage]], Awaitable[None]]

#: Failures that mean "try the same batch again later", not "this batch is poison".
RETRYABLE: tuple[type[BaseException], ...] = (
    BrokerError,
    asyncpg.PostgresError,
    *CONNECTION_ERRORS,
    *AMQP_ERRORS,
)


class BatchConsumer:
    def __init__(
        self,
        name: str,
        handle: BatchHandler,
        *,
        max_size: int = 100,
        max_wait: float = 0.005,
        retry_pause: float = 1.0,
    ) -> None:
        self.name = name
        self._handle = handle
        self._max_size = max_size
        self._max_wait = max_wait
        self._retry_pause = retry_pause
        self._pending: list[AbstractIncomingMessage] = []
        self._lock = asyncio.Lock()
        self._timer: asyncio.TimerHandle | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def on_message(self, message: AbstractIncomingMessage) -> None:
        self._pending.append(message)
        if len(self._pending) >= self._max_size:
            self._flush_soon()
        elif self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(self._max_wait, self._flush_soon)

    def _flush_soon(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if not self._pending:
            return
        task = asyncio.create_task(self._run())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(self) -> None:
        async with self._lock:
            batch, self._pending = self._pending[: self._max_size], self._pending[self._max_size :]
            if self._pending:
                self._flush_soon()
            if not batch:
                return
            await self._process(batch)

    async def _process(self, batch: list[AbstractIncomingMessage]) -> None:
        done = False
        try:
            await self._handle(batch)
            done = True
        except RETRYABLE as exc:
            log.warning(
                "batch failed, requeued", consumer=self.name, size=len(batch), error=str(exc)
            )
            await asyncio.sleep(self._retry_pause)
        finally:
            # Batches of a consumer run in delivery order on a channel of their own, so one
            # "multiple" ack (or nack) of the last tag settles exactly this batch.
            with contextlib.suppress(*AMQP_ERRORS):
                if done:
                    await batch[-1].ack(multiple=True)
                else:
                    await batch[-1].nack(multiple=True, requeue=True)

    async def drain(self) -> None:
        """Handle what is pending and wait for running batches (graceful stop)."""
        self._flush_soon()
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
