"""Many callers' items in one confirmed AMQP message; each caller awaits that one confirm.

A publish with confirm costs RabbitMQ and the client far more than the bytes it carries, so
concurrent API requests (or deliver_sm from the binds) that arrive within a few milliseconds
of each other share one: ``{"v": 1, key: [item, item, ...]}``. Items are queue messages
(broker.queue_messages), each serialized once by its caller's task; a caller returns only once
the message holding its item is confirmed, so durability per caller is unchanged.
"""

from __future__ import annotations

import asyncio
from typing import Any

from broker.errors import DependencyUnavailable
from broker.queue_messages import pack, to_json
from broker.queues import Amqp


class PackedPublisher:
    def __init__(
        self, amqp: Amqp, queue: str, key: str, *, max_items: int = 200, max_wait: float = 0.002
    ) -> None:
        self.amqp = amqp
        self.queue = queue
        self.key = key
        self._max_items = max_items
        self._max_wait = max_wait
        self._pending: list[tuple[bytes, asyncio.Future[None]]] = []
        self._timer: asyncio.TimerHandle | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def publish(self, item: Any) -> None:
        """Return once ``item`` is durable; DependencyUnavailable if RabbitMQ did not confirm.

        ``item``: a queue message model (or, from a previous-version caller, a plain dict).
        """
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.append((to_json(item), future))
        if len(self._pending) >= self._max_items:
            self._flush()
        elif self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(self._max_wait, self._flush)
        await future

    def _flush(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        batch, self._pending = self._pending, []
        if batch:
            task = asyncio.create_task(self._send(batch))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _send(self, batch: list[tuple[bytes, asyncio.Future[None]]]) -> None:
        error: DependencyUnavailable | None = None
        try:
            await self.amqp.publish(self.queue, pack(self.key, [item for item, _ in batch]))
        except DependencyUnavailable as exc:
            error = exc
        for _, future in batch:
            if future.done():  # its caller went away (request cancelled)
                continue
            if error is None:
                future.set_result(None)
            else:
                future.set_exception(error)
