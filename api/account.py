"""GET /v1/balance."""

from __future__ import annotations

from aiohttp import web

from api.context import POOL, caller
from api.contract import Endpoints
from api.schemas.account import Balance
from broker.db import unavailable_as_error
from broker.resources import number

endpoints = Endpoints("account")


@endpoints.get("/v1/balance", response=Balance, summary="Credits left")
async def get_balance(request: web.Request) -> Balance:
    who = caller(request)
    async with unavailable_as_error():
        row = await request.app[POOL].fetchrow(
            "SELECT balance, status FROM accounts WHERE id = $1", who.account_id
        )
    assert row is not None  # the key's account exists: it was joined at authentication
    return Balance(balance=number(row["balance"]) or 0, currency="credits", status=row["status"])
