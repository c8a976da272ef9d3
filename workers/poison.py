"""Keep one bad item from blocking a whole batch forever.

A batch that fails on a constraint or data error would fail the same way on every redelivery,
and with it every good item batched alongside. So it is tried again item by item; an item that
still fails on its own goes to the dead-letter queue (``<prefix>.dead``) for an operator to
look at, and everything else goes through. Connection failures are not poison: they propagate
and the batch is retried whole.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

import asyncpg
import structlog

from broker.queues import Amqp

log = structlog.get_logger(__name__)

T = TypeVar("T")

#: Errors that the same input reproduces every time.
POISON: tuple[type[BaseException], ...] = (
    asyncpg.IntegrityConstraintViolationError,
    asyncpg.DataError,
)


async def dead_letter(amqp: Amqp, source: str, item: Any, error: BaseException) -> None:
    if dataclasses.is_dataclass(item) and not isinstance(item, type):
        item = dataclasses.asdict(item)
    log.error("item dead-lettered", source=source, error=str(error))
    await amqp.publish(amqp.names.dead, {"source": source, "error": str(error), "item": item})


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
