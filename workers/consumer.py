"""The one consumer loop every worker role runs on.

Deliveries are handled one by one (``batch=1``, concurrently up to the prefetch) or in batches
(sequentially, so the next batch grows while the database works). Both can also be bounded by
the size of what they carry, since one AMQP message packs one item or hundreds: one-by-one
handlers by the bytes in hand at once (``max_bytes``), batches by the bytes each takes
(``batch_bytes``); the prefetch or the batch size alone would let a backlog's largest packs all
be parsed and worked on at once. What a failure means is decided here, once:

* transient (a dependency is away: PostgreSQL, RabbitMQ, a timeout): the same work is tried
  again after a pause that doubles up to a cap — never a hot loop, and never given up, since
  work must not be lost to an outage;
* unexpected (a bug, an error no one named): tried a bounded number of times with the same
  backoff, then dead-lettered with the error, its account and message ids logged;
* poison (an item that fails alone, every time) is the handlers' business: see workers.poison.

A stop (SIGTERM) cancels the consumer so that no new delivery is taken, lets the work in flight
finish within a grace period, and closes the channel: whatever is still unacked then goes back
to the queue.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import aio_pika
import aiormq
import asyncpg
import structlog
from aio_pika.abc import AbstractIncomingMessage, AbstractQueue, AbstractRobustChannel

from broker.db import CONNECTION_ERRORS
from broker.errors import DependencyUnavailable
from broker.queues import AMQP_ERRORS, Amqp
from workers.poison import dead_letter_deliveries

log = structlog.get_logger(__name__)

#: The one definition of "try again later": a dependency is away or busy, the input is fine.
TRANSIENT: tuple[type[BaseException], ...] = (
    DependencyUnavailable,
    *CONNECTION_ERRORS,  # OSError, asyncpg connection errors, TimeoutError
    asyncpg.SerializationError,
    asyncpg.DeadlockDetectedError,
    aiormq.exceptions.AMQPError,
    aio_pika.exceptions.AMQPException,
    ConnectionError,
    asyncio.TimeoutError,
)

#: Handles deliveries; the int is the attempt (1: first), so a retry can take back its own work.
#: Seconds a stop waits for RabbitMQ to confirm a cancel or a close: a channel whose connection
#: is gone would otherwise wait for a reconnect that may never come.
_AMQP_CALL_TIMEOUT = 5.0

#: Bodies per batch for the batched roles: some hundreds to a thousand-odd requests or receipts,
#: past the size where a bigger statement is cheaper per row, and a bound on what one batch
#: holds parsed when a backlog has packed hundreds of items per delivery.
BATCH_BYTES = 256 * 1024

Handler = Callable[[list[AbstractIncomingMessage], int], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Backoff:
    """Pauses that grow (``first`` × ``factor``ⁿ) up to ``cap`` seconds.

    The cap is also the longest a worker idles after a dependency comes back: 5 s keeps an
    outage to a few attempts a second across the roles, and recovery within seconds.
    """

    first: float = 0.5
    factor: float = 2.0
    cap: float = 5.0

    def delay(self, attempt: int) -> float:
        """The pause after failed attempt number ``attempt`` (1-based)."""
        return float(min(self.cap, self.first * self.factor ** max(0, attempt - 1)))


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    backoff: Backoff = Backoff()
    #: Attempts an unexpected error gets before its deliveries are dead-lettered.
    unexpected_attempts: int = 5


class ByteBudget:
    """Room for ``limit`` bytes of deliveries in hand; one larger than the limit goes alone."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0
        self._changed = asyncio.Condition()

    def _fits(self, size: int) -> bool:
        return self.used == 0 or self.used + size <= self.limit

    @contextlib.asynccontextmanager
    async def hold(self, size: int) -> AsyncIterator[None]:
        async with self._changed:
            await self._changed.wait_for(lambda: self._fits(size))
            self.used += size
        try:
            yield
        finally:
            async with self._changed:
                self.used -= size
                self._changed.notify_all()


class Consumer:
    """Consume ``queue`` on a channel of its own and run ``handle`` per delivery or batch.

    ``handle`` raises to say the work is not done; returning means it is, and the deliveries
    are acked.
    """

    def __init__(
        self,
        amqp: Amqp,
        queue: str,
        handle: Handler,
        *,
        name: str,
        prefetch: int,
        batch: int = 1,
        max_wait: float = 0.005,
        max_bytes: int | None = None,
        batch_bytes: int | None = None,
        policy: RetryPolicy | None = None,
        grace: float = 30.0,
    ) -> None:
        self.amqp = amqp
        self.queue = queue
        self.name = name
        self.policy = policy or RetryPolicy()
        self.grace = grace
        self._handle = handle
        self._prefetch = prefetch
        self._batch = batch
        self._max_wait = max_wait
        if max_bytes is not None and batch != 1:
            raise ValueError("max_bytes bounds one-by-one handlers (batch=1) only")
        self._budget = ByteBudget(max_bytes) if max_bytes is not None else None
        if batch_bytes is not None and batch == 1:
            raise ValueError("batch_bytes bounds batches (batch > 1) only")
        self._batch_bytes = batch_bytes
        self._channel: AbstractRobustChannel | None = None
        self._queue: AbstractQueue | None = None
        self._tag: str | None = None
        self._stopping = asyncio.Event()
        self._pending: list[AbstractIncomingMessage] = []
        self._timer: asyncio.TimerHandle | None = None
        #: The one task handling ``_pending`` batch after batch, while there is any.
        self._batcher: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self._channel = await self.amqp.consumer_channel(self._prefetch)
        self._queue = await self.amqp.queue_on(self._channel, self.queue)
        self._tag = await self._queue.consume(self._on_message)

    # --- taking deliveries ---------------------------------------------------------------

    async def _on_message(self, message: AbstractIncomingMessage) -> None:
        if self._stopping.is_set():
            # Buffered before the cancel took effect: hand it back untouched.
            await self._hand_back(message)
            return
        if self._batch == 1:
            await self._run_one(message)
            return
        self._pending.append(message)
        if len(self._pending) >= self._batch:
            self._flush_soon()
        elif self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(self._max_wait, self._flush_soon)

    async def _run_one(self, message: AbstractIncomingMessage) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        room = (
            contextlib.nullcontext()
            if self._budget is None
            else self._budget.hold(len(message.body))
        )
        try:
            async with room:
                if self._stopping.is_set():  # it waited for room while a stop came
                    await self._hand_back(message)
                    return
                await self.run([message])
        finally:
            if task is not None:
                self._tasks.discard(task)

    @staticmethod
    async def _hand_back(message: AbstractIncomingMessage) -> None:
        with contextlib.suppress(*AMQP_ERRORS):
            await message.nack(requeue=True)

    def _flush_soon(self) -> None:
        """Start the batcher unless it runs: it takes what arrives while it works. (A task per
        flush, queued on a lock, made one task per delivery that arrived during a batch:
        thousands under a backlog, holding memory and CPU for nothing.)"""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if not self._pending or self._batcher is not None:
            return
        task = self._batcher = asyncio.create_task(self._run_pending())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run_pending(self) -> None:
        try:
            while self._pending:
                await self.run(self._take_batch())
        finally:
            self._batcher = None

    def _take_batch(self) -> list[AbstractIncomingMessage]:
        """The next batch: up to ``batch`` deliveries and, if set, ``batch_bytes`` of bodies
        (at least one delivery). Packs vary from one item to hundreds, so a count of deliveries
        alone lets a backlog's batches, and the memory they are parsed into, grow tenfold."""
        count = min(self._batch, len(self._pending))
        if self._batch_bytes is not None:
            size = 0
            for i, message in enumerate(self._pending[:count]):
                size += len(message.body)
                if size > self._batch_bytes and i > 0:
                    count = i
                    break
        batch, self._pending = self._pending[:count], self._pending[count:]
        return batch

    # --- running one unit of work --------------------------------------------------------

    async def run(self, deliveries: list[AbstractIncomingMessage]) -> None:
        """Handle ``deliveries`` until done, dead-lettered, or handed back on a stop."""
        transient = unexpected = 0
        while True:
            try:
                await self._handle(deliveries, 1 + transient + unexpected)
            except TRANSIENT as exc:
                transient += 1
                why, attempt, error = "on a dependency", transient, exc
            except Exception as exc:  # noqa: BLE001 - the one boundary where a bug is caught
                unexpected += 1
                if unexpected >= self.policy.unexpected_attempts:
                    log.exception("work failed unexpectedly; giving up", consumer=self.name)
                    await self._give_up(deliveries, exc)
                    return
                why, attempt, error = "unexpectedly", unexpected, exc
            else:
                await self._settle(deliveries, ack=True)
                return
            pause = self.policy.backoff.delay(attempt)
            log.warning(
                f"work failed {why}; retrying",
                consumer=self.name,
                size=len(deliveries),
                attempt=attempt,
                pause=pause,
                error=repr(error),
            )
            if not await self._pause(pause, deliveries):
                return

    async def _pause(self, seconds: float, deliveries: list[AbstractIncomingMessage]) -> bool:
        """Wait before the next attempt; False (work handed back) if a stop came meanwhile
        or the deliveries' channel is gone (RabbitMQ redelivers them then anyway)."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)
        if self._stopping.is_set():
            await self._settle(deliveries, ack=False)
            return False
        return not deliveries[-1].channel.is_closed

    async def _give_up(
        self, deliveries: list[AbstractIncomingMessage], error: BaseException
    ) -> None:
        """Dead-letter the deliveries, then ack them; until the dead-letter queue has them,
        the work is retried as transient (it must not be lost in between)."""
        attempt = 0
        while True:
            try:
                await dead_letter_deliveries(self.amqp, self.queue, deliveries, error)
            except TRANSIENT as exc:
                attempt += 1
                log.warning("dead-lettering failed; retrying", consumer=self.name, error=repr(exc))
                if not await self._pause(self.policy.backoff.delay(attempt), deliveries):
                    return
                continue
            await self._settle(deliveries, ack=True)
            return

    async def _settle(self, deliveries: list[AbstractIncomingMessage], *, ack: bool) -> None:
        # Batches of a consumer run in delivery order on a channel of their own, so one
        # "multiple" ack (or nack) of the last tag settles exactly this batch.
        last, multiple = deliveries[-1], len(deliveries) > 1
        try:
            if ack:
                await last.ack(multiple=multiple)
            else:
                await last.nack(multiple=multiple, requeue=True)
        except AMQP_ERRORS as exc:
            # The channel is gone; RabbitMQ redelivers, which duplicates at worst.
            log.warning("deliveries not settled", consumer=self.name, error=repr(exc))

    # --- stopping ------------------------------------------------------------------------

    async def stop(self, grace: float | None = None) -> None:
        """Take no new deliveries, let those in flight finish within ``grace`` seconds, close."""
        grace = self.grace if grace is None else grace
        if self._queue is not None and self._tag is not None:
            try:
                await asyncio.wait_for(self._queue.cancel(self._tag), _AMQP_CALL_TIMEOUT)
            except AMQP_ERRORS as exc:
                log.warning("consumer cancel failed", consumer=self.name, error=repr(exc))
            self._tag = None
        # Work being handled finishes; work waiting to be retried is handed back at once.
        self._stopping.set()
        self._flush_soon()
        await self._drain(grace)
        if self._channel is not None:
            try:
                await asyncio.wait_for(self._channel.close(), _AMQP_CALL_TIMEOUT)
            except AMQP_ERRORS as exc:
                log.warning("consumer channel close failed", consumer=self.name, error=repr(exc))
            self._channel = None

    async def _drain(self, grace: float) -> None:
        """Wait for the work in flight; past ``grace``, cancel it unacked (it is redelivered
        once the channel closes)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace
        while self._tasks and (remaining := deadline - loop.time()) > 0:
            await asyncio.wait(set(self._tasks), timeout=remaining)
        late = set(self._tasks)
        for task in late:
            task.cancel()
        await asyncio.gather(*late, return_exceptions=True)
