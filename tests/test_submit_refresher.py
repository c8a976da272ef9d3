"""The submit worker's connector refresher outlives a RabbitMQ outage."""

from __future__ import annotations

import asyncio
import uuid

import asyncpg

from broker.config import Settings
from broker.queues import Amqp, QueueNames
from tests.harness import add_connector, start_sim
from workers.forwarder import DeliverForwarder
from workers.submit import SubmitWorker


async def consumers_of(settings: Settings, queue: str) -> int:
    probe = Amqp(settings.amqp_url, QueueNames(settings.queue_prefix))
    await probe.connect()
    try:
        channel = await probe.connection.channel()
        declared = await channel.declare_queue(queue, passive=True)
        return int(declared.declaration_result.consumer_count or 0)
    finally:
        await probe.close()


async def test_connector_added_during_an_amqp_outage_is_consumed_afterwards(
    settings: Settings, pool: asyncpg.Pool
) -> None:
    """Before: the refresher died on the AMQP error (it caught PostgreSQL and OS errors only),
    and the connector it was starting stayed registered but never consumed."""
    sim = await start_sim()
    amqp = Amqp(settings.amqp_url, QueueNames(settings.queue_prefix))
    await amqp.connect()
    worker = SubmitWorker(pool, amqp, DeliverForwarder(amqp), refresh_every=0.2)
    await worker.start()
    name = f"late-{uuid.uuid4().hex[:6]}"
    try:
        await amqp.close()  # RabbitMQ away for the worker
        await add_connector(pool, name, sim.port)
        await asyncio.sleep(1.0)  # several refreshes fail meanwhile
        await amqp.connect()
        queue = amqp.names.submit(name)
        async with asyncio.timeout(10):
            while True:
                await amqp.declare(queue)
                if await consumers_of(settings, queue) >= 1:
                    break
                await asyncio.sleep(0.2)
    finally:
        await worker.stop()
        await amqp.close()
        await sim.stop()
        await pool.execute("DELETE FROM connectors WHERE name = $1", name)
