"""VanuConnect's API at /compat/vanuconnect on a whole gateway (simulated carrier, every worker):
each example of VanuConnect's document run as written, base URL and key replaced, and each
error code of its table provoked for real."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from decimal import Decimal
from typing import Any

import asyncpg
import pytest

from broker import accounts
from broker.config import Settings
from broker.migrate import migrate
from tests.conftest import PG_ADMIN_DSN, PG_BASE, RUN_ID, _rabbitmqctl
from tests.harness import SimStack, api_client, sim_stack, with_settings

BASE = "/compat/vanuconnect"
SEND = f"{BASE}/functions/v1/send-sms-api"
BALANCE = f"{BASE}/functions/v1/check-balance-api"
#: A Vanuatu mobile number (the document's +6781234567 is no valid Vanuatu number).
VU_NUMBER = "+6787712345"

#: The curl example's body, byte for byte.
CURL_BODY = """{
"phone_number": "+6781234567",
"message": "Hello from VanuConnect!",
"channel": "sms"
}"""
#: The Node and PHP examples send the same object, as JSON.stringify / json_encode write it.
COMPACT_BODY = json.dumps(
    {"phone_number": "+6781234567", "message": "Hello from VanuConnect!", "channel": "sms"},
    separators=(",", ":"),
)


class Stack(SimStack):
    async def account(
        self,
        *,
        credits: int = 100,
        rate_limit: int = 100_000,
        channels: tuple[str, ...] = ("sms",),
        plan: str | None = None,
    ) -> tuple[uuid.UUID, str, uuid.UUID]:
        """(account id, key secret, key id): a Vanuatu account as the operator sets it up."""
        async with self.pool.acquire() as conn:
            account_id = await accounts.create_account(
                conn, f"vanu-{uuid.uuid4().hex[:8]}", Decimal(credits), "VU"
            )
            key = await accounts.create_key(
                conn, account_id, rate_limit=rate_limit, channels=channels
            )
            if plan is not None:
                await accounts.update_account(conn, account_id, plan=plan)
        return account_id, key.secret, key.id

    async def call(
        self,
        method: str,
        path: str,
        key: str | None,
        *,
        data: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, Any, dict[str, str]]:
        sent = dict(headers or {})
        if key is not None:
            sent["Authorization"] = f"Bearer {key}"
        if data is not None:
            sent.setdefault("Content-Type", "application/json")
        async with self.http.request(method, f"{self.api}{path}", data=data, headers=sent) as resp:
            return resp.status, await resp.json(), dict(resp.headers)

    async def send_sms(self, key: str, payload: dict[str, Any]) -> tuple[int, Any]:
        status, body, _ = await self.call("POST", SEND, key, data=json.dumps(payload))
        return status, body

    async def native(self, key: str, method: str, path: str, **kw: Any) -> tuple[int, Any]:
        async with self.http.request(
            method, f"{self.api}{path}", headers={"Authorization": f"Bearer {key}"}, **kw
        ) as resp:
            return resp.status, await resp.json() if resp.content_length != 0 else None


def only_vanuconnect(settings: Settings) -> Settings:
    """The gateway serving this dialect (DIALECTS=vanuconnect): the others are not under test."""
    return with_settings(settings, dialects=("vanuconnect",))


@pytest.fixture(scope="module")
async def stack(settings: Settings, pool: asyncpg.Pool) -> AsyncIterator[Stack]:
    async with sim_stack(only_vanuconnect(settings), pool, Stack, "vanu") as s:
        yield s


def assert_failure(body: Any, code: str) -> None:
    """VanuConnect's error shape: success false, the code, a message."""
    assert body["success"] is False, body
    assert body["error"] == code, body
    assert isinstance(body["message"], str) and body["message"], body


async def final_status(stack: Stack, key: str, message_id: str) -> str:
    deadline = time.monotonic() + 20
    while True:
        status, body = await stack.native(key, "GET", f"/v1/messages/{message_id}")
        assert status in (200, 404), body  # 404: not recorded by the charge worker yet
        if status == 200 and body["status"] in ("delivered", "undelivered", "failed"):
            return str(body["status"])
        assert time.monotonic() < deadline, body
        await asyncio.sleep(0.1)


# --- The document's examples ---------------------------------------------------------------


@pytest.mark.parametrize("body", [CURL_BODY, COMPACT_BODY], ids=["curl", "node-php"])
async def test_send_example_as_written(stack: Stack, body: str) -> None:
    """The examples' number, +6781234567, is no valid Vanuatu number: a 400 in VanuConnect's
    shape with the native code, naming phone_number, and nothing charged."""
    account_id, key, _ = await stack.account()
    status, answer, _ = await stack.call("POST", SEND, key, data=body)
    assert status == 400, answer
    assert_failure(answer, "INVALID_PHONE_NUMBER")
    assert answer["field"] == "phone_number"
    status, balance, _ = await stack.call("GET", BALANCE, key)
    assert balance["credits"] == 100


@pytest.mark.parametrize("body", [CURL_BODY, COMPACT_BODY], ids=["curl", "node-php"])
async def test_send_example_with_a_real_number(stack: Stack, body: str) -> None:
    """The example with a real number: the documented answer, figures included (1 credit of
    100), and the message delivered and charged exactly that."""
    account_id, key, _ = await stack.account(credits=100)
    status, answer, headers = await stack.call(
        "POST", SEND, key, data=body.replace("+6781234567", VU_NUMBER)
    )
    assert status == 200, answer
    assert answer == {
        "success": True,
        "message_id": answer["message_id"],
        "credits_used": 1,
        "credits_remaining": 99,
    }
    uuid.UUID(answer["message_id"])
    assert headers["X-RateLimit-Limit"] == "100000"
    assert await final_status(stack, key, answer["message_id"]) == "delivered"
    status, message = await stack.native(key, "GET", f"/v1/messages/{answer['message_id']}")
    assert message["to"] == VU_NUMBER and message["cost"] == 1
    status, balance, _ = await stack.call("GET", BALANCE, key)
    assert balance["credits"] == 99


async def test_credits_follow_segments_and_channel_defaults_to_sms(stack: Stack) -> None:
    """credits_used is the message's segments × the route's price: 918 GSM characters are six
    parts; without `channel` it is an SMS."""
    _, key, _ = await stack.account(credits=10)
    status, answer = await stack.send_sms(key, {"phone_number": VU_NUMBER, "message": "x" * 918})
    assert status == 200, answer
    assert (answer["credits_used"], answer["credits_remaining"]) == (6, 4)
    await final_status(stack, key, answer["message_id"])
    status, message = await stack.native(key, "GET", f"/v1/messages/{answer['message_id']}")
    assert message["segments"] == 6


async def test_balance_example_as_written(stack: Stack) -> None:
    _, key, _ = await stack.account(credits=1500, plan="business")
    status, answer, _ = await stack.call("GET", BALANCE, key)
    assert status == 200, answer
    assert answer == {"credits": 1500, "subscription_plan": "business", "status": "active"}


# --- The error table ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Basic dXNlcjpwYXNz"}, {"Authorization": "Bearer "}],
    ids=["none", "not-bearer", "empty"],
)
async def test_401_unauthorized(stack: Stack, headers: dict[str, str]) -> None:
    for method, path in (("POST", SEND), ("GET", BALANCE)):
        status, answer, _ = await stack.call(
            method, path, None, headers=headers, data="{}" if method == "POST" else None
        )
        assert status == 401, answer
        assert_failure(answer, "UNAUTHORIZED")


async def test_401_invalid_api_key(stack: Stack) -> None:
    status, answer, _ = await stack.call("GET", BALANCE, "vanu_live_your_api_key")
    assert status == 401, answer
    assert_failure(answer, "INVALID_API_KEY")


async def test_402_insufficient_credits(stack: Stack) -> None:
    _, key, _ = await stack.account(credits=0)
    status, answer = await stack.send_sms(key, {"phone_number": VU_NUMBER, "message": "hi"})
    assert status == 402, answer
    assert_failure(answer, "INSUFFICIENT_CREDITS")


async def test_403_api_key_disabled(stack: Stack) -> None:
    _, key, key_id = await stack.account()
    status, revoked = await stack.native(key, "DELETE", f"/v1/keys/{key_id}")
    assert status == 200, revoked
    for method, path in (("POST", SEND), ("GET", BALANCE)):
        data = json.dumps({"phone_number": VU_NUMBER, "message": "hi"})
        status, answer, _ = await stack.call(
            method, path, key, data=data if method == "POST" else None
        )
        assert status == 403, answer
        assert_failure(answer, "API_KEY_DISABLED")


async def test_403_channel_not_allowed(stack: Stack) -> None:
    _, key, _ = await stack.account(channels=("sms",))
    payload = {"phone_number": VU_NUMBER, "message": "hi", "channel": "whatsapp"}
    status, answer = await stack.send_sms(key, payload)
    assert status == 403, answer
    assert_failure(answer, "CHANNEL_NOT_ALLOWED")


async def test_whatsapp_answered_as_the_native_send_answers(stack: Stack) -> None:
    """A key with the whatsapp channel: whatever the native send says of a WhatsApp message
    (no WhatsApp connector: 400 CHANNEL_UNAVAILABLE), said in VanuConnect's shape."""
    _, key, _ = await stack.account(channels=("sms", "whatsapp"))
    native_status, native = await stack.native(
        key,
        "POST",
        "/v1/messages",
        json={"to": VU_NUMBER, "body": "hi", "channel": "whatsapp"},
    )
    status, answer = await stack.send_sms(
        key, {"phone_number": VU_NUMBER, "message": "hi", "channel": "whatsapp"}
    )
    if native_status == 202:
        assert status == 200 and answer["success"] is True, answer
    else:
        assert status == native_status, answer
        assert_failure(answer, native["error"]["code"])


async def test_403_opted_out(stack: Stack) -> None:
    _, key, _ = await stack.account()
    status, _ = await stack.native(key, "POST", "/v1/opt-outs", json={"phone": VU_NUMBER})
    assert status == 201
    status, answer = await stack.send_sms(key, {"phone_number": VU_NUMBER, "message": "hi"})
    assert status == 403, answer
    assert_failure(answer, "OPTED_OUT")


async def test_429_rate_limit_exceeded_with_retry_after(stack: Stack) -> None:
    _, key, _ = await stack.account(rate_limit=1)
    status, answer, _ = await stack.call("GET", BALANCE, key)
    assert status == 200, answer
    status, answer, headers = await stack.call(
        "POST", SEND, key, data=json.dumps({"phone_number": VU_NUMBER, "message": "hi"})
    )
    assert status == 429, answer
    assert_failure(answer, "RATE_LIMIT_EXCEEDED")
    assert isinstance(answer["retry_after"], int) and answer["retry_after"] >= 1
    assert headers["Retry-After"] == str(answer["retry_after"])
    assert headers["X-RateLimit-Limit"] == "1"


@pytest.mark.parametrize(
    ("payload", "code", "field"),
    [
        ({"message": "hi"}, "MISSING_RECIPIENT", "phone_number"),
        ({"phone_number": "12", "message": "hi"}, "INVALID_PHONE_NUMBER", "phone_number"),
        ({"phone_number": VU_NUMBER}, "EMPTY_BODY", "message"),
        ({"phone_number": VU_NUMBER, "message": ""}, "EMPTY_BODY", "message"),
        ({"phone_number": VU_NUMBER, "message": "x" * 919}, "BODY_TOO_LONG", "message"),
        (
            {"phone_number": VU_NUMBER, "message": "hi", "channel": "fax"},
            "INVALID_INPUT",
            "channel",
        ),
    ],
    ids=["no-number", "bad-number", "no-message", "empty-message", "919-chars", "bad-channel"],
)
async def test_400_bad_input_in_vanuconnect_shape(
    stack: Stack, payload: dict[str, Any], code: str, field: str
) -> None:
    account_id, key, _ = await stack.account(credits=100)
    status, answer = await stack.send_sms(key, payload)
    assert status == 400, answer
    assert_failure(answer, code)
    assert answer["field"] == field
    assert (
        await stack.pool.fetchval("SELECT count(*) FROM messages WHERE account_id = $1", account_id)
        == 0
    )


async def test_unknown_path_and_bad_json_in_vanuconnect_shape(stack: Stack) -> None:
    _, key, _ = await stack.account()
    status, answer, _ = await stack.call("GET", f"{BASE}/functions/v1/nothing", key)
    assert status == 404
    assert_failure(answer, "NOT_FOUND")
    status, answer, _ = await stack.call("POST", SEND, key, data="{not json")
    assert status == 400
    assert_failure(answer, "INVALID_JSON")


# --- 500 DELIVERY_FAILED: a gateway with no route at all -----------------------------------


@asynccontextmanager
async def routeless(settings: Settings) -> AsyncIterator[Settings]:
    """Settings on a database and a vhost of their own, with no route: no number can be
    delivered (the module's shared database has a default route to the simulated carrier)."""
    tail = uuid.uuid4().hex[:6]
    db = f"smsb_test_{RUN_ID}_vanu_{tail}"
    vhost = f"smsb_test_{RUN_ID}_vanu_{tail}"
    admin = await asyncpg.connect(PG_ADMIN_DSN)
    try:
        await admin.execute(f'CREATE DATABASE "{db}"')
    finally:
        await admin.close()
    _rabbitmqctl("add_vhost", vhost)
    _rabbitmqctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
    try:
        dsn = f"{PG_BASE}/{db}"
        await migrate(dsn)
        amqp = settings.amqp_url.rsplit("/", 1)[0] + f"/{vhost}"
        yield with_settings(settings, database_url=dsn, amqp_url=amqp)
    finally:
        _rabbitmqctl("delete_vhost", vhost)
        admin = await asyncpg.connect(PG_ADMIN_DSN)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
        finally:
            await admin.close()


async def test_500_delivery_failed_when_no_route_carries_the_number(settings: Settings) -> None:
    """The message is accepted natively and ends failed NO_ROUTE, uncharged; the VanuConnect
    customer is told at once, with the message id."""
    async with routeless(only_vanuconnect(settings)) as bare, api_client(bare) as client:
        conn = await asyncpg.connect(bare.database_url)
        try:
            account_id = await accounts.create_account(conn, "vanu-bare", Decimal(5), "VU")
            key = await accounts.create_key(conn, account_id, rate_limit=100_000)
        finally:
            await conn.close()
        headers = {"Authorization": f"Bearer {key.secret}"}
        async with client.post(
            SEND, json={"phone_number": VU_NUMBER, "message": "hi"}, headers=headers
        ) as resp:
            answer = await resp.json()
            assert resp.status == 500, answer
        assert_failure(answer, "DELIVERY_FAILED")
        uuid.UUID(answer["message_id"])
        async with client.get(BALANCE, headers=headers) as resp:
            assert (await resp.json())["credits"] == 5
