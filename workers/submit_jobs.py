"""Handing messages to their connectors' submit queues, as SubmitJobs of at most SUBMIT_CHUNK
ids, all published at once and confirmed: the charge worker does it for what it has just
charged, the scheduler for what has come due."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from uuid import UUID

from broker.queue_messages import SubmitJob
from broker.queues import SUBMIT_CHUNK, Amqp


async def hand_on(
    amqp: Amqp,
    by_connector: Mapping[str, Sequence[UUID]],
    plain_bodies: Mapping[UUID, str] | None = None,
) -> None:
    """Publish the jobs; ``plain_bodies`` (an OTP's text, never stored) ride with their ids."""
    plain = plain_bodies or {}
    publishes = []
    for connector, ids in by_connector.items():
        queue = amqp.names.submit(connector)
        await amqp.declare(queue)
        for start in range(0, len(ids), SUBMIT_CHUNK):
            chunk = list(ids[start : start + SUBMIT_CHUNK])
            texts = {i: plain[i] for i in chunk if i in plain}
            publishes.append(amqp.publish(queue, SubmitJob(ids=chunk, plain_bodies=texts)))
    await asyncio.gather(*publishes)
