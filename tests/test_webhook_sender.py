"""The webhook sender end to end: real RabbitMQ, real PostgreSQL, a real HTTP receiver."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import hashlib
import hmac
import json
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aio_pika
import asyncpg
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from broker.config import Settings
from broker.queues import Amqp, QueueNames
from broker.webhooks import attempts
from broker.webhooks.attempts import AttemptRow
from broker.webhooks.delivery import Delivery, Outcome
from broker.webhooks.events import event_id_for, make_event
from broker.webhooks.payloads import parse_event
from broker.webhooks.signing import new_secret
from broker.webhooks.targets import TargetCache
from workers.webhook_sender import WebhookSender

WAIT = 60.0  # generous upper bound for polling; nothing here measures time


@dataclass
class Recorded:
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    """Answers each path from a script of statuses (the last one repeats); "slow" sleeps past
    the sender's timeout, "hold" waits for ``release``."""

    requests: list[Recorded] = field(default_factory=list)
    scripts: dict[str, list[int | str]] = field(default_factory=dict)
    release: asyncio.Event = field(default_factory=asyncio.Event)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.requests.append(Recorded(request.path, dict(request.headers), body))
        self.arrived.set()
        script = self.scripts.get(request.path, [200])
        step = script.pop(0) if len(script) > 1 else script[0]
        if step == "slow":
            await asyncio.sleep(5)
            step = 200
        elif step == "hold":
            await self.release.wait()
            step = 200
        assert isinstance(step, int)
        return web.Response(status=step, text="ok")

    def at(self, path: str) -> list[Recorded]:
        return [r for r in self.requests if r.path == path]


@pytest.fixture(scope="module")
def wh_settings(settings: Settings) -> Settings:
    return dataclasses.replace(settings, queue_prefix=f"twh{uuid.uuid4().hex[:6]}")


@pytest.fixture(scope="module")
async def amqp(wh_settings: Settings) -> AsyncIterator[Amqp]:
    conn = Amqp(wh_settings.amqp_url, QueueNames(wh_settings.queue_prefix))
    await conn.connect()
    yield conn
    await conn.close()


@pytest.fixture(scope="module")
async def receiver() -> AsyncIterator[tuple[Receiver, TestServer]]:
    rec = Receiver()
    app = web.Application()
    app.router.add_post("/{tail:.*}", rec.handle)
    server = TestServer(app, host="127.0.0.1", port=0)
    await server.start_server()
    yield rec, server
    rec.release.set()
    await server.close()


@pytest.fixture(scope="module")
async def sender(
    wh_settings: Settings, pool: asyncpg.Pool, amqp: Amqp
) -> AsyncIterator[WebhookSender]:
    worker = WebhookSender(wh_settings, pool, amqp)
    await worker.start()
    yield worker
    await worker.stop(grace=5)


async def new_account(pool: asyncpg.Pool) -> tuple[uuid.UUID, str]:
    secret = new_secret()
    account_id = await pool.fetchval(
        "INSERT INTO accounts (name, webhook_secret) VALUES ('webhook test', $1) RETURNING id",
        secret,
    )
    return account_id, secret


async def new_webhook(
    pool: asyncpg.Pool,
    account_id: uuid.UUID,
    url: str,
    events: tuple[str, ...] = ("message.status", "message.inbound"),
) -> tuple[uuid.UUID, str]:
    secret = new_secret()
    webhook_id = await pool.fetchval(
        "INSERT INTO webhooks (account_id, url, events, secret) VALUES ($1, $2, $3, $4)"
        " RETURNING id",
        account_id,
        url,
        list(events),
        secret,
    )
    return webhook_id, secret


def status_event(account_id: uuid.UUID, *, callback_url: str | None = None) -> dict[str, Any]:
    message_id = str(uuid.uuid4())
    return make_event(
        "message.status",
        account_id,
        {"id": message_id, "status": "delivered", "to": "+233200000001"},
        event_id=event_id_for(f"{message_id}:delivered"),
        callback_url=callback_url,
    ).model_dump(mode="json")


def inbound_event(account_id: uuid.UUID) -> dict[str, Any]:
    inbound_id = str(uuid.uuid4())
    return make_event(
        "message.inbound",
        account_id,
        {"id": inbound_id, "from": "+233200000002", "body": "STOP"},
        event_id=event_id_for(f"inbound:{inbound_id}"),
    ).model_dump(mode="json")


def expected_signature(secret: str, headers: dict[str, str], body: bytes) -> str:
    """Computed here from the Standard Webhooks definition, not with the code under test."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signed = f"{headers['webhook-id']}.{headers['webhook-timestamp']}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()


def assert_signed(secret: str, request: Recorded, event: dict[str, Any]) -> None:
    headers = {k.lower(): v for k, v in request.headers.items()}
    assert headers["webhook-id"] == event["id"]
    assert headers["content-type"] == "application/json"
    assert abs(int(headers["webhook-timestamp"]) - time.time()) < 3600
    assert expected_signature(secret, headers, request.body) in headers["webhook-signature"].split()
    assert json.loads(request.body) == {
        "type": event["type"],
        "timestamp": event["timestamp"],
        "data": event["data"],
    }


async def wait_for(check: Callable[[], Awaitable[bool]]) -> None:
    deadline = time.monotonic() + WAIT
    while not await check():
        if time.monotonic() > deadline:
            pytest.fail("condition not reached")
        await asyncio.sleep(0.05)


async def rows_for(pool: asyncpg.Pool, account_id: uuid.UUID) -> list[asyncpg.Record]:
    return await pool.fetch(
        "SELECT * FROM webhook_attempts WHERE account_id = $1 ORDER BY id", account_id
    )


async def wait_rows(
    pool: asyncpg.Pool, account_id: uuid.UUID, *, count: int = 0, finals: int = 0
) -> list[asyncpg.Record]:
    async def ready() -> bool:
        rows = await rows_for(pool, account_id)
        return len(rows) >= count and sum(r["final"] for r in rows) >= finals

    await wait_for(ready)
    return await rows_for(pool, account_id)


async def ready_messages(amqp: Amqp, queue: str) -> int:
    channel = await amqp.connection.channel()
    try:
        declared = await channel.declare_queue(queue, passive=True)
        count = declared.declaration_result.message_count
        assert count is not None
        return count
    finally:
        await channel.close()


def path() -> str:
    return f"/h/{uuid.uuid4().hex}"


async def test_delivers_a_signed_event(
    sender: WebhookSender, receiver: tuple[Receiver, TestServer], pool: asyncpg.Pool, amqp: Amqp
) -> None:
    rec, server = receiver
    account_id, _ = await new_account(pool)
    p = path()
    webhook_id, secret = await new_webhook(pool, account_id, str(server.make_url(p)))
    event = status_event(account_id)
    await amqp.publish(amqp.names.webhooks, {"events": [event]})

    rows = await wait_rows(pool, account_id, count=1, finals=1)
    assert len(rows) == 1
    row = rows[0]
    assert (row["webhook_id"], row["event_id"], row["event_type"]) == (
        webhook_id,
        event["id"],
        "message.status",
    )
    assert (row["attempt"], row["status_code"], row["error"], row["final"]) == (1, 200, None, True)
    assert row["url"] == str(server.make_url(p))
    [request] = rec.at(p)
    assert_signed(secret, request, event)


async def test_fails_twice_then_succeeds(
    sender: WebhookSender, receiver: tuple[Receiver, TestServer], pool: asyncpg.Pool, amqp: Amqp
) -> None:
    rec, server = receiver
    account_id, _ = await new_account(pool)
    p = path()
    rec.scripts[p] = [500, 503, 200]
    _, secret = await new_webhook(pool, account_id, str(server.make_url(p)))
    event = status_event(account_id)
    await amqp.publish(amqp.names.webhooks, {"events": [event]})

    rows = await wait_rows(pool, account_id, count=3, finals=1)
    assert [(r["attempt"], r["status_code"], r["final"]) for r in rows] == [
        (1, 500, False),
        (2, 503, False),
        (3, 200, True),
    ]
    requests = rec.at(p)
    assert len(requests) == 3
    for request in requests:
        assert_signed(secret, request, event)


async def test_always_failing_receiver_gets_every_attempt_then_a_final_row(
    sender: WebhookSender,
    receiver: tuple[Receiver, TestServer],
    pool: asyncpg.Pool,
    amqp: Amqp,
    wh_settings: Settings,
) -> None:
    rec, server = receiver
    account_id, _ = await new_account(pool)
    p = path()
    rec.scripts[p] = [500]
    await new_webhook(pool, account_id, str(server.make_url(p)))
    await amqp.publish(amqp.names.webhooks, {"events": [status_event(account_id)]})

    rows = await wait_rows(pool, account_id, finals=1)
    total = len(wh_settings.webhook_retry_delays) + 1
    assert [r["attempt"] for r in rows] == list(range(1, total + 1))
    assert [r["final"] for r in rows] == [False] * (total - 1) + [True]
    assert all(r["status_code"] == 500 for r in rows)
    assert len(rec.at(p)) == total
    for tier in range(len(wh_settings.webhook_retry_delays)):
        assert await ready_messages(amqp, amqp.retry_queue(tier)) == 0


async def test_gone_is_final_without_retry(
    sender: WebhookSender, receiver: tuple[Receiver, TestServer], pool: asyncpg.Pool, amqp: Amqp
) -> None:
    rec, server = receiver
    account_id, _ = await new_account(pool)
    gone, fine = path(), path()
    rec.scripts[gone] = [410]
    await new_webhook(pool, account_id, str(server.make_url(gone)))
    await new_webhook(pool, account_id, str(server.make_url(fine)))
    await amqp.publish(amqp.names.webhooks, {"events": [status_event(account_id)]})

    rows = await wait_rows(pool, account_id, count=2, finals=2)
    assert sorted((r["status_code"], r["attempt"], r["final"]) for r in rows) == [
        (200, 1, True),
        (410, 1, True),
    ]
    assert len(rec.at(gone)) == 1


async def test_callback_url_is_signed_with_the_account_secret(
    sender: WebhookSender, receiver: tuple[Receiver, TestServer], pool: asyncpg.Pool, amqp: Amqp
) -> None:
    rec, server = receiver
    account_id, account_secret = await new_account(pool)
    p = path()
    rec.scripts[p] = [502, 200]
    event = status_event(account_id, callback_url=str(server.make_url(p)))
    await amqp.publish(amqp.names.webhooks, {"events": [event]})

    rows = await wait_rows(pool, account_id, count=2, finals=1)
    assert [(r["webhook_id"], r["attempt"], r["status_code"]) for r in rows] == [
        (None, 1, 502),
        (None, 2, 200),
    ]
    requests = rec.at(p)
    assert len(requests) == 2
    for request in requests:
        assert_signed(account_secret, request, event)


async def test_endpoints_get_only_their_event_types(
    sender: WebhookSender, receiver: tuple[Receiver, TestServer], pool: asyncpg.Pool, amqp: Amqp
) -> None:
    rec, server = receiver
    account_id, _ = await new_account(pool)
    inbound_only, both = path(), path()
    await new_webhook(pool, account_id, str(server.make_url(inbound_only)), ("message.inbound",))
    await new_webhook(pool, account_id, str(server.make_url(both)))
    status, inbound = status_event(account_id), inbound_event(account_id)
    await amqp.publish(amqp.names.webhooks, {"events": [status, inbound]})

    rows = await wait_rows(pool, account_id, count=3, finals=3)
    assert len(rows) == 3  # all attempts of one AMQP message are written together
    assert [json.loads(r.body)["type"] for r in rec.at(inbound_only)] == ["message.inbound"]
    assert sorted(json.loads(r.body)["type"] for r in rec.at(both)) == [
        "message.inbound",
        "message.status",
    ]


async def test_other_accounts_endpoints_get_nothing(
    sender: WebhookSender, receiver: tuple[Receiver, TestServer], pool: asyncpg.Pool, amqp: Amqp
) -> None:
    rec, server = receiver
    mine, _ = await new_account(pool)
    theirs, _ = await new_account(pool)
    my_path, their_path = path(), path()
    await new_webhook(pool, mine, str(server.make_url(my_path)))
    await new_webhook(pool, theirs, str(server.make_url(their_path)))
    await amqp.publish(amqp.names.webhooks, {"events": [status_event(mine)]})

    await wait_rows(pool, mine, count=1, finals=1)
    assert len(rec.at(my_path)) == 1
    assert rec.at(their_path) == []
    assert await rows_for(pool, theirs) == []


async def test_timeout_is_recorded_and_retried(
    sender: WebhookSender, receiver: tuple[Receiver, TestServer], pool: asyncpg.Pool, amqp: Amqp
) -> None:
    rec, server = receiver
    account_id, _ = await new_account(pool)
    p = path()
    rec.scripts[p] = ["slow", 204]
    await new_webhook(pool, account_id, str(server.make_url(p)))
    await amqp.publish(amqp.names.webhooks, {"events": [status_event(account_id)]})

    rows = await wait_rows(pool, account_id, count=2, finals=1)
    assert [(r["status_code"], r["error"], r["final"]) for r in rows] == [
        (None, "timeout", False),
        (204, None, True),
    ]


async def test_unreachable_endpoint_records_connection_errors(
    sender: WebhookSender, pool: asyncpg.Pool, amqp: Amqp, wh_settings: Settings
) -> None:
    closed = TestServer(web.Application(), host="127.0.0.1", port=0)
    await closed.start_server()
    url = str(closed.make_url("/gone-away"))
    await closed.close()  # nothing listens on that port any more
    account_id, _ = await new_account(pool)
    await new_webhook(pool, account_id, url)
    await amqp.publish(amqp.names.webhooks, {"events": [status_event(account_id)]})

    rows = await wait_rows(pool, account_id, finals=1)
    assert len(rows) == len(wh_settings.webhook_retry_delays) + 1
    assert all(r["status_code"] is None and r["error"] for r in rows)


async def test_many_events_in_one_message(
    sender: WebhookSender, receiver: tuple[Receiver, TestServer], pool: asyncpg.Pool, amqp: Amqp
) -> None:
    rec, server = receiver
    account_id, _ = await new_account(pool)
    p = path()
    _, secret = await new_webhook(pool, account_id, str(server.make_url(p)))
    events = [status_event(account_id) for _ in range(40)]
    await amqp.publish(amqp.names.webhooks, {"events": events})

    rows = await wait_rows(pool, account_id, count=40, finals=40)
    assert sorted(r["event_id"] for r in rows) == sorted(e["id"] for e in events)
    by_id = {e["id"]: e for e in events}
    requests = rec.at(p)
    assert len(requests) == 40
    for request in requests:
        assert_signed(secret, request, by_id[request.headers["webhook-id"]])


async def test_invalid_payloads_are_dropped_and_the_consumer_goes_on(
    sender: WebhookSender, receiver: tuple[Receiver, TestServer], pool: asyncpg.Pool, amqp: Amqp
) -> None:
    rec, server = receiver
    account_id, _ = await new_account(pool)
    p = path()
    await new_webhook(pool, account_id, str(server.make_url(p)))
    channel = await amqp.connection.channel()
    try:
        for body in (b"not json", b"[1,2]", b'{"events": "x"}', b'{"events": [{"id": 1}]}'):
            await channel.default_exchange.publish(
                aio_pika.Message(body), routing_key=amqp.names.webhooks
            )
    finally:
        await channel.close()
    good = status_event(account_id)
    await amqp.publish(amqp.names.webhooks, {"events": [{"type": "bogus"}, good]})

    rows = await wait_rows(pool, account_id, count=1, finals=1)
    assert [r["event_id"] for r in rows] == [good["id"]]
    assert len(rec.at(p)) == 1

    async def drained() -> bool:
        return await ready_messages(amqp, amqp.names.webhooks) == 0

    await wait_for(drained)


async def test_stop_lets_in_flight_deliveries_finish(
    settings: Settings, pool: asyncpg.Pool, receiver: tuple[Receiver, TestServer]
) -> None:
    rec, server = receiver
    own = dataclasses.replace(settings, queue_prefix=f"twhs{uuid.uuid4().hex[:6]}")
    amqp = Amqp(own.amqp_url, QueueNames(own.queue_prefix))
    await amqp.connect()
    try:
        worker = WebhookSender(own, pool, amqp)
        await worker.start()
        account_id, _ = await new_account(pool)
        p = path()
        rec.scripts[p] = ["hold"]
        rec.release.clear()
        rec.arrived.clear()
        await new_webhook(pool, account_id, str(server.make_url(p)))
        await amqp.publish(amqp.names.webhooks, {"events": [status_event(account_id)]})
        await asyncio.wait_for(rec.arrived.wait(), WAIT)

        stopping = asyncio.create_task(worker.stop(grace=WAIT))
        await asyncio.sleep(0.1)
        rec.release.set()
        await stopping

        rows = await rows_for(pool, account_id)
        assert [(r["status_code"], r["final"]) for r in rows] == [(200, True)]
        assert await ready_messages(amqp, amqp.names.webhooks) == 0
    finally:
        await amqp.close()


async def test_target_cache_serves_for_its_ttl(pool: asyncpg.Pool) -> None:
    now = [100.0]
    cache = TargetCache(pool, ttl=2.0, clock=lambda: now[0])
    account_id, account_secret = await new_account(pool)
    unknown = uuid.uuid4()

    first = await cache.get([account_id, unknown])
    assert first[account_id].endpoints == ()
    assert first[account_id].callback_secret == account_secret
    assert first[unknown].callback_secret is None

    webhook_id, secret = await new_webhook(pool, account_id, "https://example.com/x")
    now[0] += 1.0
    assert (await cache.get([account_id]))[account_id].endpoints == ()
    now[0] += 1.5
    fresh = (await cache.get([account_id]))[account_id]
    assert [(e.id, e.secret) for e in fresh.endpoints] == [(webhook_id, secret)]
    assert fresh.endpoint(webhook_id) is not None
    assert fresh.subscribed("message.inbound") == list(fresh.endpoints)


async def test_attempt_of_a_deleted_webhook_is_kept_without_its_id(pool: asyncpg.Pool) -> None:
    account_id, _ = await new_account(pool)
    event = parse_event(status_event(account_id))
    deleted = uuid.uuid4()  # no such webhook (any more)
    delivery = Delivery(event, deleted, "https://example.com/x", new_secret(), 2)
    await attempts.record(pool, [AttemptRow(delivery, Outcome(500, None, 12), False)])
    [row] = await rows_for(pool, account_id)
    assert row["webhook_id"] is None
    assert (row["attempt"], row["status_code"], row["duration_ms"]) == (2, 500, 12)


async def test_a_post_task_is_made_only_when_a_slot_is_free(
    settings: Settings, pool: asyncpg.Pool, receiver: tuple[Receiver, TestServer]
) -> None:
    """A message of many events once got a task per event up front, all but ``concurrency``
    of them waiting on the semaphore: thousands under a backlog, holding memory."""
    rec, server = receiver
    own = dataclasses.replace(settings, queue_prefix=f"twht{uuid.uuid4().hex[:6]}")
    amqp = Amqp(own.amqp_url, QueueNames(own.queue_prefix))
    await amqp.connect()
    try:
        worker = WebhookSender(own, pool, amqp, concurrency=3)
        await worker.start()
        account_id, _ = await new_account(pool)
        p = path()
        rec.scripts[p] = ["hold"]
        rec.release.clear()
        await new_webhook(pool, account_id, str(server.make_url(p)))
        await amqp.publish(amqp.names.webhooks, {"events": [status_event(account_id)] * 30})

        async def three_held() -> bool:
            return len(rec.at(p)) >= 3

        await wait_for(three_held)
        await asyncio.sleep(0.2)  # room for any further task to be made
        posting = [
            t for t in asyncio.all_tasks() if t.get_coro().__qualname__.startswith("WebhookSender.")
        ]
        held = len(rec.at(p))
        rec.release.set()
        await wait_rows(pool, account_id, count=30, finals=30)
        await worker.stop(grace=5)
        assert held == 3
        assert len(posting) == 3  # not thirty
    finally:
        rec.release.set()
        await amqp.close()
