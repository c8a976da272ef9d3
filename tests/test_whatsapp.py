"""The WhatsApp channel end to end: a whole gateway whose WhatsApp route leads to the fake Cloud
API (whatsapp_sim), which answers wamids and posts signed status and inbound webhooks back to
the gateway's /webhooks/whatsapp/{connector}."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator
from decimal import Decimal

import asyncpg
import pytest

from broker import accounts, whatsapp
from broker.config import Settings
from broker.store.connectors import WhatsAppSpec
from tests.harness import (
    ApiAccount,
    Client,
    Customer,
    SimStack,
    api_call,
    api_client,
    ledger_consistent,
    phone,
    sim_stack,
    verify_standard_webhook,
)
from whatsapp_sim import WhatsAppSimConfig, WhatsAppSimulator

#: The WhatsApp route's price: per message, whatever the text's length.
PRICE = Decimal("0.5")
VERIFY_TOKEN = "verify-me"
#: A text of three SMS parts (GSM 03.38, 153 septets a part).
LONG_TEXT = "WhatsApp carries this whole text as one message. " * 8


class Stack(SimStack):
    wa: WhatsAppSimulator
    connector: str

    @property
    def webhook_url(self) -> str:
        return f"{self.api}/webhooks/whatsapp/{self.connector}"

    async def wa_customer(self, credits: int = 10) -> Customer:
        """An account whose key may send on both channels, with a webhook endpoint."""
        async with self.pool.acquire() as conn:
            account_id = await accounts.create_account(
                conn, f"wa-{uuid.uuid4().hex[:8]}", Decimal(credits), "US"
            )
            key = await accounts.create_key(
                conn, account_id, rate_limit=100_000, channels=("sms", "whatsapp")
            )
        who = Customer(account_id, key.secret, path=f"/hooks/{account_id}")
        async with self.http.post(
            f"{self.api}/v1/webhooks",
            json={
                "url": self.receiver.url(who.path),
                "events": ["message.status", "message.inbound"],
            },
            headers=who.headers,
        ) as resp:
            assert resp.status == 201, await resp.text()
            who.webhook_secret = (await resp.json())["secret"]
        return who

    async def status_of(self, message_id: str) -> str:
        found: str = await self.pool.fetchval(
            "SELECT status FROM messages WHERE id = $1", uuid.UUID(message_id)
        )
        return found

    async def wait_status(self, message_id: str, wanted: str, within: float = 15.0) -> None:
        deadline = time.monotonic() + within
        while (found := await self.status_of(message_id)) != wanted:
            assert time.monotonic() < deadline, found
            await asyncio.sleep(0.05)

    async def post_webhook(self, raw: bytes, signature: str | None) -> int:
        headers = {"Content-Type": "application/json"}
        if signature is not None:
            headers[whatsapp.SIGNATURE_HEADER] = signature
        async with self.http.post(self.webhook_url, data=raw, headers=headers) as resp:
            return resp.status


@pytest.fixture(scope="module")
async def stack(settings: Settings, pool: asyncpg.Pool) -> AsyncIterator[Stack]:
    """The fake Cloud API as a WhatsApp connector and the default WhatsApp route, added
    before the gateway starts (its route tables load then)."""
    wa = WhatsAppSimulator(WhatsAppSimConfig(refuse={"0400": 131030}, status_delay=0.05))
    await wa.start()
    name = f"wa-{uuid.uuid4().hex[:6]}"
    spec = WhatsAppSpec(
        name,
        wa.base_url,
        wa.config.phone_number_id,
        wa.config.token,
        wa.config.app_secret,
        VERIFY_TOKEN,
    )
    async with pool.acquire() as conn:
        await accounts.add_whatsapp_connector(conn, spec)
        await accounts.add_route(conn, "", name, PRICE, "whatsapp")
    try:
        async with sim_stack(settings, pool, Stack, "wa-sms") as s:
            s.wa, s.connector = wa, name
            wa.config.callback_url = s.webhook_url
            yield s
    finally:
        # Its default route would send later modules' WhatsApp messages to a stopped fake.
        await pool.execute("DELETE FROM routes WHERE connector = $1", name)
        await wa.stop()


@pytest.fixture(scope="module")
async def client(settings: Settings) -> AsyncIterator[Client]:
    async with api_client(settings) as c:
        yield c


async def test_no_whatsapp_route_is_channel_unavailable(client: Client, pool: asyncpg.Pool) -> None:
    """Runs before the stack exists: this module alone makes WhatsApp routes, and any left
    by an earlier run of it are removed first."""
    await pool.execute("DELETE FROM routes WHERE channel = 'whatsapp'")
    async with pool.acquire() as conn:
        account_id = await accounts.create_account(
            conn, f"wa-{uuid.uuid4().hex[:8]}", Decimal(10), "US"
        )
        key = await accounts.create_key(conn, account_id, channels=("sms", "whatsapp"))
    who = ApiAccount(account_id, {"Authorization": f"Bearer {key.secret}"})
    payload = {"to": phone(1), "body": "hi", "channel": "whatsapp"}
    status, body = await api_call(client, "POST", "/v1/messages", who, json=payload)
    assert status == 400, body
    assert body["error"]["code"] == "CHANNEL_UNAVAILABLE"
    count = await pool.fetchval("SELECT count(*) FROM messages WHERE account_id = $1", account_id)
    assert count == 0


async def test_send_posted_in_cloud_api_format_billed_per_message_and_delivered(
    stack: Stack,
) -> None:
    who = await stack.wa_customer(credits=10)
    to = phone(101)
    status, body = await stack.send(who, {"to": to, "body": LONG_TEXT, "channel": "whatsapp"})
    assert status == 202, body
    [msg] = body["messages"]
    assert msg["segments"] == 1
    assert Decimal(str(body["estimated_cost"])) == PRICE

    data = await stack.final_webhook(who, msg["id"])
    assert data["status"] == "delivered"

    [posted] = [r for r in stack.wa.sent if r.body["to"] == to.lstrip("+")]
    assert posted.path == f"/v21.0/{stack.wa.config.phone_number_id}/messages"
    assert posted.headers["Authorization"] == f"Bearer {stack.wa.config.token}"
    assert posted.body == {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": to.lstrip("+"),
        "type": "text",
        "text": {"preview_url": False, "body": LONG_TEXT},
    }
    status, resource = await stack.get(who, f"/v1/messages/{msg['id']}")
    assert status == 200
    assert resource["status"] == "delivered" and resource["segments"] == 1
    assert [p["carrier_id"] for p in resource["parts"]] == [posted.wamid]
    assert [h["status"] for h in resource["history"]] == ["queued", "sending", "sent", "delivered"]
    row = await stack.pool.fetchrow(
        "SELECT channel, connector, cost FROM messages WHERE id = $1", uuid.UUID(msg["id"])
    )
    assert dict(row) == {"channel": "whatsapp", "connector": stack.connector, "cost": PRICE}
    balance, ledger_sum = await ledger_consistent(stack.pool, who.account_id)
    assert balance == ledger_sum == Decimal(10) - PRICE

    # "read" comes after "delivered" and keeps it delivered.
    deadline = time.monotonic() + 10
    while sum(1 for _, doc in stack.wa.posted if posted.wamid in json.dumps(doc)) < 3:
        assert time.monotonic() < deadline
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.3)
    assert await stack.status_of(msg["id"]) == "delivered"


async def test_the_same_text_as_sms_is_three_parts(stack: Stack) -> None:
    """What the WhatsApp send above saved: on the SMS route it is three parts, three prices."""
    who = await stack.wa_customer(credits=10)
    status, body = await stack.send(who, {"to": phone(102), "body": LONG_TEXT})
    assert status == 202, body
    assert body["messages"][0]["segments"] == 3
    assert Decimal(str(body["estimated_cost"])) == 3


async def test_bad_signature_refused_and_nothing_applied(stack: Stack) -> None:
    who = await stack.wa_customer()
    stack.wa.config.statuses = ("sent",)  # the fake reports no delivery for this one
    try:
        status, body = await stack.send(
            who, {"to": phone(103), "body": "sign me", "channel": "whatsapp"}
        )
        assert status == 202, body
        mid = body["messages"][0]["id"]
        await stack.wait_status(mid, "sent")
    finally:
        stack.wa.config.statuses = ("sent", "delivered", "read")
    [posted] = [r for r in stack.wa.sent if r.body["to"] == phone(103).lstrip("+")]
    doc = whatsapp.status_webhook(
        stack.wa.config.phone_number_id,
        stack.wa.config.display_number,
        posted.wamid,
        posted.body["to"],
        "delivered",
        int(time.time()),
    )
    raw = json.dumps(doc).encode()
    assert await stack.post_webhook(raw, whatsapp.signature("not-the-app-secret", raw)) == 401
    assert await stack.post_webhook(raw, None) == 401
    tampered = raw.replace(b'"delivered"', b'"failed"')
    good = whatsapp.signature(stack.wa.config.app_secret, raw)
    assert await stack.post_webhook(tampered, good) == 401  # another body than was signed
    await asyncio.sleep(1.0)
    assert await stack.status_of(mid) == "sent"
    parts = await stack.pool.fetch(
        "SELECT status FROM message_parts WHERE message_id = $1", uuid.UUID(mid)
    )
    assert [p["status"] for p in parts] == ["sent"]

    # The same body signed with the app secret is applied: the refusals were the signature's.
    assert await stack.post_webhook(raw, whatsapp.signature(stack.wa.config.app_secret, raw)) == 200
    assert (await stack.final_webhook(who, mid))["status"] == "delivered"


async def test_webhook_verification(stack: Stack) -> None:
    query = {"hub.mode": "subscribe", "hub.challenge": "1158201444"}
    async with stack.http.get(
        stack.webhook_url, params={**query, "hub.verify_token": VERIFY_TOKEN}
    ) as resp:
        assert resp.status == 200 and await resp.text() == "1158201444"
    async with stack.http.get(
        stack.webhook_url, params={**query, "hub.verify_token": "guess"}
    ) as resp:
        assert resp.status == 403
    async with stack.http.get(
        f"{stack.api}/webhooks/whatsapp/no-such-connector",
        params={**query, "hub.verify_token": VERIFY_TOKEN},
    ) as resp:
        assert resp.status == 404


async def test_inbound_whatsapp_message_is_a_message_inbound_webhook(stack: Stack) -> None:
    who = await stack.wa_customer()
    number = stack.wa.config.display_number
    async with stack.pool.acquire() as conn:
        await accounts.add_number(conn, who.account_id, number, "")
    await stack.wa.inject_inbound("233205550111", "Hello over WhatsApp")
    [hit] = await stack.receiver.wait_for(
        lambda r: r.path == who.path and r.json["type"] == "message.inbound"
    )
    verify_standard_webhook(who.webhook_secret, hit.headers, hit.body)
    data = hit.json["data"]
    assert data["body"] == "Hello over WhatsApp"
    assert data["from"] == "+233205550111" and data["to"] == f"+{number}"


async def test_key_without_the_channel_is_forbidden(stack: Stack) -> None:
    who = await stack.customer(credits=10)  # an SMS-only key
    status, body = await stack.send(who, {"to": phone(104), "body": "hi", "channel": "whatsapp"})
    assert status == 403, body
    assert body["error"]["code"] == "CHANNEL_NOT_ALLOWED"


async def test_refused_by_the_api_fails_and_is_refunded(stack: Stack) -> None:
    who = await stack.wa_customer(credits=10)
    status, body = await stack.send(
        who, {"to": phone(400), "body": "not reachable", "channel": "whatsapp"}
    )
    assert status == 202, body
    mid = body["messages"][0]["id"]
    data = await stack.final_webhook(who, mid)
    assert data["status"] == "failed"
    row = await stack.pool.fetchrow(
        "SELECT error_code, error_text, cost FROM messages WHERE id = $1", uuid.UUID(mid)
    )
    assert row["error_code"] == "SUBMIT_REJECTED" and "WA131030" in row["error_text"]
    balance, ledger_sum = await ledger_consistent(stack.pool, who.account_id)
    assert balance == ledger_sum == Decimal(10)
    assert not [r for r in stack.wa.sent if r.body["to"] == phone(400).lstrip("+")]


async def test_api_outage_is_retried_and_the_message_sent_once(stack: Stack) -> None:
    who = await stack.wa_customer(credits=10)
    stack.wa.config.unavailable = 2  # two 500s, then the API takes it
    status, body = await stack.send(
        who, {"to": phone(105), "body": "after the outage", "channel": "whatsapp"}
    )
    assert status == 202, body
    data = await stack.final_webhook(who, body["messages"][0]["id"])
    assert data["status"] == "delivered"
    assert stack.wa.config.unavailable == 0
    assert len([r for r in stack.wa.sent if r.body["to"] == phone(105).lstrip("+")]) == 1
    balance, _ = await ledger_consistent(stack.pool, who.account_id)
    assert balance == Decimal(10) - PRICE


async def test_operator_cli_adds_a_whatsapp_connector_and_route(
    settings: Settings, pool: asyncpg.Pool, monkeypatch: pytest.MonkeyPatch
) -> None:
    from cli.main import main as cli_main

    async def main(argv: list[str]) -> int:
        """The command as an operator runs it (it runs its own event loop: a thread)."""
        return await asyncio.to_thread(cli_main, argv)

    monkeypatch.setenv("DATABASE_URL", settings.database_url)
    name = f"wa-cli-{uuid.uuid4().hex[:6]}"
    base = ["connector", "add", name, "--kind", "whatsapp", "--url", "https://graph.example/v21.0"]
    assert await main(base) != 0  # the rest of its settings are missing
    full = [*base, "--phone-number-id", "555", "--token", "t", "--app-secret", "s"]
    assert await main([*full, "--verify-token", "v"]) == 0
    assert await main(["route", "add", "--prefix", "998", "--connector", name]) != 0  # not SMS
    route = ["route", "add", "--prefix", "998", "--connector", name, "--channel", "whatsapp"]
    assert await main(route) == 0
    row = await pool.fetchrow(
        "SELECT c.kind, c.scope, r.channel FROM connectors c JOIN routes r"
        " ON r.connector = c.name WHERE c.name = $1",
        name,
    )
    assert dict(row) == {"kind": "whatsapp", "scope": "whatsapp/555", "channel": "whatsapp"}
    await pool.execute("DELETE FROM routes WHERE connector = $1", name)
