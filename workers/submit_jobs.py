"""Handing messages to their connectors' submit queues, as SubmitJobs of at most SUBMIT_CHUNK
ids, all published at once and confirmed: the charge worker does it for what it has just
charged, the scheduler for what has come due."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any
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


def expired(
    row: Mapping[str, Any], validity: float, taker: str, now: datetime | None = None
) -> tuple[str, str] | None:
    """Why a claimed message must not go out any more (EXPIRED), or None: its own validity
    period ended, or ``taker`` (a carrier, WhatsApp) did not take it within ``validity``
    seconds of when it was due (a scheduled message is not old)."""
    now = now or datetime.now(UTC)
    expires_at: datetime | None = row["expires_at"]
    if expires_at is not None and now >= expires_at:
        return "EXPIRED", f"its validity period ended before {taker} took it"
    if (now - row["due_at"]).total_seconds() > validity:
        return "EXPIRED", f"{taker} did not take the message within {validity:.0f} s"
    return None
