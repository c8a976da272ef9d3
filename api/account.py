"""GET /v1/balance."""

from __future__ import annotations

from aiohttp import web

from api.context import POOL, caller
from api.contract import Endpoints
from api.schemas.account import Balance
from broker.db import unavailable_as_error
from broker.resources import number
from broker.store import accounts

endpoints = Endpoints("account")


@endpoints.get("/v1/balance", response=Balance, summary="Credits left")
async def get_balance(request: web.Request) -> Balance:
    who = caller(request)
    async with unavailable_as_error():
        found = await accounts.balance(request.app[POOL], who.account_id)
    assert found is not None  # the key's account exists: it was joined at authentication
    balance, status = found
    return Balance(balance=number(balance) or 0, currency="credits", status=status)
