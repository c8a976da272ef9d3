"""Keep one bad item from blocking a whole batch forever, and set aside what cannot be used.

A batch that fails on a constraint or data error would fail the same way on every redelivery,
and with it every good item batched alongside. So it is tried again item by item; an item that
still fails on its own goes to the dead-letter queue (``<prefix>.dead``) for an operator to
look at, and everything else goes through. Connection failures are not poison: they propagate
and the batch is retried whole (see workers.consumer).

Whatever is dead-lettered is logged with the queue, the account and message ids it names, and
the reason (for a message of an unknown version: that version).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

import asyncpg
import structlog
from aio_pika.abc import AbstractIncomingMessage
from prometheus_client import Counter
from pydantic import BaseModel

from broker.queue_messages import NotDecodable, Rejected, identify, loads_slow
from broker.queues import Amqp

log = structlog.get_logger(__name__)

T = TypeVar("T")

#: Errors that the same input reproduces every time.
POISON: tuple[type[BaseException], ...] = (
    asyncpg.IntegrityConstraintViolationError,
    asyncpg.DataError,
)


DEAD_LETTERED = Counter(
    "smsbroker_dead_lettered_total",
    "Items set aside on the dead-letter queue for an operator, by the queue they came from",
    ["source"],
)

#: Fields that only the carrier may see (an OTP's text): never dead-lettered or logged.
CARRIER_ONLY = frozenset({"plain_body", "plain_bodies"})


def _plain(item: Any) -> Any:
    if isinstance(item, BaseModel):
        item = item.model_dump(mode="json")
    elif dataclasses.is_dataclass(item) and not isinstance(item, type):
        item = dataclasses.asdict(item)
    if isinstance(item, dict):
        return {k: v for k, v in item.items() if k not in CARRIER_ONLY}
    return item


async def dead_letter(
    amqp: Amqp,
    source: str,
    item: Any,
    error: BaseException | str,
    *,
    message_ids: Sequence[str] = (),
    version: object = None,
) -> None:
    """Publish one item to ``<prefix>.dead`` as ``{"source", "error", "item"}`` and log it."""
    item = _plain(item)
    accounts, found = identify(item)
    ids = list(dict.fromkeys([*message_ids, *found]))
    bound = log.bind(
        queue=source, error=str(error), account_ids=accounts, message_ids=ids[:20], count=len(ids)
    )
    if version is not None:
        bound.error("queue message of an unknown version dead-lettered", version=repr(version))
    else:
        bound.error("item dead-lettered")
    await amqp.publish(amqp.names.dead, {"source": source, "error": str(error), "item": item})
    DEAD_LETTERED.labels(source).inc()


async def dead_letter_rejected(amqp: Amqp, source: str, rejected: Sequence[Rejected]) -> None:
    for r in rejected:
        await dead_letter(amqp, source, r.item, r.reason, version=r.version)


async def dead_letter_body(
    amqp: Amqp, source: str, body: bytes, error: BaseException | str, *, version: object = None
) -> None:
    """A whole AMQP message, kept as JSON when it is JSON, as text otherwise."""
    try:
        item: Any = loads_slow(body)
    except NotDecodable:
        item = body.decode("utf-8", errors="replace")
    await dead_letter(amqp, source, item, error, version=version)


async def dead_letter_deliveries(
    amqp: Amqp, source: str, deliveries: Sequence[AbstractIncomingMessage], error: BaseException
) -> None:
    for delivery in deliveries:
        await dead_letter_body(amqp, source, delivery.body, repr(error))


async def process_isolating(
    items: Sequence[T],
    process: Callable[[Sequence[T]], Awaitable[None]],
    on_poison: Callable[[T, BaseException], Awaitable[None]],
) -> None:
    try:
        await process(items)
        return
    except POISON as exc:
        if len(items) == 1:
            await on_poison(items[0], exc)
            return
        log.warning("batch hit a poison item; retrying item by item", size=len(items))
    for item in items:
        try:
            await process([item])
        except POISON as exc:
            await on_poison(item, exc)
