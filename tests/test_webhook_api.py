"""/v1/webhooks over real HTTP and a real database, on a small app wired like the product's."""

from __future__ import annotations

import asyncio
import base64
import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from aiohttp.typedefs import Handler

from api import webhooks
from api.context import CALLER, POOL, SETTINGS, Caller
from api.contract import register
from api.errors import error_response
from broker.config import Settings
from broker.errors import BrokerError
from broker.webhooks.signing import new_secret
from broker.webhooks.store import MAX_ENDPOINTS


@web.middleware
async def errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except BrokerError as exc:
        return error_response(exc)


@web.middleware
async def fake_auth(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Stands in for key authentication: the account is named by a header."""
    request[CALLER] = Caller(
        account_id=uuid.UUID(request.headers["X-Account"]),
        key_id=uuid.uuid4(),
        region="GH",
        balance_at_auth=0.0,
        rate_limit=1000,
        channels=("sms",),
    )
    return await handler(request)


@pytest.fixture(scope="module")
async def client(pool: asyncpg.Pool) -> AsyncIterator[TestClient[web.Request, web.Application]]:
    app = web.Application(middlewares=[errors, fake_auth])
    app[POOL] = pool
    app[SETTINGS] = Settings(webhook_allow_private=True)  # test receivers are on 127.0.0.1
    register(app, webhooks.endpoints)
    async with TestClient(TestServer(app, host="127.0.0.1", port=0)) as test_client:
        yield test_client


Client = TestClient[web.Request, web.Application]


async def new_account(pool: asyncpg.Pool) -> dict[str, str]:
    account_id = await pool.fetchval(
        "INSERT INTO accounts (name, webhook_secret) VALUES ('api test', $1) RETURNING id",
        new_secret(),
    )
    return {"X-Account": str(account_id)}


async def create(client: Client, who: dict[str, str], **body: Any) -> dict[str, Any]:
    response = await client.post("/v1/webhooks", json=body, headers=who)
    assert response.status == 201, await response.text()
    created: dict[str, Any] = await response.json()
    return created


async def error_of(response: Any, status: int) -> dict[str, Any]:
    assert response.status == status, await response.text()
    body = await response.json()
    assert set(body) == {"error"}
    err: dict[str, Any] = body["error"]
    return err


async def test_create_shows_the_secret_once(client: Client, pool: asyncpg.Pool) -> None:
    who = await new_account(pool)
    created = await create(client, who, url="https://example.com/hooks")
    assert set(created) == {"id", "url", "events", "format", "secret", "created_at"}
    assert created["format"] == "standard"
    assert created["url"] == "https://example.com/hooks"
    assert created["events"] == ["message.status", "message.inbound"]
    assert created["secret"].startswith("whsec_")
    assert len(base64.b64decode(created["secret"][6:])) == 32
    stored = await pool.fetchval(
        "SELECT secret FROM webhooks WHERE id = $1", uuid.UUID(created["id"])
    )
    assert stored == created["secret"]

    one = await client.get(f"/v1/webhooks/{created['id']}", headers=who)
    assert one.status == 200
    shown = await one.json()
    assert "secret" not in shown
    assert shown == {k: v for k, v in created.items() if k != "secret"}

    listed = await client.get("/v1/webhooks", headers=who)
    assert listed.status == 200
    assert await listed.json() == {"data": [shown], "next_cursor": None}


async def test_scheme_is_stored_lower_case(client: Client, pool: asyncpg.Pool) -> None:
    who = await new_account(pool)
    created = await create(client, who, url="HTTPS://Example.com/Path?Q=1")
    assert created["url"] == "https://Example.com/Path?Q=1"


async def test_create_with_chosen_events(client: Client, pool: asyncpg.Pool) -> None:
    who = await new_account(pool)
    created = await create(
        client, who, url="http://127.0.0.1:9/in", events=["message.inbound", "message.inbound"]
    )
    assert created["events"] == ["message.inbound"]


@pytest.mark.parametrize(
    ("body", "code", "field"),
    [
        (b"{not json", "INVALID_JSON", None),
        (b"", "INVALID_JSON", None),
        (b"\xff\xfe", "INVALID_JSON", None),
        (b"[]", "INVALID_JSON", None),
        (b'"https://example.com"', "INVALID_JSON", None),
        (b"{}", "INVALID_URL", "url"),
        (b'{"url": "ftp://example.com"}', "INVALID_URL", "url"),
        (b'{"url": "https://"}', "INVALID_URL", "url"),
        (b'{"url": 5}', "INVALID_URL", "url"),
        (b'{"url": "https://example.com", "events": []}', "INVALID_EVENTS", "events"),
        (b'{"url": "https://example.com", "events": ["sms.sent"]}', "INVALID_EVENTS", "events"),
        (b'{"url": "https://example.com", "events": "message.status"}', "INVALID_EVENTS", "events"),
    ],
)
async def test_bad_input_is_a_400_and_creates_nothing(
    client: Client, pool: asyncpg.Pool, body: bytes, code: str, field: str | None
) -> None:
    who = await new_account(pool)
    response = await client.post(
        "/v1/webhooks", data=body, headers={**who, "Content-Type": "application/json"}
    )
    err = await error_of(response, 400)
    assert err["code"] == code
    assert err.get("field") == field
    assert err["message"]
    count = await pool.fetchval(
        "SELECT count(*) FROM webhooks WHERE account_id = $1", uuid.UUID(who["X-Account"])
    )
    assert count == 0


async def test_another_accounts_webhook_is_not_found(client: Client, pool: asyncpg.Pool) -> None:
    owner, stranger = await new_account(pool), await new_account(pool)
    created = await create(client, owner, url="https://example.com/a")
    for method, suffix in [("GET", ""), ("DELETE", ""), ("GET", "/deliveries")]:
        response = await client.request(
            method, f"/v1/webhooks/{created['id']}{suffix}", headers=stranger
        )
        assert (await error_of(response, 404))["code"] == "NOT_FOUND"
    listed = await client.get("/v1/webhooks", headers=stranger)
    assert await listed.json() == {"data": [], "next_cursor": None}
    still = await client.get(f"/v1/webhooks/{created['id']}", headers=owner)
    assert still.status == 200


@pytest.mark.parametrize("webhook_id", ["not-a-uuid", str(uuid.uuid4()), "1"])
async def test_unknown_or_malformed_ids_are_404(
    client: Client, pool: asyncpg.Pool, webhook_id: str
) -> None:
    who = await new_account(pool)
    for method, suffix in [("GET", ""), ("DELETE", ""), ("GET", "/deliveries")]:
        response = await client.request(method, f"/v1/webhooks/{webhook_id}{suffix}", headers=who)
        assert (await error_of(response, 404))["code"] == "NOT_FOUND"


async def test_delete(client: Client, pool: asyncpg.Pool) -> None:
    who = await new_account(pool)
    created = await create(client, who, url="https://example.com/d")
    response = await client.delete(f"/v1/webhooks/{created['id']}", headers=who)
    assert response.status == 204
    assert await response.read() == b""
    gone = await client.get(f"/v1/webhooks/{created['id']}", headers=who)
    await error_of(gone, 404)
    again = await client.delete(f"/v1/webhooks/{created['id']}", headers=who)
    await error_of(again, 404)


async def test_endpoint_limit_holds_under_concurrency(client: Client, pool: asyncpg.Pool) -> None:
    who = await new_account(pool)
    responses = await asyncio.gather(
        *(
            client.post("/v1/webhooks", json={"url": f"https://example.com/{i}"}, headers=who)
            for i in range(MAX_ENDPOINTS + 5)
        )
    )
    statuses = sorted(r.status for r in responses)
    assert statuses == [201] * MAX_ENDPOINTS + [409] * 5
    for response in responses:
        if response.status == 409:
            assert (await error_of(response, 409))["code"] == "WEBHOOK_LIMIT"
    listed = await (await client.get("/v1/webhooks", headers=who)).json()
    assert len(listed["data"]) == MAX_ENDPOINTS

    first = listed["data"][0]["id"]
    assert (await client.delete(f"/v1/webhooks/{first}", headers=who)).status == 204
    await create(client, who, url="https://example.com/after-delete")


async def add_attempts(
    pool: asyncpg.Pool, account_id: uuid.UUID, webhook_id: uuid.UUID, n: int
) -> list[int]:
    ids: list[int] = []
    for i in range(n):
        ids.append(
            await pool.fetchval(
                "INSERT INTO webhook_attempts (account_id, webhook_id, event_id, event_type, url,"
                " attempt, status_code, error, duration_ms, final)"
                " VALUES ($1, $2, $3, 'message.status', 'https://example.com/x', $4, $5, $6, 7, $7)"
                " RETURNING id",
                account_id,
                webhook_id,
                f"evt_{i}",
                1 + i % 3,
                None if i % 4 == 1 else 200 + 300 * (i % 2),
                "timeout" if i % 4 == 1 else None,
                i % 2 == 0,
            )
        )
    return ids


async def test_deliveries_newest_first_with_cursor(client: Client, pool: asyncpg.Pool) -> None:
    who = await new_account(pool)
    account_id = uuid.UUID(who["X-Account"])
    mine = await create(client, who, url="https://example.com/mine")
    other = await create(client, who, url="https://example.com/other")
    ids = await add_attempts(pool, account_id, uuid.UUID(mine["id"]), 7)
    await add_attempts(pool, account_id, uuid.UUID(other["id"]), 3)

    seen: list[int] = []
    query = "limit=3"
    pages = 0
    while True:
        response = await client.get(f"/v1/webhooks/{mine['id']}/deliveries?{query}", headers=who)
        assert response.status == 200
        page = await response.json()
        assert set(page) == {"data", "next_before"}
        assert len(page["data"]) <= 3
        seen += [d["id"] for d in page["data"]]
        pages += 1
        if page["next_before"] is None:
            break
        assert page["next_before"] == page["data"][-1]["id"]
        query = f"limit=3&before={page['next_before']}"
    assert seen == sorted(ids, reverse=True)
    assert pages == 3

    newest = (
        await (await client.get(f"/v1/webhooks/{mine['id']}/deliveries", headers=who)).json()
    )["data"][0]
    assert newest == {
        "id": ids[-1],
        "event_id": "evt_6",
        "event_type": "message.status",
        "url": "https://example.com/x",
        "attempt": 1,
        "status_code": 200,
        "success": True,
        "error": None,
        "duration_ms": 7,
        "final": True,
        "created_at": newest["created_at"],
    }
    assert newest["created_at"].endswith("Z")


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("limit=0", "limit"),
        ("limit=201", "limit"),
        ("limit=abc", "limit"),
        ("limit=-1", "limit"),
        ("before=0", "before"),
        ("before=x", "before"),
        ("before=" + "9" * 5000, "before"),
    ],
)
async def test_deliveries_bad_query(
    client: Client, pool: asyncpg.Pool, query: str, field: str
) -> None:
    who = await new_account(pool)
    created = await create(client, who, url="https://example.com/q")
    response = await client.get(f"/v1/webhooks/{created['id']}/deliveries?{query}", headers=who)
    err = await error_of(response, 400)
    assert err["field"] == field
