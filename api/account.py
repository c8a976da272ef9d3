"""GET /v1/balance."""

from __future__ import annotations

from aiohttp import web

from api.context import POOL, caller
from broker.db import unavailable_as_error
from broker.resources import number


async def get_balance(request: web.Request) -> web.Response:
    who = caller(request)
    async with unavailable_as_error():
        row = await request.app[POOL].fetchrow(
            "SELECT balance, status FROM accounts WHERE id = $1", who.account_id
        )
    assert row is not None  # the key's account exists: it was joined at authentication
    return web.json_response(
        {"balance": number(row["balance"]), "currency": "credits", "status": row["status"]}
    )


def register(app: web.Application) -> None:
    app.router.add_get("/v1/balance", get_balance)
