"""The one consumer loop on a real RabbitMQ: backoff, bounded retries, dead letters, stop."""

from __future__ import annotations

import asyncio
import json
import time
import uuid

import pytest
from aio_pika.abc import AbstractIncomingMessage

from broker.errors import DependencyUnavailable
from broker.queues import Amqp
from workers.consumer import Backoff, ByteBudget, Consumer, RetryPolicy

FAST = RetryPolicy(Backoff(first=0.05, factor=2.0, cap=0.2), unexpected_attempts=3)


async def depth(amqp: Amqp, queue: str) -> int:
    channel = await amqp.connection.channel()
    try:
        declared = await channel.declare_queue(queue, passive=True)
        count = declared.declaration_result.message_count
        return int(count or 0)
    finally:
        await channel.close()


async def take_dead(amqp: Amqp) -> dict[str, object]:
    channel = await amqp.connection.channel()
    try:
        queue = await channel.get_queue(amqp.names.dead, ensure=False)
        async with asyncio.timeout(10):
            while (message := await queue.get(fail=False)) is None:
                await asyncio.sleep(0.05)
        await message.ack()
        found: dict[str, object] = json.loads(message.body)
        return found
    finally:
        await channel.close()


async def test_unexpected_error_backs_off_then_is_dead_lettered_with_its_ids(amqp: Amqp) -> None:
    """Before: an unexpected error requeued the batch at once, for ever (a hot loop)."""
    calls: list[float] = []

    async def broken(deliveries: list[AbstractIncomingMessage], attempt: int) -> None:
        calls.append(time.monotonic())
        raise ValueError("a bug")

    consumer = Consumer(amqp, amqp.names.ingest, broken, name="t", prefetch=10, policy=FAST)
    await consumer.start()
    account, message = str(uuid.uuid4()), str(uuid.uuid4())
    await amqp.publish(
        amqp.names.ingest, {"requests": [{"account_id": account, "recipients": [[message, "+1"]]}]}
    )
    dead = await take_dead(amqp)
    await consumer.stop(1)
    assert len(calls) == 3
    gaps = [b - a for a, b in zip(calls, calls[1:], strict=False)]
    assert gaps[0] >= 0.045 and gaps[1] >= 0.095  # 0.05 s, then doubled
    assert dead["source"] == amqp.names.ingest and "a bug" in str(dead["error"])
    assert await depth(amqp, amqp.names.ingest) == 0


async def test_transient_error_is_retried_until_it_passes_never_dead_lettered(
    amqp: Amqp,
) -> None:
    attempts: list[int] = []

    async def flaky(deliveries: list[AbstractIncomingMessage], attempt: int) -> None:
        attempts.append(attempt)
        if attempt <= 5:  # more than FAST.unexpected_attempts: transient is never given up
            raise DependencyUnavailable("database away")

    consumer = Consumer(amqp, amqp.names.events, flaky, name="t", prefetch=10, policy=FAST)
    await consumer.start()
    await amqp.publish(amqp.names.events, {"events": []})
    async with asyncio.timeout(10):
        while len(attempts) < 6:
            await asyncio.sleep(0.05)
    await asyncio.sleep(0.2)
    await consumer.stop(1)
    assert attempts == [1, 2, 3, 4, 5, 6]
    assert await depth(amqp, amqp.names.events) == 0
    assert await depth(amqp, amqp.names.dead) == 0


async def test_stop_finishes_work_in_flight_and_leaves_the_rest_queued(amqp: Amqp) -> None:
    started = asyncio.Event()
    release = asyncio.Event()
    done: list[bytes] = []

    async def slow(deliveries: list[AbstractIncomingMessage], attempt: int) -> None:
        started.set()
        await release.wait()
        done.extend(d.body for d in deliveries)

    consumer = Consumer(amqp, amqp.names.webhooks, slow, name="t", prefetch=1, policy=FAST)
    await consumer.start()
    await amqp.publish(amqp.names.webhooks, {"n": 1})
    await asyncio.wait_for(started.wait(), 10)
    await amqp.publish(amqp.names.webhooks, {"n": 2})
    stopping = asyncio.create_task(consumer.stop(5))
    await asyncio.sleep(0.2)
    assert not stopping.done()  # waits for the delivery in flight
    release.set()
    await stopping
    assert [json.loads(b) for b in done] == [{"n": 1}]
    assert await depth(amqp, amqp.names.webhooks) == 1  # the other one is still there


async def test_transient_retry_is_handed_back_on_stop(amqp: Amqp) -> None:
    """Work waiting out an outage is not held for the grace period: it goes back at once."""

    async def down(deliveries: list[AbstractIncomingMessage], attempt: int) -> None:
        raise DependencyUnavailable("away")

    policy = RetryPolicy(Backoff(first=30.0, cap=30.0), unexpected_attempts=3)
    consumer = Consumer(amqp, amqp.names.ingest, down, name="t", prefetch=1, policy=policy)
    await consumer.start()
    await amqp.publish(amqp.names.ingest, {"requests": []})
    await asyncio.sleep(0.3)
    began = time.monotonic()
    await consumer.stop(20)
    assert time.monotonic() - began < 5
    assert await depth(amqp, amqp.names.ingest) == 1


def test_backoff_doubles_and_is_capped() -> None:
    backoff = Backoff()
    assert [backoff.delay(n) for n in (1, 2, 3, 7, 8, 50)] == [0.5, 1.0, 2.0, 5.0, 5.0, 5.0]


async def test_unknown_version_is_dead_lettered_naming_it(amqp: Amqp) -> None:
    from workers.poison import dead_letter_body

    await dead_letter_body(amqp, "ingest", b'{"v":9,"requests":[]}', "unknown version 9", version=9)
    dead = await take_dead(amqp)
    assert dead == {
        "source": "ingest",
        "error": "unknown version 9",
        "item": {"v": 9, "requests": []},
    }


async def test_deliveries_arriving_during_a_batch_wait_in_one_queue_not_a_task_each(
    amqp: Amqp,
) -> None:
    """While a batch is handled, what arrives is taken by the same batcher afterwards, in
    batches, in order. (It once got a task per arriving delivery, queued on a lock: thousands
    under a backlog.)"""
    release = asyncio.Event()
    batches: list[list[int]] = []

    async def slow(deliveries: list[AbstractIncomingMessage], attempt: int) -> None:
        await release.wait()
        batches.append([json.loads(d.body)["n"] for d in deliveries])

    consumer = Consumer(
        amqp, amqp.names.events, slow, name="t", prefetch=200, batch=10, max_wait=0.01
    )
    await consumer.start()
    for n in range(150):
        await amqp.publish(amqp.names.events, {"n": n})
    async with asyncio.timeout(10):
        while len(consumer._pending) < 140:
            await asyncio.sleep(0.02)
    assert len(consumer._tasks) == 1
    release.set()
    async with asyncio.timeout(10):
        while sum(map(len, batches)) < 150:
            await asyncio.sleep(0.02)
    assert [n for b in batches for n in b] == list(range(150))
    assert all(len(b) <= 10 for b in batches) and len(batches) <= 16
    await consumer.stop(5)


async def test_one_by_one_handlers_wait_while_max_bytes_are_in_hand(amqp: Amqp) -> None:
    """A one-by-one consumer runs up to the prefetch at once; with ``max_bytes`` it holds no
    more than that much of the deliveries' bodies in hand, and one larger goes alone."""
    in_hand: list[int] = []
    most = 0
    alone: list[bool] = []

    async def handle(deliveries: list[AbstractIncomingMessage], attempt: int) -> None:
        nonlocal most
        size = len(deliveries[0].body)
        in_hand.append(size)
        most = max(most, sum(in_hand))
        if size > 1000:
            alone.append(len(in_hand) == 1)
        await asyncio.sleep(0.02)
        in_hand.remove(size)

    consumer = Consumer(amqp, amqp.names.events, handle, name="t", prefetch=50, max_bytes=1000)
    await consumer.start()
    pad = "x" * 180
    for n in range(40):
        await amqp.publish(amqp.names.events, {"n": n, "pad": pad if n != 20 else "y" * 3000})
    async with asyncio.timeout(10):
        while await depth(amqp, amqp.names.events) or in_hand or not alone:
            await asyncio.sleep(0.05)
    await consumer.stop(5)
    assert most > 400  # several at once: the bound is not a lock
    assert most <= 1000 or alone == [True]
    assert alone == [True]


async def test_batches_stop_at_batch_bytes_and_an_oversized_delivery_goes_alone(
    amqp: Amqp,
) -> None:
    """A batch takes deliveries in order up to ``batch`` of them or ``batch_bytes`` of bodies,
    whichever comes first; one delivery larger than that is a batch of its own. (Counted by
    deliveries alone, a backlog of packs made batches of thousands of items.)"""
    release = asyncio.Event()
    batches: list[list[tuple[int, int]]] = []

    async def handle(deliveries: list[AbstractIncomingMessage], attempt: int) -> None:
        await release.wait()
        batches.append([(json.loads(d.body)["n"], len(d.body)) for d in deliveries])

    consumer = Consumer(
        amqp,
        amqp.names.events,
        handle,
        name="t",
        prefetch=100,
        batch=50,
        max_wait=0.01,
        batch_bytes=1000,
    )
    await consumer.start()
    pad = "x" * 180
    for n in range(60):
        await amqp.publish(amqp.names.events, {"n": n, "pad": pad if n != 30 else "y" * 3000})
    async with asyncio.timeout(10):
        while len(consumer._pending) < 55:
            await asyncio.sleep(0.02)
    release.set()
    async with asyncio.timeout(10):
        while sum(map(len, batches)) < 60:
            await asyncio.sleep(0.02)
    await consumer.stop(5)
    assert [n for b in batches for n, _ in b] == list(range(60))
    for b in batches:
        if any(n == 30 for n, _ in b):
            assert len(b) == 1
        else:
            assert sum(size for _, size in b) <= 1000
    assert len(batches) <= 20  # ~200-byte bodies: several per batch, not one by one


def test_batch_bytes_is_refused_for_a_one_by_one_consumer(amqp: Amqp) -> None:
    async def handle(deliveries: list[AbstractIncomingMessage], attempt: int) -> None:
        return None

    with pytest.raises(ValueError, match="batches"):
        Consumer(amqp, amqp.names.events, handle, name="t", prefetch=10, batch_bytes=100)


def test_max_bytes_is_refused_for_a_batched_consumer(amqp: Amqp) -> None:
    async def handle(deliveries: list[AbstractIncomingMessage], attempt: int) -> None:
        return None

    with pytest.raises(ValueError, match="one-by-one"):
        Consumer(amqp, amqp.names.events, handle, name="t", prefetch=10, batch=5, max_bytes=100)


async def test_byte_budget_admits_what_fits_and_an_oversized_one_alone() -> None:
    budget = ByteBudget(100)
    async with budget.hold(60):
        waiter = asyncio.create_task(_hold(budget, 50))
        await asyncio.sleep(0.01)
        assert not waiter.done() and budget.used == 60
        async with budget.hold(40):
            assert budget.used == 100
    await asyncio.wait_for(waiter, 1)
    async with budget.hold(500):
        assert budget.used == 500
    assert budget.used == 0


async def _hold(budget: ByteBudget, size: int) -> None:
    async with budget.hold(size):
        assert budget.used <= budget.limit
