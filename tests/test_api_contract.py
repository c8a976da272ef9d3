"""Input that once got a 202 (and was then lost) or a 500, answered by the declared models.

The API runs alone here, on real PostgreSQL and RabbitMQ, with no worker consuming: whatever it
accepted stays countable in the ingest queue, so "refused" provably means "nothing queued".
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import aio_pika
import aiohttp
import asyncpg
import pytest

from api.server import start_api
from broker import accounts
from broker.config import Settings
from broker.queues import QueueNames

NUMBER = "+14155552671"


@dataclass
class Api:
    url: str
    http: aiohttp.ClientSession
    headers: dict[str, str]
    amqp_url: str
    ingest: str

    async def queued(self) -> int:
        """Requests waiting in the ingest queue (nothing consumes it in this module)."""
        connection = await aio_pika.connect(self.amqp_url)
        try:
            channel = await connection.channel()
            queue = await channel.declare_queue(self.ingest, passive=True)
            count = queue.declaration_result.message_count
            assert count is not None
            return count
        finally:
            await connection.close()

    async def post(self, body: bytes | str, content_type: str | None) -> tuple[int, Any]:
        headers = dict(self.headers)
        if content_type is not None:
            headers["Content-Type"] = content_type
        data = body.encode() if isinstance(body, str) else body
        skip = () if content_type is not None else ("Content-Type",)
        async with self.http.post(
            f"{self.url}/v1/messages", data=data, headers=headers, skip_auto_headers=skip
        ) as resp:
            return resp.status, await resp.json()

    async def get(self, path: str) -> tuple[int, Any]:
        async with self.http.get(f"{self.url}{path}", headers=self.headers) as resp:
            return resp.status, await resp.json()


@pytest.fixture(scope="module")
async def api(settings: Settings, pool: asyncpg.Pool) -> AsyncIterator[Api]:
    async with pool.acquire() as conn:
        account_id = await accounts.create_account(conn, "contract", Decimal(1000), "US")
        key = await accounts.create_key(conn, account_id, rate_limit=100_000)
    runner = await start_api(settings, "127.0.0.1", 0)
    port = runner.addresses[0][1]
    http = aiohttp.ClientSession()
    yield Api(
        f"http://127.0.0.1:{port}",
        http,
        {"Authorization": f"Bearer {key.secret}"},
        settings.amqp_url,
        QueueNames(settings.queue_prefix).ingest,
    )
    await http.close()
    await runner.cleanup()


JSON = "application/json"
FORM = "application/x-www-form-urlencoded"


@pytest.mark.parametrize("field", ["body", "client_ref", "callback_url", "from"])
@pytest.mark.parametrize("bad", ["\u0000", "\ud800"])
async def test_unstorable_text_in_json_is_refused_before_the_202(
    api: Api, field: str, bad: str
) -> None:
    """NUL and lone surrogates once got a 202 and then sank the whole request."""
    before = await api.queued()
    value = f"https://example.com/a{bad}b" if field == "callback_url" else f"Ac{bad}me"
    # json.dumps writes "\u0000" / "\ud800" escapes, exactly as a customer's library would.
    status, body = await api.post(json.dumps({"to": NUMBER, "body": "hi", field: value}), JSON)
    assert status == 400, body
    assert body["error"]["code"] in {"INVALID_CHARACTER", "INVALID_JSON", "INVALID_URL"}
    assert await api.queued() == before


@pytest.mark.parametrize("field", ["body", "client_ref", "callback_url", "from"])
async def test_nul_in_a_form_post_is_refused_before_the_202(api: Api, field: str) -> None:
    before = await api.queued()
    value = "https%3A%2F%2Fexample.com%2Fa%00b" if field == "callback_url" else "Ac%00me"
    form = f"to=%2B14155552671&body=hi&{field}={value}"
    if field == "body":
        form = f"to=%2B14155552671&body={value}"
    status, body = await api.post(form, FORM)
    assert status == 400, body
    assert body["error"]["field"] == field
    assert await api.queued() == before


async def test_a_form_post_is_accepted(api: Api) -> None:
    before = await api.queued()
    status, body = await api.post(
        "to=%2B14155552671&to=4155552672&body=hi+there&from=15550001111", FORM
    )
    assert status == 202, body
    assert [m["to"] for m in body["messages"]] == [NUMBER, "+14155552672"]
    assert await api.queued() == before + 1


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        ("[" * 10_000 + "]" * 10_000, "INVALID_JSON"),
        ('{"to": "+14155552671", "body": ' + "[" * 10_000 + "]" * 10_000 + "}", "INVALID_JSON"),
        ('{"to": "+14155552671", "body": "hi", "x": ' + "9" * 5000 + "}", "INVALID_JSON"),
        ('{"to": ' + "1" * 5000 + ', "body": "hi"}', "INVALID_JSON"),
    ],
)
async def test_hostile_json_is_a_400_not_a_500(api: Api, raw: str, code: str) -> None:
    status, body = await api.post(raw, JSON)
    assert status == 400, body
    assert body["error"]["code"] == code


def _cursor(stamp: str) -> str:
    return base64.urlsafe_b64encode(f"{stamp}|{uuid.uuid4()}".encode()).decode()


@pytest.mark.parametrize(
    "query",
    [
        "limit=%C2%B2",  # "²": a digit to str.isdigit, not to int()
        "limit=0",
        "limit=99999999999999999999999999",
        "limit=-1",
        f"cursor={_cursor('0001-01-01T00:00:00+14:00')}",
        f"cursor={_cursor('9999-12-31T23:59:59-14:00')}",
        f"cursor={_cursor('2026-01-01T00:00:00')}",  # no time zone
        "cursor=%FF%FE",
        "cursor=bm90IGEgY3Vyc29y",
        "status=lost",
        "batch_id=not-a-uuid",
    ],
)
async def test_bad_list_queries_are_a_400_not_a_500(api: Api, query: str) -> None:
    status, body = await api.get(f"/v1/messages?{query}")
    assert status == 400, body
    assert body["error"]["field"] in {"limit", "cursor", "status", "batch_id"}


@pytest.mark.parametrize(
    "url", ["http://example.com:99999/", "http://[::1", "http://-/", "http://a..b/", "ftp://x/"]
)
async def test_callback_url_is_checked_like_a_webhook_url(api: Api, url: str) -> None:
    before = await api.queued()
    status, body = await api.post(
        f'{{"to": "{NUMBER}", "body": "hi", "callback_url": "{url}"}}', JSON
    )
    assert status == 400, body
    assert body["error"]["code"] == "INVALID_URL"
    assert body["error"]["field"] == "callback_url"
    async with api.http.post(
        f"{api.url}/v1/webhooks", json={"url": url}, headers=api.headers
    ) as resp:
        assert resp.status == 400
        assert (await resp.json())["error"]["code"] == "INVALID_URL"
    assert await api.queued() == before


@pytest.mark.parametrize(
    "content_type",
    [
        "text/plain",
        "application/xml",
        "multipart/form-data; boundary=x",
        "application/octet-stream",
    ],
)
async def test_only_json_and_form_bodies_are_read(api: Api, content_type: str) -> None:
    before = await api.queued()
    status, body = await api.post(f'{{"to": "{NUMBER}", "body": "hi"}}', content_type)
    assert status == 415, body
    assert body["error"]["code"] == "UNSUPPORTED_MEDIA_TYPE"
    assert await api.queued() == before


async def test_a_body_without_content_type_is_read_as_json(api: Api) -> None:
    status, body = await api.post(f'{{"to": "{NUMBER}", "body": "hi"}}', None)
    assert status == 202, body


async def test_openapi_declares_every_route_with_auth_and_errors(api: Api) -> None:
    async with api.http.get(f"{api.url}/openapi.json") as resp:
        assert resp.status == 200
        doc = await resp.json()
    assert doc["openapi"].startswith("3.1")
    assert set(doc["components"]["securitySchemes"]) == {
        "bearerAuth",
        "apiKeyHeader",
        "apiKeyQuery",
    }
    send = doc["paths"]["/v1/messages"]["post"]
    assert {"202", "400", "401", "402", "403", "413", "415", "429", "503"} <= set(send["responses"])
    assert set(send["requestBody"]["content"]) == {JSON, FORM}
    assert doc["components"]["schemas"]["SendRequest"]["examples"]
    routes = {(method.upper(), path) for path, item in doc["paths"].items() for method in item}
    assert ("GET", "/v1/messages/{id}") in routes
    assert ("DELETE", "/v1/webhooks/{id}") in routes
    assert ("GET", "/v1/webhooks/{id}/deliveries") in routes


async def test_a_request_line_over_the_limit_is_a_declared_414(api: Api) -> None:
    """Any route whose query or path the client fills can be sent a URL over the limit; its
    414 is in the document (schemathesis once found it missing from GET /v1/templates)."""
    async with api.http.get(f"{api.url}/openapi.json") as resp:
        doc = await resp.json()
    for path, item in doc["paths"].items():
        for method, operation in item.items():
            params = {p["in"] for p in operation.get("parameters", [])}
            if params & {"query", "path"}:
                assert "414" in operation["responses"], (method, path)
    status, body = await api.get(f"/v1/templates?cursor={'x' * 9000}")
    assert status == 414 and body["error"]["code"] == "URI_TOO_LONG"


async def test_an_unexpected_error_is_a_500_in_the_error_shape_without_a_traceback() -> None:
    from aiohttp import web
    from aiohttp.test_utils import TestClient, TestServer

    from api.app import error_middleware

    async def broken(request: web.Request) -> web.Response:
        raise RuntimeError("secret internals sk_live_abc")

    app = web.Application(middlewares=[error_middleware])
    app.router.add_get("/broken", broken)
    async with TestClient(TestServer(app, host="127.0.0.1", port=0)) as client:
        response = await client.get("/broken")
        assert response.status == 500
        text = await response.text()
    assert json.loads(text) == {
        "error": {"code": "INTERNAL_ERROR", "message": "the gateway failed to answer this request"}
    }
    assert "sk_live" not in text and "Traceback" not in text


def test_every_example_in_the_document_is_valid_for_its_model() -> None:
    import importlib
    import pkgutil

    from pydantic import BaseModel

    import api.schemas
    from api.app import create_app
    from api.openapi import document

    doc = document(create_app(Settings()))
    # Every schema module, so that a new one's examples are checked without touching this test.
    modules = [
        importlib.import_module(f"api.schemas.{info.name}")
        for info in pkgutil.iter_modules(api.schemas.__path__)
    ]
    models: dict[str, type[BaseModel]] = {
        name: model
        for module in modules
        for name, model in vars(module).items()
        if isinstance(model, type) and issubclass(model, BaseModel)
    }
    checked = 0
    for name, schema in doc["components"]["schemas"].items():
        for example in schema.get("examples", []):
            models[name].model_validate(example, context={"region": "US"})
            checked += 1
    assert checked >= 4


async def test_rate_limit_headers_come_with_errors_too(api: Api) -> None:
    """A client paces itself by these headers; an error answer is still a counted request."""
    for path in ("/v1/messages?limit=0", f"/v1/messages/{uuid.uuid4()}", "/v1/nothing-here"):
        async with api.http.get(f"{api.url}{path}", headers=api.headers) as resp:
            assert resp.status in (400, 404)
            assert {"X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset"} <= set(
                resp.headers
            ), path
            assert (await resp.json())["error"]["code"]
    status, _ = await api.post("text", "text/plain")
    assert status == 415
