"""Queue topology on a real RabbitMQ."""

from __future__ import annotations

import uuid

from broker.queues import Amqp, QueueNames


async def test_changed_retry_delays_declare_new_queues_instead_of_clashing(amqp_url: str) -> None:
    prefix = f"q{uuid.uuid4().hex[:8]}"
    first, second = Amqp(amqp_url, QueueNames(prefix)), Amqp(amqp_url, QueueNames(prefix))
    await first.connect()
    await second.connect()
    try:
        await first.declare_topology((1.0, 5.0))
        await second.declare_topology((1.0, 30.0))  # an operator changed the delays
        assert second.retry_queue(1) == f"{prefix}.webhooks.retry.30000ms"
        assert first.retry_queue(1) == f"{prefix}.webhooks.retry.5000ms"
        await second.publish(second.retry_queue(0), {"retries": []})
    finally:
        await first.close()
        await second.close()
