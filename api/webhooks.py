"""/v1/webhooks: a customer's endpoints (the secret is shown once, at creation) and delivery log."""

from __future__ import annotations

from uuid import UUID

from aiohttp import web

from api.context import POOL, caller, shared
from api.contract import Endpoints, body_of, query_of
from api.schemas.webhooks import (
    DeliveryPage,
    DeliveryQuery,
    Webhook,
    WebhookCreate,
    WebhookCreated,
    WebhookList,
)
from broker.accounts import parse_uuid
from broker.db import unavailable_as_error
from broker.errors import NotFound
from broker.webhooks import store

endpoints = Endpoints("webhooks")


def _webhook_id(request: web.Request) -> UUID:
    return parse_uuid(request.match_info["id"], what="webhook")


def _not_found(webhook_id: UUID) -> NotFound:
    return NotFound(f"webhook {webhook_id} not found")


@endpoints.post(
    "/v1/webhooks",
    body=WebhookCreate,
    response=WebhookCreated,
    status=201,
    errors=frozenset({409}),
    summary="Add an endpoint; its signing secret is shown once",
)
async def create_webhook(request: web.Request) -> WebhookCreated:
    who = caller(request)
    spec = body_of(request, WebhookCreate).spec
    async with unavailable_as_error():
        webhook = await store.create(shared(request)[POOL], who.account_id, spec)
    return WebhookCreated.model_validate(webhook, from_attributes=True)


@endpoints.get("/v1/webhooks", response=WebhookList, summary="The account's endpoints")
async def list_webhooks(request: web.Request) -> WebhookList:
    who = caller(request)
    async with unavailable_as_error():
        found = await store.list_for(shared(request)[POOL], who.account_id)
    return WebhookList(data=[Webhook.model_validate(w, from_attributes=True) for w in found])


@endpoints.get("/v1/webhooks/{id}", response=Webhook, summary="One endpoint (no secret)")
async def get_webhook(request: web.Request) -> Webhook:
    who = caller(request)
    webhook_id = _webhook_id(request)
    async with unavailable_as_error():
        webhook = await store.get(shared(request)[POOL], who.account_id, webhook_id)
    if webhook is None:
        raise _not_found(webhook_id)
    return Webhook.model_validate(webhook, from_attributes=True)


@endpoints.delete("/v1/webhooks/{id}", status=204, summary="Delete an endpoint")
async def delete_webhook(request: web.Request) -> web.Response:
    who = caller(request)
    webhook_id = _webhook_id(request)
    async with unavailable_as_error():
        deleted = await store.delete(shared(request)[POOL], who.account_id, webhook_id)
    if not deleted:
        raise _not_found(webhook_id)
    return web.Response(status=204)


@endpoints.get(
    "/v1/webhooks/{id}/deliveries",
    query=DeliveryQuery,
    response=DeliveryPage,
    summary="The endpoint's delivery log, newest first",
)
async def list_deliveries(request: web.Request) -> DeliveryPage:
    who = caller(request)
    webhook_id = _webhook_id(request)
    query = query_of(request, DeliveryQuery)
    pool = shared(request)[POOL]
    async with unavailable_as_error():
        if await store.get(pool, who.account_id, webhook_id) is None:
            raise _not_found(webhook_id)
        page = await store.attempts(
            pool, who.account_id, webhook_id, limit=query.limit, before=query.before
        )
    return DeliveryPage.model_validate({"data": page.data, "next_before": page.next_before})
