"""RabbitMQ as the bench sees it: who consumes what, and removing the run's queues after."""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable, Sequence

import aio_pika

from broker.queues import AMQP_ERRORS, QueueNames


def consumers_at_least(
    amqp_url: str, queues: Sequence[str], count: int
) -> Callable[[], Awaitable[bool]]:
    """Every queue exists and has ``count`` consumers (one per worker process consuming it)."""

    async def probe() -> bool:
        try:
            connection = await aio_pika.connect(amqp_url, timeout=5)
        except AMQP_ERRORS:
            return False
        try:
            for name in queues:
                if await _consumers(connection, name) < count:
                    return False
            return True
        finally:
            await connection.close()

    return probe


async def _consumers(connection: aio_pika.abc.AbstractConnection, name: str) -> int:
    try:
        channel = await connection.channel()
        queue = await channel.declare_queue(name, passive=True)
    except AMQP_ERRORS:  # not declared yet: the passive declare closed the channel
        return -1
    result = queue.declaration_result.consumer_count
    await channel.close()
    return int(result or 0)


def queue_names(
    names: QueueNames, connectors: Sequence[str], retry_delays: Sequence[float]
) -> list[str]:
    fixed = [names.ingest, names.events, names.webhooks, names.dead]
    return (
        fixed
        + [names.submit(c) for c in connectors]
        + [names.webhook_retry(d) for d in retry_delays]
    )


async def delete_queues(amqp_url: str, queues: Sequence[str]) -> None:
    """Delete the run's queues; one that is already gone is no error."""
    connection = await aio_pika.connect(amqp_url, timeout=10)
    try:
        for name in queues:
            with contextlib.suppress(*AMQP_ERRORS):
                channel = await connection.channel()
                await channel.queue_delete(name)
                await channel.close()
    finally:
        await connection.close()
