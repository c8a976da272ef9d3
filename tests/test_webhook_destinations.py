"""Webhooks only to public addresses unless the operator allows private ones."""

from __future__ import annotations

import uuid
from dataclasses import replace

import aiohttp
import asyncpg
import pytest
from aiohttp.test_utils import TestClient, TestServer

from api.app import create_app
from broker import accounts
from broker.config import Settings
from broker.webhooks.delivery import Delivery, post
from broker.webhooks.destinations import PublicOnlyResolver, is_public, refused_destination
from broker.webhooks.payloads import parse_event
from tests.harness import Customer


@pytest.mark.parametrize(
    ("url", "refused"),
    [
        ("https://hooks.example.com/sms", False),
        ("https://93.184.216.34/x", False),
        ("http://localhost:8080/x", True),
        ("http://api.localhost/x", True),
        ("http://127.0.0.1/x", True),
        ("http://10.1.2.3/x", True),
        ("http://172.16.0.1/x", True),
        ("http://192.168.1.1/x", True),
        ("http://169.254.169.254/latest/meta-data", True),
        ("http://[::1]/x", True),
        ("http://[fd00::1]/x", True),
        ("http://0.0.0.0/x", True),
    ],
)
def test_refused_destinations(url: str, refused: bool) -> None:
    assert (refused_destination(url) is not None) is refused


def test_is_public() -> None:
    assert is_public("8.8.8.8") and not is_public("127.0.0.1") and not is_public("not-an-ip")


async def test_resolver_drops_private_answers() -> None:
    resolver = PublicOnlyResolver()
    try:
        with pytest.raises(OSError, match="no public address"):
            await resolver.resolve("localhost", 80)
    finally:
        await resolver.close()


async def test_post_refuses_a_private_literal_without_sending() -> None:
    event = parse_event(
        {
            "id": "evt_1",
            "type": "message.status",
            "account_id": str(uuid.uuid4()),
            "timestamp": "2026-11-22T00:00:00.000Z",
            "data": {},
        }
    )
    delivery = Delivery(event, None, "http://127.0.0.1:9/x", "whsec_" + "A" * 44, 1)
    async with aiohttp.ClientSession() as session:
        outcome = await post(session, delivery, allow_private=False)
    assert outcome.status_code is None and "private address" in (outcome.error or "")


async def test_api_refuses_private_urls_when_not_allowed(settings: Settings) -> None:
    strict = replace(settings, webhook_allow_private=False)
    client = TestClient(TestServer(create_app(strict)))
    await client.start_server()
    try:
        conn = await asyncpg.connect(settings.database_url)
        try:
            account = await accounts.create_account(
                conn, "strict", accounts.parse_amount("5", field="c", allow_negative=False), "US"
            )
            key = (await accounts.create_key(conn, account)).secret
        finally:
            await conn.close()
        who = Customer(account, key)
        resp = await client.post(
            "/v1/webhooks", json={"url": "http://169.254.169.254/x"}, headers=who.headers
        )
        assert resp.status == 400 and (await resp.json())["error"]["code"] == "INVALID_URL"
        resp = await client.post(
            "/v1/messages",
            json={"to": "+14155552671", "body": "x", "callback_url": "http://10.0.0.5/cb"},
            headers=who.headers,
        )
        assert resp.status == 400 and (await resp.json())["error"]["field"] == "callback_url"
        resp = await client.post(
            "/v1/webhooks", json={"url": "https://hooks.example.com/x"}, headers=who.headers
        )
        assert resp.status == 201
    finally:
        await client.close()
