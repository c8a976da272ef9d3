"""/v1/sender-ids: the names an account sends from, pending until the operator decides."""

from __future__ import annotations

from uuid import UUID

from aiohttp import web

from api.context import POOL, SEND_RULES, caller, shared
from api.contract import Endpoints, body_of, query_of
from api.schemas.sender_ids import (
    SenderId,
    SenderIdCreate,
    SenderIdPage,
    SenderIdQuery,
)
from broker import sender_ids
from broker.accounts import parse_uuid
from broker.db import unavailable_as_error

endpoints = Endpoints("sender-ids")


def _sender_id_id(request: web.Request) -> UUID:
    return parse_uuid(request.match_info["id"], what="sender ID")


def _resource(row: sender_ids.SenderIdRow) -> SenderId:
    return SenderId.model_validate(row, from_attributes=True)


@endpoints.post(
    "/v1/sender-ids",
    body=SenderIdCreate,
    response=SenderId,
    status=201,
    errors=frozenset({409}),
    summary="Register a sender ID; it is pending until the operator approves it",
    description=(
        "A send may use an alphanumeric `from` only once it is approved for the account."
        " Registering a sender ID the account has pending or approved answers 409"
        " `SENDER_ID_EXISTS`; registering a rejected one again renews the request: the same"
        " resource goes back to `pending` with the new `purpose` (its `reason` and"
        " `decided_at` cleared)."
    ),
)
async def register_sender_id(request: web.Request) -> SenderId:
    who = caller(request)
    body = body_of(request, SenderIdCreate)
    async with unavailable_as_error():
        row = await sender_ids.register(
            shared(request)[POOL], who.account_id, body.sender_id, body.purpose
        )
    return _resource(row)


@endpoints.get(
    "/v1/sender-ids",
    query=SenderIdQuery,
    response=SenderIdPage,
    summary="The account's sender IDs, newest first (cursor pagination)",
)
async def list_sender_ids(request: web.Request) -> SenderIdPage:
    who = caller(request)
    query = query_of(request, SenderIdQuery)
    async with unavailable_as_error():
        rows = await sender_ids.page(
            shared(request)[POOL],
            who.account_id,
            status=query.status,
            after=query.position,
            limit=query.read_limit,
        )
    shown, next_cursor = query.cut(rows, lambda r: (r.created_at, r.id))
    return SenderIdPage(data=[_resource(r) for r in shown], next_cursor=next_cursor)


@endpoints.get("/v1/sender-ids/{id}", response=SenderId, summary="One sender ID and its status")
async def get_sender_id(request: web.Request) -> SenderId:
    who = caller(request)
    sender_id_id = _sender_id_id(request)
    async with unavailable_as_error():
        row = await sender_ids.get(shared(request)[POOL], who.account_id, sender_id_id)
    return _resource(row)


@endpoints.delete(
    "/v1/sender-ids/{id}",
    status=204,
    summary="Withdraw a sender ID",
    description="Whatever its status: once withdrawn it can no longer be a send's `from`.",
)
async def withdraw_sender_id(request: web.Request) -> web.Response:
    who = caller(request)
    sender_id_id = _sender_id_id(request)
    async with unavailable_as_error():
        await sender_ids.withdraw(shared(request)[POOL], who.account_id, sender_id_id)
    shared(request)[SEND_RULES].forget(who.account_id)
    return web.Response(status=204)
