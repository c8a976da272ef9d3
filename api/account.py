"""The account as its keys see it: GET /v1/balance, GET/PATCH /v1/account, and the rotation of
the secret that signs per-message callback_url deliveries."""

from __future__ import annotations

from aiohttp import web

from api.context import POOL, SEND_RULES, caller, shared
from api.contract import Endpoints, body_of
from api.schemas.account import Account, AccountUpdate, Balance, WebhookSecretRotated
from broker import accounts as accounts_domain
from broker.db import unavailable_as_error
from broker.resources import number
from broker.store import accounts

endpoints = Endpoints("account")


@endpoints.get("/v1/balance", response=Balance, summary="Credits left")
async def get_balance(request: web.Request) -> Balance:
    who = caller(request)
    async with unavailable_as_error():
        found = await accounts.balance(shared(request)[POOL], who.account_id)
    assert found is not None  # the key's account exists: it was joined at authentication
    balance, currency, status = found
    return Balance(balance=number(balance) or 0, currency=currency, status=status)


@endpoints.get(
    "/v1/account",
    response=Account,
    summary="The account, its settings and its callback signing secret",
    description="`webhook_secret` signs every per-message `callback_url` delivery (Standard"
    " Webhooks: `webhook-id`, `webhook-timestamp`, `webhook-signature`). Endpoints added with"
    " POST /v1/webhooks have their own secrets.",
)
async def get_account(request: web.Request) -> Account:
    who = caller(request)
    async with unavailable_as_error():
        found = await accounts_domain.get_account(shared(request)[POOL], who.account_id)
    return Account.of(found)


@endpoints.patch(
    "/v1/account",
    body=AccountUpdate,
    response=Account,
    summary="Change the default sender or the HELP reply",
    description="Only the fields given change; null clears one. An alphanumeric"
    " `default_sender` must be a sender ID approved for this account (else 400"
    " `INVALID_SENDER_ID`); a number of 3–15 digits needs no approval. Other fields are"
    " ignored.",
)
async def update_account(request: web.Request) -> Account:
    who = caller(request)
    changes = body_of(request, AccountUpdate).changes()
    async with unavailable_as_error(), shared(request)[POOL].acquire() as conn:
        found = await accounts_domain.update_account(conn, who.account_id, **changes)
    shared(request)[SEND_RULES].forget(who.account_id)
    return Account.of(found)


@endpoints.post(
    "/v1/account/webhook-secret",
    response=WebhookSecretRotated,
    summary="Rotate the callback signing secret",
    description="A new secret signs per-message `callback_url` deliveries from now on (within"
    " a few seconds). The replaced one keeps verifying for 24 hours: until"
    " `previous_webhook_secret_expires_at` each delivery's `webhook-signature` carries both"
    " signatures (space-separated `v1,<signature>` entries), then only the new one. Rotating"
    " again within those 24 hours keeps only the newest previous secret (the one just"
    " replaced); the older one stops verifying at once.",
)
async def rotate_webhook_secret(request: web.Request) -> WebhookSecretRotated:
    who = caller(request)
    async with unavailable_as_error():
        found = await accounts_domain.rotate_callback_secret(shared(request)[POOL], who.account_id)
    return WebhookSecretRotated.of(found)
