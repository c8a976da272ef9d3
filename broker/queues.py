"""RabbitMQ: queue names, declarations and confirmed publishing.

Every queue is a durable quorum queue. A publish returns only once the broker has confirmed
it, which is what lets the API answer 202 and lets workers ack their input after handing on.
Payloads are the JSON of the classes in broker.queue_messages; after the ingestion hop many
messages travel packed in one AMQP message.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aio_pika
import aiormq
import structlog
from aio_pika.abc import (
    AbstractIncomingMessage,
    AbstractQueue,
    AbstractRobustChannel,
    AbstractRobustConnection,
)

from broker.errors import DependencyUnavailable
from broker.queue_messages import to_json

log = structlog.get_logger(__name__)

#: Messages per AMQP message on a submit queue (the charge worker packs them, submit unpacks).
SUBMIT_CHUNK = 100

#: Seconds to wait for a publisher confirm before answering that RabbitMQ is unavailable.
PUBLISH_TIMEOUT = 5.0

AMQP_ERRORS: tuple[type[BaseException], ...] = (
    aiormq.exceptions.AMQPError,
    aio_pika.exceptions.AMQPException,
    ConnectionError,
    OSError,
    asyncio.TimeoutError,
    RuntimeError,  # aio-pika raises it for a publish on a channel that is being reopened
)


@dataclass(frozen=True)
class QueueNames:
    prefix: str

    @property
    def ingest(self) -> str:
        return f"{self.prefix}.ingest"

    @property
    def events(self) -> str:
        return f"{self.prefix}.events"

    @property
    def webhooks(self) -> str:
        return f"{self.prefix}.webhooks"

    @property
    def dead(self) -> str:
        """Items that failed on their own, kept for an operator (see workers.poison)."""
        return f"{self.prefix}.dead"

    def submit(self, connector: str) -> str:
        return f"{self.prefix}.submit.{connector}"

    def webhook_retry(self, delay: float) -> str:
        """A delay queue, named by its delay: changing WEBHOOK_RETRY_DELAYS makes new queues
        instead of clashing with the arguments of the old ones."""
        return f"{self.prefix}.webhooks.retry.{max(1, round(delay * 1000))}ms"


class Amqp:
    """One robust connection with a confirming publish channel, shared by a process."""

    def __init__(self, url: str, names: QueueNames) -> None:
        self.url = url
        self.names = names
        self._connection: AbstractRobustConnection | None = None
        self._channel: AbstractRobustChannel | None = None
        self._declared: dict[str, dict[str, Any]] = {}
        self.retry_delays: tuple[float, ...] = ()

    async def connect(self) -> None:
        try:
            self._connection = await aio_pika.connect_robust(
                self.url, timeout=10, client_properties={"connection_name": "smsbroker"}
            )
            self._channel = await self._connection.channel(publisher_confirms=True)
        except AMQP_ERRORS as exc:
            raise DependencyUnavailable(
                f"RabbitMQ unreachable: {exc}", code="BROKER_UNAVAILABLE"
            ) from exc

    @property
    def connection(self) -> AbstractRobustConnection:
        if self._connection is None:
            raise DependencyUnavailable("RabbitMQ not connected", code="BROKER_UNAVAILABLE")
        return self._connection

    @property
    def is_connected(self) -> bool:
        return (
            self._connection is not None
            and not self._connection.is_closed
            and bool(self._connection.connected.is_set())
        )

    async def close(self) -> None:
        if self._connection is not None:
            await self._connection.close()
            self._connection = None

    async def declare(self, name: str, **arguments: Any) -> None:
        if name in self._declared:
            return
        channel = await self._publish_channel()
        full = {"x-queue-type": "quorum", **arguments}
        await channel.declare_queue(name, durable=True, arguments=full)
        self._declared[name] = full

    async def declare_topology(self, retry_delays: tuple[float, ...]) -> None:
        for name in (self.names.ingest, self.names.events, self.names.webhooks, self.names.dead):
            await self.declare(name)
        self.retry_delays = retry_delays
        for delay in retry_delays:
            await self.declare(
                self.names.webhook_retry(delay),
                **{
                    "x-message-ttl": max(1, int(delay * 1000)),
                    "x-dead-letter-exchange": "",
                    "x-dead-letter-routing-key": self.names.webhooks,
                    "x-dead-letter-strategy": "at-least-once",
                    "x-overflow": "reject-publish",
                },
            )

    def retry_queue(self, tier: int) -> str:
        """The delay queue of retry ``tier`` (0: the first retry), per declare_topology."""
        return self.names.webhook_retry(self.retry_delays[tier])

    async def _publish_channel(self) -> AbstractRobustChannel:
        if self._channel is None:
            raise DependencyUnavailable("RabbitMQ not connected", code="BROKER_UNAVAILABLE")
        return self._channel

    async def publish(self, queue: str, payload: Any, *, message_id: str | None = None) -> None:
        """Publish and wait for the broker's confirm; DependencyUnavailable if it never comes.

        ``payload``: a queue message (broker.queue_messages), JSON bytes, or a plain JSON value.
        """
        channel = await self._publish_channel()
        message = aio_pika.Message(
            payload if isinstance(payload, bytes) else to_json(payload),
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            content_type="application/json",
            message_id=message_id,
        )
        try:
            confirmation = await channel.default_exchange.publish(
                message, queue, timeout=PUBLISH_TIMEOUT
            )
        except AMQP_ERRORS as exc:
            raise DependencyUnavailable(
                "the message queue is unreachable, try again shortly", code="BROKER_UNAVAILABLE"
            ) from exc
        if not isinstance(confirmation, aiormq.spec.Basic.Ack):
            raise DependencyUnavailable(
                f"RabbitMQ refused the message for {queue}", code="BROKER_UNAVAILABLE"
            )

    async def consume(
        self,
        queue: str,
        handler: Callable[[AbstractIncomingMessage], Awaitable[None]],
        *,
        prefetch: int,
    ) -> AbstractQueue:
        """Consume on a channel of its own, so a slow consumer never blocks publishing."""
        channel = await self.consumer_channel(prefetch)
        q = await self.queue_on(channel, queue)
        await q.consume(handler)
        return q

    async def consumer_channel(self, prefetch: int) -> AbstractRobustChannel:
        channel = await self.connection.channel()
        await channel.set_qos(prefetch_count=prefetch)
        return channel

    async def queue_on(self, channel: AbstractRobustChannel, queue: str) -> AbstractQueue:
        """The queue, declared on this channel so that a reconnect restores its consumers.

        A robust channel re-creates only the queues declared through it, and with them their
        consumers; a queue merely looked up would stay silent after RabbitMQ comes back.
        """
        await self.declare(queue)
        return await channel.declare_queue(queue, durable=True, arguments=self._declared[queue])
