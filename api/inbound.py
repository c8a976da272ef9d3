"""/v1/inbound: the account's inbound messages (MO), newest first, and one of them.

An inbound message belongs to the account owning the number (and keyword) it was sent to;
one that no account owns is nobody's and never shown.
"""

from __future__ import annotations

from aiohttp import web

from api.context import POOL, caller, shared
from api.contract import Endpoints, query_of
from api.schemas.inbound import InboundMessage, InboundPage, InboundQuery
from broker.accounts import parse_uuid
from broker.db import unavailable_as_error
from broker.errors import NotFound
from broker.store import inbound as store

endpoints = Endpoints("inbound")


@endpoints.get(
    "/v1/inbound",
    query=InboundQuery,
    response=InboundPage,
    summary="Inbound messages of the account, newest first (cursor pagination)",
    description="Optional filters: `from`, `to` (with or without '+'), `since` (RFC 3339).",
)
async def list_inbound(request: web.Request) -> InboundPage:
    who = caller(request)
    query = query_of(request, InboundQuery)
    async with unavailable_as_error():
        rows = await store.page(
            shared(request)[POOL],
            who.account_id,
            after=query.position,
            from_number=query.from_number,
            to_number=query.to_number,
            since=query.since,
            limit=query.read_limit,
        )
    shown, next_cursor = query.cut(rows, lambda r: (r.received_at, r.id))
    return InboundPage(data=[InboundMessage.of(r) for r in shown], next_cursor=next_cursor)


@endpoints.get("/v1/inbound/{id}", response=InboundMessage, summary="One inbound message")
async def get_inbound(request: web.Request) -> InboundMessage:
    who = caller(request)
    message_id = parse_uuid(request.match_info["id"], what="inbound message")
    async with unavailable_as_error():
        row = await store.get_message(shared(request)[POOL], who.account_id, message_id)
    if row is None:
        raise NotFound(f"inbound message {message_id} not found")
    return InboundMessage.of(row)
