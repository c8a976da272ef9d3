"""/v1/opt-outs: numbers that refused the account's messages, added and removed by API or by
texting a keyword (STOP, START...) to one of the account's numbers (see broker.opt_outs).

A send to an opted-out number is refused by the send path (api.sending), which asks
broker.store.opt_outs.opted_out once per request.
"""

from __future__ import annotations

from aiohttp import web

from api.context import POOL, SEND_RULES, caller, shared
from api.contract import Endpoints, body_of, query_of
from api.schemas.opt_outs import OptOut, OptOutCreate, OptOutPage, OptOutQuery
from broker.db import unavailable_as_error
from broker.errors import InputError, NotFound
from broker.opt_outs import normalize_phone
from broker.store import opt_outs as store

endpoints = Endpoints("opt-outs")

_PHONE_IN_PATH = (
    "`{phone}` is the number URL-encoded (`%2B14155552671`), with or without its '+', or a "
    "local number of the account's region."
)


def _phone(request: web.Request) -> str:
    raw = request.match_info["phone"]
    found = normalize_phone(raw, caller(request).region)
    if found is None:
        raise InputError(
            "the path does not name a valid phone number",
            code="INVALID_PHONE_NUMBER",
            field="phone",
        )
    return found


@endpoints.get(
    "/v1/opt-outs",
    query=OptOutQuery,
    response=OptOutPage,
    summary="Numbers that opted out of the account's messages, newest first",
)
async def list_opt_outs(request: web.Request) -> OptOutPage:
    who = caller(request)
    query = query_of(request, OptOutQuery)
    async with unavailable_as_error():
        rows = await store.page(
            shared(request)[POOL], who.account_id, after=query.position, limit=query.read_limit
        )
    shown, next_cursor = query.cut(rows, lambda r: (r.created_at, r.phone))
    return OptOutPage(data=[OptOut.of(r) for r in shown], next_cursor=next_cursor)


@endpoints.post(
    "/v1/opt-outs",
    body=OptOutCreate,
    response=OptOut,
    status=201,
    also=frozenset({200}),
    summary="Opt a number out of the account's messages",
    description="Answers 201 with the new opt-out, or 200 with the existing one when the "
    "number had opted out already (which is kept as it was, its source included).",
)
async def add_opt_out(request: web.Request) -> OptOut | web.Response:
    who = caller(request)
    phone = body_of(request, OptOutCreate).phone
    async with unavailable_as_error():
        row, new = await store.add(shared(request)[POOL], who.account_id, phone, source="api")
    shared(request)[SEND_RULES].forget(who.account_id)
    answer = OptOut.of(row)
    if new:
        return answer
    return web.json_response(answer.model_dump(mode="json"), status=200)


@endpoints.get(
    "/v1/opt-outs/{phone}",
    response=OptOut,
    errors=frozenset({400}),
    summary="Whether a number opted out (404 when it did not)",
    description=_PHONE_IN_PATH,
)
async def get_opt_out(request: web.Request) -> OptOut:
    who = caller(request)
    phone = _phone(request)
    async with unavailable_as_error():
        row = await store.get(shared(request)[POOL], who.account_id, phone)
    if row is None:
        raise NotFound(f"{phone} has not opted out")
    return OptOut.of(row)


@endpoints.delete(
    "/v1/opt-outs/{phone}",
    status=204,
    errors=frozenset({400}),
    summary="Remove an opt-out: the number may get the account's messages again",
    description=_PHONE_IN_PATH,
)
async def delete_opt_out(request: web.Request) -> web.Response:
    who = caller(request)
    phone = _phone(request)
    async with unavailable_as_error():
        removed = await store.remove(shared(request)[POOL], who.account_id, phone)
    shared(request)[SEND_RULES].forget(who.account_id)
    if removed is None:
        raise NotFound(f"{phone} has not opted out")
    return web.Response(status=204)
