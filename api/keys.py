"""/v1/keys: the account's API keys, managed by its own keys (the secret is shown only when it
is made: at creation and on regenerate). A key never makes a key broader than itself."""

from __future__ import annotations

from uuid import UUID

from aiohttp import web

from api.context import POOL, Caller, caller, shared
from api.contract import Endpoints, body_of, query_of
from api.schemas.keys import (
    ApiKey,
    ApiKeyCreated,
    ApiKeyList,
    KeyCreate,
    KeyQuery,
)
from api.schemas.pages import encode_cursor
from broker import api_keys
from broker.accounts import parse_uuid
from broker.db import unavailable_as_error

endpoints = Endpoints("keys")

_NARROWING = (
    "A key can only make keys no broader than itself: channels within its own, a rate limit"
    " no higher, an expiry no later (403 `KEY_SCOPE_EXCEEDED`, naming the field)."
)


def _key_id(request: web.Request) -> UUID:
    return parse_uuid(request.match_info["id"], what="API key")


def _scope(who: Caller) -> api_keys.Scope:
    return api_keys.Scope(who.channels, who.rate_limit, who.expires_at)


def _resource(key: api_keys.KeyView) -> ApiKey:
    return ApiKey.model_validate(key, from_attributes=True)


def _with_secret(made: api_keys.KeyWithSecret) -> ApiKeyCreated:
    return ApiKeyCreated.model_validate({**_resource(made.key).model_dump(), "secret": made.secret})


@endpoints.post(
    "/v1/keys",
    body=KeyCreate,
    response=ApiKeyCreated,
    status=201,
    summary="Create an API key; its secret is shown only in this answer",
    description=_NARROWING,
)
async def create_key(request: web.Request) -> ApiKeyCreated:
    who = caller(request)
    spec = body_of(request, KeyCreate)
    async with unavailable_as_error():
        made = await api_keys.create(
            shared(request)[POOL],
            who.account_id,
            _scope(who),
            name=spec.name,
            channels=spec.channels,
            rate_limit=spec.rate_limit_per_minute,
            expires_in_days=spec.expires_in_days,
        )
    return _with_secret(made)


@endpoints.get(
    "/v1/keys",
    query=KeyQuery,
    response=ApiKeyList,
    summary="The account's API keys, newest first (cursor pagination; never the secret)",
)
async def list_keys(request: web.Request) -> ApiKeyList:
    who = caller(request)
    query = query_of(request, KeyQuery)
    async with unavailable_as_error():
        found = await api_keys.page(
            shared(request)[POOL], who.account_id, after=query.position, limit=query.limit
        )
    cursor = encode_cursor(*found.next_position) if found.next_position is not None else None
    return ApiKeyList(data=[_resource(k) for k in found.data], next_cursor=cursor)


@endpoints.get("/v1/keys/{id}", response=ApiKey, summary="One API key (never the secret)")
async def get_key(request: web.Request) -> ApiKey:
    who = caller(request)
    key_id = _key_id(request)
    async with unavailable_as_error():
        key = await api_keys.get(shared(request)[POOL], who.account_id, key_id)
    return _resource(key)


@endpoints.delete(
    "/v1/keys/{id}",
    response=ApiKey,
    summary="Revoke an API key",
    description="The key is refused (403 `API_KEY_DISABLED`) within a second on every API"
    " process. Revoking a revoked key changes nothing.",
)
async def revoke_key(request: web.Request) -> ApiKey:
    who = caller(request)
    key_id = _key_id(request)
    async with unavailable_as_error():
        key = await api_keys.revoke(shared(request)[POOL], who.account_id, key_id)
    return _resource(key)


@endpoints.post(
    "/v1/keys/{id}/regenerate",
    response=ApiKeyCreated,
    errors=frozenset({409}),
    summary="A new secret for the same key; the old secret is refused from now on",
    description="The key keeps its id and settings, narrowed to the calling key's where they"
    " were broader. A revoked or expired key cannot be regenerated (409 `KEY_NOT_ACTIVE`).",
)
async def regenerate_key(request: web.Request) -> ApiKeyCreated:
    who = caller(request)
    key_id = _key_id(request)
    async with unavailable_as_error(), shared(request)[POOL].acquire() as conn:
        made = await api_keys.regenerate(conn, who.account_id, _scope(who), key_id)
    return _with_secret(made)
