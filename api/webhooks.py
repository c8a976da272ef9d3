"""/v1/webhooks: a customer's endpoints (the secret is shown once, at creation) and delivery log."""

from __future__ import annotations

import json
from typing import Any
from uuid import UUID

from aiohttp import web

from api.context import POOL, SETTINGS, caller
from broker.db import unavailable_as_error
from broker.errors import InputError, NotFound
from broker.webhooks import store
from broker.webhooks.destinations import refused_destination
from broker.webhooks.endpoints import parse_endpoint

DEFAULT_PAGE = 50
MAX_PAGE = 200


async def _json_body(request: web.Request) -> Any:
    raw = await request.read()
    try:
        return json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise InputError("the request body is not valid JSON", code="INVALID_JSON") from exc


def _webhook_id(request: web.Request) -> UUID:
    raw = request.match_info["id"]
    try:
        return UUID(raw)
    except ValueError as exc:
        raise NotFound(f"webhook {raw!r} not found") from exc


def _not_found(webhook_id: UUID) -> NotFound:
    return NotFound(f"webhook {webhook_id} not found")


def _positive_int(request: web.Request, name: str, default: int | None, hi: int) -> int | None:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    if len(raw) > 19 or not raw.isascii() or not raw.isdigit() or not 1 <= int(raw) <= hi:
        raise InputError(f"`{name}` must be an integer from 1 to {hi}", field=name)
    return int(raw)


async def create_webhook(request: web.Request) -> web.Response:
    who = caller(request)
    spec = parse_endpoint(await _json_body(request))
    if not request.app[SETTINGS].webhook_allow_private:
        refusal = refused_destination(spec.url)
        if refusal is not None:
            raise InputError(refusal, code="INVALID_URL", field="url")
    async with unavailable_as_error():
        webhook = await store.create(request.app[POOL], who.account_id, spec)
    return web.json_response(webhook.public(with_secret=True), status=201)


async def list_webhooks(request: web.Request) -> web.Response:
    who = caller(request)
    async with unavailable_as_error():
        found = await store.list_for(request.app[POOL], who.account_id)
    return web.json_response({"data": [w.public() for w in found]})


async def get_webhook(request: web.Request) -> web.Response:
    who = caller(request)
    webhook_id = _webhook_id(request)
    async with unavailable_as_error():
        webhook = await store.get(request.app[POOL], who.account_id, webhook_id)
    if webhook is None:
        raise _not_found(webhook_id)
    return web.json_response(webhook.public())


async def delete_webhook(request: web.Request) -> web.Response:
    who = caller(request)
    webhook_id = _webhook_id(request)
    async with unavailable_as_error():
        deleted = await store.delete(request.app[POOL], who.account_id, webhook_id)
    if not deleted:
        raise _not_found(webhook_id)
    return web.Response(status=204)


async def list_deliveries(request: web.Request) -> web.Response:
    who = caller(request)
    webhook_id = _webhook_id(request)
    limit = _positive_int(request, "limit", DEFAULT_PAGE, MAX_PAGE) or DEFAULT_PAGE
    before = _positive_int(request, "before", None, 2**63 - 1)
    pool = request.app[POOL]
    async with unavailable_as_error():
        if await store.get(pool, who.account_id, webhook_id) is None:
            raise _not_found(webhook_id)
        page = await store.attempts(pool, who.account_id, webhook_id, limit=limit, before=before)
    return web.json_response({"data": page.data, "next_before": page.next_before})


def register(app: web.Application) -> None:
    app.router.add_post("/v1/webhooks", create_webhook)
    app.router.add_get("/v1/webhooks", list_webhooks)
    app.router.add_get("/v1/webhooks/{id}", get_webhook)
    app.router.add_delete("/v1/webhooks/{id}", delete_webhook)
    app.router.add_get("/v1/webhooks/{id}/deliveries", list_deliveries)
