"""End to end on real services: HTTP in, SMPP out to the simulated carrier, receipts and
signed webhooks back, credits charged once and refunded on failure."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import aio_pika
import asyncpg
import pytest

from api.auth import KeyCache
from api.context import Caller
from broker import accounts
from broker.config import Settings
from broker.queues import Amqp, QueueNames
from tests.harness import (
    Customer,
    SimStack,
    add_connector,
    ledger_consistent,
    sim_stack,
    verify_standard_webhook,
)

#: The module's gateway (the harness has every helper its tests speak in).
Stack = SimStack


@pytest.fixture(scope="module")
async def stack(settings: Settings, pool: asyncpg.Pool) -> AsyncIterator[Stack]:
    async with sim_stack(settings, pool, Stack, "sim") as stack:
        yield stack


def us_number(suffix: str = "") -> str:
    """A valid US number, ending in ``suffix`` when given, else random.

    Random tails are 1000–9999, clear of the simulator's outcome rules (0013, 0666, 0777).
    """
    tail = (suffix or f"{1000 + uuid.uuid4().int % 9000}")[-4:]
    return f"+1415555{tail}" if suffix else f"+1650253{tail}"


async def test_single_message_delivered_with_signed_webhook(stack: Stack) -> None:
    customer = await stack.customer(credits=10)
    status, body = await stack.send(customer, {"to": us_number(), "body": "Hello there"})
    assert status == 202, body
    assert body["batch_id"] is None
    [msg] = body["messages"]
    assert msg["status"] == "queued" and msg["encoding"] == "GSM7" and msg["segments"] == 1

    data = await stack.final_webhook(customer, msg["id"])
    assert data["status"] == "delivered"

    status, resource = await stack.get(customer, f"/v1/messages/{msg['id']}")
    assert status == 200
    assert resource["status"] == "delivered"
    assert [p["status"] for p in resource["parts"]] == ["delivered"]
    assert resource["parts"][0]["carrier_id"]
    assert [h["status"] for h in resource["history"]] == ["queued", "sending", "sent", "delivered"]
    status, balance = await stack.get(customer, "/v1/balance")
    assert balance["balance"] == 9
    assert await ledger_consistent(stack.pool, customer.account_id) == (Decimal(9), Decimal(9))


@pytest.mark.parametrize(
    ("text", "encoding", "segments"),
    [
        ("Long GSM7 text with an extension € " + "x" * 170, "GSM7", 2),
        ("Привет, это длинное сообщение! " * 3, "UCS2", 2),
        ("Emoji 😀 " * 40, "UCS2", 6),
    ],
)
async def test_multipart_charged_per_part(
    stack: Stack, text: str, encoding: str, segments: int
) -> None:
    customer = await stack.customer(credits=20)
    status, body = await stack.send(customer, {"to": us_number(), "body": text})
    assert status == 202, body
    [msg] = body["messages"]
    assert (msg["encoding"], msg["segments"]) == (encoding, segments)
    data = await stack.final_webhook(customer, msg["id"])
    assert data["status"] == "delivered"
    assert data["segments"] == segments and data["cost"] == segments
    _, resource = await stack.get(customer, f"/v1/messages/{msg['id']}")
    assert [p["seq"] for p in resource["parts"]] == list(range(1, segments + 1))
    assert len({p["carrier_id"] for p in resource["parts"]}) == segments
    sent = [r for r in stack.sim.submitted if r.destination_addr == msg["to"].lstrip("+")]
    assert len(sent) == segments
    assert all(r.esm_class & 0x40 for r in sent)
    assert await ledger_consistent(stack.pool, customer.account_id) == (
        Decimal(20 - segments),
        Decimal(20 - segments),
    )


async def test_undelivered_outcome(stack: Stack) -> None:
    customer = await stack.customer(credits=5)
    status, body = await stack.send(customer, {"to": us_number("0666"), "body": "will fail"})
    assert status == 202
    data = await stack.final_webhook(customer, body["messages"][0]["id"])
    assert data["status"] == "undelivered"
    assert data["error"]["code"] == "UNDELIV"
    # Undelivered messages reached the carrier: they stay charged.
    assert await ledger_consistent(stack.pool, customer.account_id) == (Decimal(4), Decimal(4))


async def test_refused_submit_fails_and_refunds(stack: Stack) -> None:
    customer = await stack.customer(credits=5)
    status, body = await stack.send(customer, {"to": us_number("0013"), "body": "refused"})
    assert status == 202
    mid = body["messages"][0]["id"]
    data = await stack.final_webhook(customer, mid)
    assert data["status"] == "failed"
    assert data["error"]["code"] == "SUBMIT_REJECTED"
    balance, total = await ledger_consistent(stack.pool, customer.account_id)
    assert balance == total == Decimal(5)
    reasons = await stack.pool.fetch(
        "SELECT reason, amount FROM ledger WHERE message_id = $1 ORDER BY id", uuid.UUID(mid)
    )
    assert [(r["reason"], r["amount"]) for r in reasons] == [("charge", -1), ("refund", 1)]


async def test_batch_to_several_numbers(stack: Stack) -> None:
    customer = await stack.customer(credits=10, region="GH")
    status, body = await stack.send(
        customer,
        {"to": "0205550368, +233241234567,0205550368", "body": "batch", "client_ref": "r-1"},
    )
    assert status == 202, body
    assert body["batch_id"]
    assert [m["to"] for m in body["messages"]] == ["+233205550368", "+233241234567"]
    for m in body["messages"]:
        assert (await stack.final_webhook(customer, m["id"]))["client_ref"] == "r-1"
    status, batch = await stack.get(customer, f"/v1/batches/{body['batch_id']}")
    assert status == 200 and batch["total"] == 2 and batch["statuses"] == {"delivered": 2}


async def test_inbound_message_reaches_its_webhook(stack: Stack) -> None:
    customer = await stack.customer(credits=1)
    number = f"1415555{uuid.uuid4().int % 10_000:04d}"
    async with stack.pool.acquire() as conn:
        await accounts.add_number(conn, customer.account_id, number, "")
    await stack.sim.inject_mo("233205550368", number, "Hi back")
    long_text = "A reply long enough to need three parts. " * 9
    await stack.sim.inject_mo("233205550369", number, long_text)
    hits = await stack.receiver.wait_for(
        lambda r: r.path == customer.path and r.json["type"] == "message.inbound", count=2
    )
    for hit in hits:
        verify_standard_webhook(customer.webhook_secret, hit.headers, hit.body)
    bodies = sorted(h.json["data"]["body"] for h in hits)
    assert bodies == sorted(["Hi back", long_text])
    assert {h.json["data"]["to"] for h in hits} == {f"+{number}"}


async def test_insufficient_credits_is_402_and_changes_nothing(stack: Stack) -> None:
    customer = await stack.customer(credits=1)
    status, body = await stack.send(customer, {"to": us_number(), "body": "x" * 200})
    assert status == 402
    assert body["error"]["code"] == "INSUFFICIENT_CREDITS"
    assert await ledger_consistent(stack.pool, customer.account_id) == (Decimal(1), Decimal(1))


@pytest.mark.parametrize(
    ("payload", "code", "field"),
    [
        ({"to": "+14155552671", "body": ""}, "EMPTY_BODY", "body"),
        ({"to": "+14155552671"}, "EMPTY_BODY", "body"),
        ({"to": "+14155552671", "body": "x" * 1601}, "BODY_TOO_LONG", "body"),
        ({"to": ["+14155552671", "12", "nope"], "body": "hi"}, "INVALID_PHONE_NUMBER", "to"),
        ({"to": 5, "body": "hi"}, "INVALID_PHONE_NUMBER", "to"),
        ({"body": "hi"}, "MISSING_RECIPIENT", "to"),
        ({"to": "+14155552671", "body": "hi", "from": "x"}, "INVALID_SENDER_ID", "from"),
        ({"to": "+14155552671", "body": "hi", "callback_url": "ftp://x"}, "INVALID_URL", None),
        ({"to": "+14155552671", "body": "hi", "channel": "fax"}, "INVALID_INPUT", "channel"),
    ],
)
async def test_bad_input_is_400_and_changes_nothing(
    stack: Stack, payload: dict[str, Any], code: str, field: str | None
) -> None:
    customer = await stack.customer(credits=3)
    status, body = await stack.send(customer, payload)
    assert status == 400, body
    assert body["error"]["code"] == code
    if field is not None:
        assert body["error"]["field"] == field
    if code == "INVALID_PHONE_NUMBER" and isinstance(payload["to"], list):
        assert [d["index"] for d in body["error"]["details"]] == [1, 2]
    count = await stack.pool.fetchval(
        "SELECT count(*) FROM messages WHERE account_id = $1", customer.account_id
    )
    assert count == 0
    assert await ledger_consistent(stack.pool, customer.account_id) == (Decimal(3), Decimal(3))


async def test_not_json_and_unknown_paths_get_the_error_shape(stack: Stack) -> None:
    customer = await stack.customer()
    async with stack.http.post(
        f"{stack.api}/v1/messages",
        data=b"{not json",
        headers={**customer.headers, "Content-Type": "application/json"},
    ) as resp:
        assert resp.status == 400
        assert (await resp.json())["error"]["code"] == "INVALID_JSON"
    status, body = await stack.get(customer, "/v1/messages/not-a-uuid")
    assert status == 404 and body["error"]["code"] == "NOT_FOUND"
    status, body = await stack.get(customer, "/v1/nothing-here")
    assert status == 404 and body["error"]["code"] == "NOT_FOUND"


async def test_authentication(stack: Stack) -> None:
    customer = await stack.customer()
    url = f"{stack.api}/v1/balance"
    async with stack.http.get(url) as resp:
        assert resp.status == 401
        assert (await resp.json())["error"]["code"] == "UNAUTHORIZED"
    async with stack.http.get(url, headers={"Authorization": "Bearer sk_live_nope"}) as resp:
        assert resp.status == 401
        assert (await resp.json())["error"]["code"] == "INVALID_API_KEY"
    async with stack.http.get(url, headers={"X-API-Key": customer.key}) as resp:
        assert resp.status == 200
        assert resp.headers["X-RateLimit-Limit"] == "100000"
    async with stack.http.get(url, params={"api_key": customer.key}) as resp:
        assert resp.status == 200
    await stack.pool.execute(
        "UPDATE api_keys SET revoked_at = now() WHERE account_id = $1", customer.account_id
    )
    async with stack.http.get(url, headers=customer.headers) as resp:
        assert resp.status == 403
        assert (await resp.json())["error"]["code"] == "API_KEY_DISABLED"


async def test_rate_limit_answers_429_with_retry_after(stack: Stack) -> None:
    customer = await stack.customer()
    # A burst of the limit, then one more every 20 s (GCRA in Redis, tests/test_rate_limit.py);
    # the webhook set up at 100,000 a minute is long paid back.
    await stack.pool.execute(
        "UPDATE api_keys SET rate_limit = 3 WHERE account_id = $1", customer.account_id
    )
    statuses = []
    for _ in range(4):
        async with stack.http.get(f"{stack.api}/v1/balance", headers=customer.headers) as resp:
            statuses.append(resp.status)
            last = resp
            body = await resp.json()
    assert statuses == [200, 200, 200, 429]
    assert int(last.headers["Retry-After"]) >= 1
    assert body["error"]["code"] == "RATE_LIMIT_EXCEEDED" and body["error"]["retry_after"] >= 1


async def test_tenants_do_not_see_each_other(stack: Stack) -> None:
    alice, bob = await stack.customer(), await stack.customer()
    _, body = await stack.send(alice, {"to": us_number(), "body": "private"})
    mid = body["messages"][0]["id"]
    await stack.final_webhook(alice, mid)
    status, err = await stack.get(bob, f"/v1/messages/{mid}")
    assert status == 404
    _, listing = await stack.get(bob, "/v1/messages")
    assert listing["data"] == []
    _, listing = await stack.get(alice, "/v1/messages?limit=1")
    assert [m["id"] for m in listing["data"]] == [mid]


async def test_every_route_with_an_id_keeps_tenants_apart(stack: Stack) -> None:
    """Walks the OpenAPI document: every route that names a resource answers another account
    404 (reading, deleting, listing its parts) and leaves the owner's resource as it was. A
    route added without an entry in RESOURCE fails here until its isolation is walked too."""
    alice, bob = await stack.customer(), await stack.customer()
    _, sent = await stack.send(alice, {"to": [us_number(), us_number()], "body": "private"})
    await stack.final_webhook(alice, sent["messages"][0]["id"])
    _, hooks = await stack.get(alice, "/v1/webhooks")
    async with stack.http.post(
        f"{stack.api}/v1/sender-ids",
        json={"sender_id": "AliceCo", "purpose": "isolation"},
        headers=alice.headers,
    ) as resp:
        assert resp.status == 201, await resp.text()
        sender_id = (await resp.json())["id"]
    inbound_number = f"1415555{uuid.uuid4().int % 10_000:04d}"
    async with stack.pool.acquire() as conn:
        await accounts.add_number(conn, alice.account_id, inbound_number, "")
    await stack.sim.inject_mo("233205550368", inbound_number, "private reply")
    [mo] = await stack.receiver.wait_for(
        lambda r: r.path == alice.path and r.json["type"] == "message.inbound"
    )
    async with stack.http.post(
        f"{stack.api}/v1/opt-outs", json={"phone": "+14155552671"}, headers=alice.headers
    ) as resp:
        assert resp.status == 201
    _, alice_keys = await stack.get(alice, "/v1/keys")
    contact = await _created(stack, alice, "/v1/contacts", {"phone": us_number()})
    group = await _created(stack, alice, "/v1/groups", {"name": "isolation"})
    template = await _created(
        stack, alice, "/v1/templates", {"name": "isolation", "body": "Hi {{first_name}}"}
    )
    async with stack.http.post(
        f"{stack.api}/v1/groups/{group}/contacts",
        json={"contact_ids": [contact]},
        headers=alice.headers,
    ) as resp:
        assert resp.status == 200, await resp.text()
    bobs_contact = await _created(stack, bob, "/v1/contacts", {"phone": us_number()})
    ids = {
        "message": sent["messages"][0]["id"],
        "batch": sent["batch_id"],
        "webhook": hooks["data"][0]["id"],
        "sender_id": sender_id,
        "inbound": mo.json["data"]["id"],
        "opt-out": "%2B14155552671",
        "key": alice_keys["data"][0]["id"],
        "contact": contact,
        "group": group,
        "template": template,
    }
    resource = {
        "/v1/messages/{id}": "message",
        "/v1/messages/{id}/cancel": "message",
        "/v1/batches/{id}": "batch",
        "/v1/webhooks/{id}": "webhook",
        "/v1/webhooks/{id}/deliveries": "webhook",
        "/v1/sender-ids/{id}": "sender_id",
        "/v1/inbound/{id}": "inbound",
        "/v1/opt-outs/{phone}": "opt-out",
        "/v1/keys/{id}": "key",
        "/v1/keys/{id}/regenerate": "key",
        "/v1/contacts/{id}": "contact",
        "/v1/groups/{id}": "group",
        "/v1/groups/{id}/contacts": "group",
        "/v1/groups/{id}/contacts/{contact_id}": "group",
        "/v1/templates/{id}": "template",
        "/v1/templates/{id}/preview": "template",
    }
    # A route that takes a body gets a valid one: the answer must be 404, not a 400.
    bodies = {
        ("patch", "/v1/contacts/{id}"): {"first_name": "Mallory"},
        ("patch", "/v1/groups/{id}"): {"name": "taken over"},
        ("post", "/v1/groups/{id}/contacts"): {"contact_ids": [bobs_contact]},
        ("patch", "/v1/templates/{id}"): {"name": "taken over"},
        ("post", "/v1/templates/{id}/preview"): {"to": "+14155552671"},
    }
    async with stack.http.get(f"{stack.api}/openapi.json") as resp:
        paths = (await resp.json())["paths"]
    assert {p for p in paths if "{" in p} == set(resource)
    for path, item in paths.items():
        if "{" not in path:
            continue
        url = path.replace("{contact_id}", ids["contact"])
        url = url.replace("{id}", ids[resource[path]]).replace("{phone}", ids[resource[path]])
        for method in item:
            async with stack.http.request(
                method,
                f"{stack.api}{url}",
                json=bodies.get((method, path)),
                headers=bob.headers,
            ) as r:
                assert r.status == 404, (method, path, await r.text())
        if "get" in item:  # a POST-only action (regenerate) is read through its resource
            status, _ = await stack.get(alice, url)
            assert status == 200, path
    _, members = await stack.get(alice, f"/v1/groups/{group}/contacts")
    assert [m["id"] for m in members["data"]] == [contact], "bob changed alice's group"
    _, shown = await stack.get(alice, f"/v1/contacts/{contact}")
    assert shown["first_name"] is None, "bob changed alice's contact"
    for listing in (
        "/v1/messages",
        "/v1/webhooks",
        "/v1/inbound",
        "/v1/sender-ids",
        "/v1/keys",
        "/v1/contacts",
        "/v1/groups",
        "/v1/templates",
    ):
        _, page = await stack.get(bob, listing)
        assert not {item["id"] for item in page["data"]} & set(ids.values()), listing


async def _created(stack: Stack, who: Customer, path: str, body: dict[str, Any]) -> str:
    async with stack.http.post(f"{stack.api}{path}", json=body, headers=who.headers) as resp:
        assert resp.status == 201, await resp.text()
        created: str = (await resp.json())["id"]
        return created


async def test_concurrent_sends_never_overdraw(stack: Stack) -> None:
    customer = await stack.customer(credits=5)
    results = await asyncio.gather(
        *(stack.send(customer, {"to": us_number(), "body": f"n{i}"}) for i in range(12))
    )
    accepted = [b["messages"][0]["id"] for s, b in results if s == 202]
    finals = [await stack.final_webhook(customer, mid) for mid in accepted]
    delivered = [d for d in finals if d["status"] == "delivered"]
    assert len(delivered) == 5
    assert all(d["error"]["code"] == "INSUFFICIENT_CREDITS" for d in finals if d not in delivered)
    assert await ledger_consistent(stack.pool, customer.account_id) == (Decimal(0), Decimal(0))


async def test_receipt_before_submit_resp_is_matched_later(stack: Stack) -> None:
    customer = await stack.customer(credits=5)
    # The carrier answers submit_sm after its receipt is already on the way.
    stack.sim.set_faults(submit_delay=0.4)
    try:
        status, body = await stack.send(customer, {"to": us_number(), "body": "early receipt"})
        assert status == 202
        data = await stack.final_webhook(customer, body["messages"][0]["id"])
    finally:
        stack.sim.clear_faults()
    assert data["status"] == "delivered"
    parked = await stack.pool.fetchval(
        "SELECT count(*) FROM pending_receipts"
        " WHERE scope = (SELECT scope FROM connectors WHERE name = 'sim')"
    )
    assert parked == 0


async def test_callback_url_gets_the_status_signed_with_the_account_secret(stack: Stack) -> None:
    customer = await stack.customer(credits=2)
    path = f"/callback/{uuid.uuid4().hex}"
    url = stack.receiver.url(path).replace("http://", "HTTP://")
    status, body = await stack.send(
        customer, {"to": us_number(), "body": "with callback", "callback_url": url}
    )
    assert status == 202, body
    mid = body["messages"][0]["id"]
    [hit] = await stack.receiver.wait_for(lambda r: r.path == path)
    secret = await stack.pool.fetchval(
        "SELECT webhook_secret FROM accounts WHERE id = $1", customer.account_id
    )
    verify_standard_webhook(secret, hit.headers, hit.body)
    assert hit.json["data"]["id"] == mid and hit.json["data"]["status"] == "delivered"


async def test_idempotency_key_replays_the_first_answer(stack: Stack) -> None:
    customer = await stack.customer(credits=5)
    payload = {"to": us_number(), "body": "exactly once"}
    headers = {**customer.headers, "Idempotency-Key": f"order-{uuid.uuid4().hex}"}
    url = f"{stack.api}/v1/messages"
    async with stack.http.post(url, json=payload, headers=headers) as resp:
        assert resp.status == 202
        first = await resp.json()
    async with stack.http.post(url, json=payload, headers=headers) as resp:
        assert resp.status == 202
        assert resp.headers["Idempotent-Replayed"] == "true"
        assert await resp.json() == first
    async with stack.http.post(url, json={**payload, "body": "other"}, headers=headers) as resp:
        assert resp.status == 409
        assert (await resp.json())["error"]["code"] == "IDEMPOTENCY_KEY_REUSED"
    await stack.final_webhook(customer, first["messages"][0]["id"])
    count = await stack.pool.fetchval(
        "SELECT count(*) FROM messages WHERE account_id = $1", customer.account_id
    )
    assert count == 1
    assert await ledger_consistent(stack.pool, customer.account_id) == (Decimal(4), Decimal(4))


async def test_idempotency_key_released_when_nothing_was_accepted(stack: Stack) -> None:
    customer = await stack.customer(credits=1)
    headers = {**customer.headers, "Idempotency-Key": uuid.uuid4().hex}
    url = f"{stack.api}/v1/messages"
    async with stack.http.post(
        url, json={"to": us_number(), "body": "y" * 300}, headers=headers
    ) as resp:
        assert resp.status == 402
    async with stack.http.post(
        url, json={"to": us_number(), "body": "short"}, headers=headers
    ) as resp:
        assert resp.status == 202


def test_key_cache_remembers_for_its_ttl_only() -> None:
    cache = KeyCache(ttl=1.0, max_entries=2)
    who = Caller(uuid.uuid4(), uuid.uuid4(), "US", 1.0, 60, ("sms",))
    cache.put(b"a", who, 100.0)
    cache.put(b"b", (401, "INVALID_API_KEY", "no"), 100.0)
    assert cache.get(b"a", 100.5) is who
    assert cache.get(b"b", 100.5) == (401, "INVALID_API_KEY", "no")
    assert cache.get(b"a", 101.0) is None  # expired
    cache.put(b"c", who, 101.5)  # full of expired entries: they make room
    assert cache.get(b"c", 101.6) is who and cache.get(b"a", 101.6) is None
    off = KeyCache(ttl=0.0)
    off.put(b"a", who, 1.0)
    assert off.get(b"a", 1.0) is None


async def test_health_readiness_and_metrics(stack: Stack) -> None:
    async with stack.http.get(f"{stack.api}/healthz") as resp:
        assert resp.status == 200
    async with stack.http.get(f"{stack.api}/readyz") as resp:
        assert resp.status == 200
        body = await resp.json()
        assert body == {
            "status": "ready",
            "checks": {"postgres": "ok", "rabbitmq": "ok", "redis": "ok"},
        }
    customer = await stack.customer()
    await stack.send(customer, {"to": us_number(), "body": "counted"})
    async with stack.http.get(f"{stack.api}/metrics") as resp:
        text = await resp.text()
    assert 'smsbroker_api_requests_total{method="POST",route="/v1/messages",status="202"}' in text
    assert "smsbroker_messages_accepted_total" in text


async def test_message_past_its_validity_fails_and_is_refunded(
    stack: Stack, settings: Settings
) -> None:
    """A request that waited longer than MESSAGE_VALIDITY_HOURS (e.g. behind a dead carrier)."""
    customer = await stack.customer(credits=3)
    mid = str(uuid.uuid4())
    amqp = Amqp(settings.amqp_url, QueueNames(settings.queue_prefix))
    await amqp.connect()
    try:
        await amqp.publish(
            amqp.names.ingest,
            {
                "requests": [
                    {
                        "account_id": str(customer.account_id),
                        "batch_id": None,
                        "body": "stale",
                        "sender": None,
                        "client_ref": None,
                        "callback_url": None,
                        "encoding": "GSM7",
                        "segments": 1,
                        "recipients": [[mid, us_number()]],
                        "accepted_at": (datetime.now(UTC) - timedelta(days=3)).isoformat(),
                    }
                ]
            },
        )
    finally:
        await amqp.close()
    data = await stack.final_webhook(customer, mid)
    assert data["status"] == "failed" and data["error"]["code"] == "EXPIRED"
    assert await ledger_consistent(stack.pool, customer.account_id) == (Decimal(3), Decimal(3))
    assert not [r for r in stack.sim.submitted if r.short_message == b"stale"]


async def test_poison_item_is_dead_lettered_and_the_rest_flows(
    stack: Stack, settings: Settings
) -> None:
    """An MO that PostgreSQL cannot store (a NUL character) must not block its batch."""
    customer = await stack.customer(credits=1)
    number = f"1415555{uuid.uuid4().int % 10_000:04d}"
    async with stack.pool.acquire() as conn:
        await accounts.add_number(conn, customer.account_id, number, "")
    await asyncio.gather(
        stack.sim.inject_mo("233205550368", number, "bad \x00 byte"),
        stack.sim.inject_mo("233205550369", number, "good one"),
    )
    [hit] = await stack.receiver.wait_for(
        lambda r: r.path == customer.path and r.json["type"] == "message.inbound"
    )
    assert hit.json["data"]["body"] == "good one"
    connection = await aio_pika.connect(settings.amqp_url)
    try:
        channel = await connection.channel()
        queue = await channel.get_queue(QueueNames(settings.queue_prefix).dead, ensure=False)
        async with asyncio.timeout(20):
            while (message := await queue.get(fail=False)) is None:
                await asyncio.sleep(0.1)
        await message.ack()
        dead = json.loads(message.body)
    finally:
        await connection.close()
    assert dead["source"] == "events" and dead["item"]["text"] == "bad \x00 byte"


async def test_tps_capped_connector_added_while_running(stack: Stack) -> None:
    """A connector added with `connector add` is bound without a restart and keeps its TPS."""
    await add_connector(stack.pool, "sim-slow", stack.sim.port, tps=40, binds=1)
    async with stack.pool.acquire() as conn:
        await accounts.add_route(conn, "1212555", "sim-slow", Decimal(2))
    # Workers and the API reload connectors and routes every 5 seconds.
    await asyncio.sleep(6)
    customer = await stack.customer(credits=200)
    numbers = [f"+1212555{i:04d}" for i in range(1000, 1060)]  # clear of the sim's rules
    status, body = await stack.send(customer, {"to": numbers, "body": "slow lane"})
    assert status == 202, body
    for m in body["messages"]:
        data = await stack.final_webhook(customer, m["id"])
        assert data["status"] == "delivered" and data["cost"] == 2
    connectors = await stack.pool.fetch(
        "SELECT DISTINCT p.connector FROM message_parts p JOIN messages m ON m.id = p.message_id"
        " WHERE m.account_id = $1",
        customer.account_id,
    )
    assert [r["connector"] for r in connectors] == ["sim-slow"]
    assert await ledger_consistent(stack.pool, customer.account_id) == (Decimal(80), Decimal(80))
