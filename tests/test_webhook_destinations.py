"""Webhooks only to public addresses unless the operator allows private ones."""

from __future__ import annotations

import socket
import uuid

import asyncpg
import pytest
from aiohttp import web
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.test_utils import TestClient, TestServer
from aiohttp.typedefs import Handler
from pydantic import ValidationError

from api.context import CALLER, POOL, SETTINGS, Caller
from api.contract import input_error, register
from api.errors import error_response
from api.schemas.messages import SendRequest
from api.webhooks import endpoints
from broker.config import Settings
from broker.errors import BrokerError
from broker.http_client import HttpClient
from broker.webhooks.delivery import Delivery, post
from broker.webhooks.destinations import PublicOnlyResolver, is_public, refused_destination
from broker.webhooks.payloads import parse_event


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


class FixedResolver(AbstractResolver):
    """Answers every name with the given addresses (no real lookup in tests)."""

    def __init__(self, *addresses: str) -> None:
        self.addresses = addresses

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        return [
            ResolveResult(hostname=host, host=a, port=port, family=family, proto=0, flags=0)
            for a in self.addresses
        ]

    async def close(self) -> None:
        return None


async def test_resolver_keeps_only_public_answers() -> None:
    mixed = PublicOnlyResolver(FixedResolver("10.0.0.7", "93.184.216.34"))
    assert [r["host"] for r in await mixed.resolve("hooks.example.com", 443)] == ["93.184.216.34"]
    private = PublicOnlyResolver(FixedResolver("127.0.0.1", "169.254.169.254"))
    with pytest.raises(OSError, match="no public address"):
        await private.resolve("sneaky.example.com", 80)


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
    client = HttpClient()
    outcome = await post(client, delivery, timeout=5, allow_private=False)
    await client.close()
    assert outcome.status_code is None and "private address" in (outcome.error or "")


STRICT = Settings(webhook_allow_private=False)


def test_callback_url_to_a_private_address_is_refused() -> None:
    data = {"to": "+14155552671", "body": "x", "callback_url": "http://10.0.0.5/cb"}
    with pytest.raises(ValidationError) as caught:
        SendRequest.model_validate(data, context={"region": "US", "allow_private": False})
    error = input_error(caught.value, SendRequest)
    assert error.code == "INVALID_URL" and error.field == "callback_url"
    allowed = SendRequest.model_validate(data, context={"region": "US", "allow_private": True})
    assert allowed.callback_url == "http://10.0.0.5/cb"


async def test_webhook_endpoint_to_a_private_address_is_refused(pool: asyncpg.Pool) -> None:
    account = await pool.fetchval(
        "INSERT INTO accounts (name, webhook_secret) VALUES ('strict', 's') RETURNING id"
    )

    @web.middleware
    async def as_account(request: web.Request, handler: Handler) -> web.StreamResponse:
        request[CALLER] = Caller(account, uuid.uuid4(), "US", 0.0, 60, ("sms",))
        try:
            return await handler(request)
        except BrokerError as exc:
            return error_response(exc)

    app = web.Application(middlewares=[as_account])
    app[POOL] = pool
    app[SETTINGS] = STRICT
    register(app, endpoints)
    client = TestClient(TestServer(app))
    await client.start_server()
    try:
        resp = await client.post("/v1/webhooks", json={"url": "http://169.254.169.254/x"})
        assert resp.status == 400 and (await resp.json())["error"]["code"] == "INVALID_URL"
        resp = await client.post("/v1/webhooks", json={"url": "https://hooks.example.com/x"})
        assert resp.status == 201
    finally:
        await client.close()
