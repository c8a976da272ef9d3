"""The charge worker from its queue: nothing accepted is lost, and what is charged is what is sent.

Requests are put on the ingest queue directly (as the previous API version wrote them, with its
own ``segments``), since the current API refuses unstorable text before its 202.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import aio_pika
import aiohttp
import asyncpg
import pytest

from broker import accounts
from broker.config import Settings
from broker.queue_messages import IngestRequest
from broker.queues import Amqp, QueueNames
from smsc_sim import SmscSimulator
from tests.harness import (
    Customer,
    WebhookReceiver,
    add_connector,
    gateway,
    ledger_consistent,
    new_customer,
    start_sim,
)

PREFIX16 = "1212556"


class Stack:
    def __init__(
        self,
        api: str,
        http: aiohttp.ClientSession,
        pool: asyncpg.Pool,
        sim: SmscSimulator,
        receiver: WebhookReceiver,
        amqp: Amqp,
    ) -> None:
        self.api, self.http, self.pool, self.sim = api, http, pool, sim
        self.receiver, self.amqp = receiver, amqp

    async def customer(self, credits: int = 10) -> Customer:
        return await new_customer(self.pool, self.http, self.api, self.receiver, credits=credits)

    async def status(self, customer: Customer, message_id: str) -> dict[str, Any]:
        hit = await self.receiver.event(
            customer.path, "message.status", lambda d: d["id"] == message_id
        )
        data: dict[str, Any] = hit.json["data"]
        return data

    async def get(self, customer: Customer, message_id: str) -> tuple[int, Any]:
        async with self.http.get(
            f"{self.api}/v1/messages/{message_id}", headers=customer.headers
        ) as resp:
            return resp.status, await resp.json()


@pytest.fixture(scope="module")
async def stack(settings: Settings, pool: asyncpg.Pool) -> AsyncIterator[Stack]:
    sim = await start_sim()
    suffix = uuid.uuid4().hex[:6]
    await add_connector(pool, f"cc8-{suffix}", sim.port)
    await add_connector(pool, f"cc16-{suffix}", sim.port, long_mode="udh16")
    async with pool.acquire() as conn:
        await accounts.add_route(conn, "", f"cc8-{suffix}", Decimal(1))
        await accounts.add_route(conn, PREFIX16, f"cc16-{suffix}", Decimal(2))
    amqp = Amqp(settings.amqp_url, QueueNames(settings.queue_prefix))
    async with gateway(settings) as gw:
        await amqp.connect()
        yield Stack(gw.api, gw.http, pool, sim, gw.receiver, amqp)
        await amqp.close()
    await sim.stop()


def number(prefix: str = "1650253") -> str:
    return f"+{prefix}{1000 + uuid.uuid4().int % 9000}"


def previous_version_request(account_id: uuid.UUID, body: str, **fields: Any) -> dict[str, Any]:
    """What the API wrote before this change: it also carried its own encoding and count."""
    return {
        "account_id": str(account_id),
        "batch_id": None,
        "body": body,
        "sender": None,
        "client_ref": None,
        "callback_url": None,
        "accepted_at": datetime.now(UTC).isoformat(),
        "recipients": [[str(uuid.uuid4()), number()]],
        "encoding": "GSM7",
        "segments": 1,
        **fields,
    }


async def take_dead(settings: Settings, match: str) -> dict[str, Any]:
    connection = await aio_pika.connect(settings.amqp_url)
    try:
        channel = await connection.channel()
        queue = await channel.get_queue(QueueNames(settings.queue_prefix).dead, ensure=False)
        async with asyncio.timeout(20):
            while True:
                message = await queue.get(fail=False)
                if message is None:
                    await asyncio.sleep(0.1)
                    continue
                await message.ack()
                if match in message.body.decode():
                    found: dict[str, Any] = json.loads(message.body)
                    return found
    finally:
        await connection.close()


async def test_udh16_connector_is_charged_the_parts_it_sends(stack: Stack) -> None:
    """Before: the API's count (2, as udh8) was charged while udh16 sent 3 parts."""
    customer = await stack.customer(credits=20)
    body = "a" * 305  # GSM7: 2 parts of 153 with an 8-bit UDH, 3 of 152 with a 16-bit one
    to = number(PREFIX16)
    request = previous_version_request(customer.account_id, body, segments=2)
    request["recipients"] = [[str(uuid.uuid4()), to]]
    await asyncio.sleep(6)  # workers reload connectors and routes every 5 seconds
    await stack.amqp.publish(stack.amqp.names.ingest, {"requests": [request]})
    mid = request["recipients"][0][0]
    data = await stack.status(customer, mid)
    assert data["status"] == "delivered"
    row = await stack.pool.fetchrow(
        "SELECT encoding, segments, cost FROM messages WHERE id = $1", uuid.UUID(mid)
    )
    assert row is not None
    assert (row["encoding"], row["segments"], row["cost"]) == ("GSM7", 3, Decimal(6))
    assert len([r for r in stack.sim.submitted if r.destination_addr == to.lstrip("+")]) == 3
    assert await ledger_consistent(stack.pool, customer.account_id) == (Decimal(14), Decimal(14))


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("body", "bad \x00 byte"),
        ("body", "lone \ud800 surrogate"),
        ("body", "\x00"),
        ("client_ref", "ref\x00"),
        ("client_ref", "r" * 201),
        ("sender", "Acme\ud800"),
        ("callback_url", "https://127.0.0.1:9/cb\x00"),
    ],
)
async def test_unstorable_text_ends_as_visible_failed_messages(
    stack: Stack, field: str, value: str
) -> None:
    """Before: the whole request went to <prefix>.dead and every id answered 404."""
    customer = await stack.customer(credits=10)
    fields = {"body": "fine"} | {field: value}
    request = previous_version_request(customer.account_id, **fields)
    request["recipients"] = [[str(uuid.uuid4()), number()] for _ in range(2)]
    good = previous_version_request(customer.account_id, "a good one")  # packed alongside
    await stack.amqp.publish(stack.amqp.names.ingest, {"requests": [request, good]})

    for mid, _ in request["recipients"]:
        data = await stack.status(customer, mid)
        assert data["status"] == "failed" and data["error"]["code"] == "INVALID_MESSAGE"
        status, resource = await stack.get(customer, mid)
        assert status == 200 and resource["status"] == "failed"
    ids = [uuid.UUID(mid) for mid, _ in request["recipients"]]
    rows = await stack.pool.fetch(
        "SELECT body, client_ref, sender, cost FROM messages WHERE id = ANY($1)", ids
    )
    assert len(rows) == 2 and all(r["cost"] == 0 for r in rows)
    for r in rows:
        assert r["body"] and "\x00" not in r["body"]
        assert r["client_ref"] is None or len(r["client_ref"]) <= 200
    assert not await stack.pool.fetchval(
        "SELECT count(*) FROM ledger WHERE message_id = ANY($1)", ids
    )
    good_id = good["recipients"][0][0]
    assert (await stack.status(customer, good_id))["status"] == "delivered"
    assert await ledger_consistent(stack.pool, customer.account_id) == (Decimal(9), Decimal(9))


async def test_request_of_a_vanished_account_is_dead_lettered_with_its_ids(
    stack: Stack, settings: Settings
) -> None:
    """Only what cannot be stored even as a failed message goes to the dead letters."""
    request = previous_version_request(uuid.uuid4(), "nobody's")
    mid = request["recipients"][0][0]
    await stack.amqp.publish(stack.amqp.names.ingest, {"requests": [request]})
    dead = await take_dead(settings, mid)
    assert dead["source"] == "ingest" and dead["item"]["id"] == mid
    assert not await stack.pool.fetchval("SELECT count(*) FROM messages WHERE id = $1", mid)


async def test_unknown_version_is_dead_lettered_not_guessed(
    stack: Stack, settings: Settings
) -> None:
    customer = await stack.customer()
    request = previous_version_request(customer.account_id, "from the future", v=2)
    mid = request["recipients"][0][0]
    await stack.amqp.publish(stack.amqp.names.ingest, {"v": 2, "requests": [request]})
    dead = await take_dead(settings, mid)
    assert dead["error"] == "unknown version 2" and dead["item"]["v"] == 2
    assert not await stack.pool.fetchval("SELECT count(*) FROM messages WHERE id = $1", mid)


async def test_typed_request_from_the_api_is_delivered(stack: Stack) -> None:
    """The current API publishes IngestRequest models through the PackedPublisher."""
    from broker.packing import PackedPublisher

    customer = await stack.customer(credits=5)
    mid = uuid.uuid4()
    publisher = PackedPublisher(stack.amqp, stack.amqp.names.ingest, "requests")
    await publisher.publish(
        IngestRequest(
            account_id=customer.account_id,
            body="typed",
            accepted_at=datetime.now(UTC),
            recipients=[(mid, number())],
        )
    )
    assert (await stack.status(customer, str(mid)))["status"] == "delivered"
