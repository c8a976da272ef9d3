"""VanuConnect's API (/compat/vanuconnect): a VanuConnect customer's code, unchanged but for the
base URL, sends and reads its balance through the native services.

What maps to what:

- ``Authorization: Bearer KEY``: the native key check (api.dialects.base.by_key); no header, or
  one that is not ``Bearer``, is 401 UNAUTHORIZED; an unknown key 401 INVALID_API_KEY; a
  revoked or expired key 403 API_KEY_DISABLED; over the key's rate 429 RATE_LIMIT_EXCEEDED
  with ``retry_after`` (and ``Retry-After``).
- ``POST /functions/v1/send-sms-api`` (``phone_number``, ``message``, ``channel``): a native
  SendRequest to that one number (``message`` at most 918 characters on the sms channel, the
  native check and code with VanuConnect's limit), sent with api.messages.send_now. Answers
  ``{success, message_id, credits_used, credits_remaining}``: credits_used is the message's
  estimated cost (its segments × the route's price, what the charge worker takes),
  credits_remaining the balance read at authentication minus that. ``channel`` goes through as
  is: the native send answers 403 CHANNEL_NOT_ALLOWED for a key without the channel, 400
  CHANNEL_UNAVAILABLE while the gateway has no connector for it. A number no route carries is
  accepted natively and ends ``failed`` NO_ROUTE uncharged; VanuConnect's customer learns it at
  once: 500 DELIVERY_FAILED with the message_id (the only DELIVERY_FAILED; a carrier's later
  refusal shows in the message's status, as natively).
- ``GET /functions/v1/check-balance-api``: ``{credits, subscription_plan, status}`` from the
  account (balance now, plan, status).
- Every failure: ``{"success": false, "error": CODE, "message": ..., "field"?}`` with the native
  status and code (402 INSUFFICIENT_CREDITS, 403 OPTED_OUT, 400 INVALID_PHONE_NUMBER...),
  plus ``retry_after`` on a 429 and ``message_id`` on DELIVERY_FAILED.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any, Literal
from uuid import UUID

from aiohttp import web
from pydantic import BaseModel, ValidationError

from api.context import POOL, ROUTES, SETTINGS, caller, shared, validation_context
from api.contract import input_error
from api.dialects.base import bearer, by_key, dialect_app, params
from api.errors import ApiError, error_response
from api.messages import send_now
from api.schemas.common import Number
from api.schemas.messages import SendRequest
from broker import accounts
from broker.db import unavailable_as_error
from broker.errors import BrokerError
from broker.resources import number

#: VanuConnect's limit on ``message`` for SMS (six concatenated GSM parts).
MAX_SMS_CHARS = 918
#: Native field names as VanuConnect's customers know them.
_FIELDS = {"to": "phone_number", "body": "message"}

routes = web.RouteTableDef()


class Sent(BaseModel):
    success: Literal[True] = True
    message_id: UUID
    credits_used: Number
    credits_remaining: Number


class Balance(BaseModel):
    credits: Number
    subscription_plan: str
    status: str


class Failure(BaseModel):
    success: Literal[False] = False
    error: str
    message: str
    field: str | None = None
    retry_after: int | None = None
    message_id: UUID | None = None


def answer(model: BaseModel, status: int = 200) -> web.Response:
    return web.json_response(model.model_dump(mode="json", exclude_none=True), status=status)


def render_error(exc: BrokerError) -> web.Response:
    """The native answer's status and headers (Retry-After...), in VanuConnect's body."""
    native = error_response(exc)
    extra = (exc.extra or {}) if isinstance(exc, ApiError) else {}
    field = getattr(exc, "field", None)
    failure = Failure(
        error=exc.code,
        message=exc.message,
        field=_FIELDS.get(field, field) if isinstance(field, str) else None,
        retry_after=extra.get("retry_after"),
        message_id=extra.get("message_id"),
    )
    response = answer(failure, native.status)
    response.headers.update({k: v for k, v in native.headers.items() if k != "Content-Type"})
    return response


def send_request(request: web.Request, values: dict[str, Any]) -> SendRequest:
    """The native model of a send to ``phone_number``, with VanuConnect's length limit on SMS."""
    channel = values.get("channel") or "sms"
    context = validation_context(request)
    if channel == "sms":
        context["max_body_chars"] = min(MAX_SMS_CHARS, shared(request)[SETTINGS].max_body_chars)
    to = values.get("phone_number")
    native = {
        # One number: a comma in it is not a list here.
        "to": [to] if isinstance(to, str) and to.strip() else to,
        "message": values.get("message"),
        "channel": channel,
    }
    try:
        return SendRequest.model_validate(native, context=context)
    except ValidationError as exc:
        raise input_error(exc, SendRequest) from None


@routes.post("/functions/v1/send-sms-api")
async def send_sms(request: web.Request) -> web.Response:
    who = await by_key(request, bearer(request))
    send = send_request(request, await params(request))
    accepted = await send_now(request, send)
    message = accepted.messages[0]
    if shared(request)[ROUTES].match(message.to) is None:
        raise ApiError(
            500,
            "DELIVERY_FAILED",
            f"no route carries {message.to}: the message failed and nothing was charged",
            extra={"message_id": str(message.id)},
        )
    used = Decimal(str(accepted.estimated_cost or 0))
    remaining = Decimal(str(who.balance_at_auth)) - used
    return answer(
        Sent(
            message_id=message.id,
            credits_used=number(used) or 0,
            credits_remaining=number(remaining) or 0,
        )
    )


@routes.get("/functions/v1/check-balance-api")
async def check_balance(request: web.Request) -> web.Response:
    await by_key(request, bearer(request))
    async with unavailable_as_error():
        account = await accounts.get_account(shared(request)[POOL], caller(request).account_id)
    return answer(
        Balance(
            credits=number(account.balance) or 0,
            subscription_plan=account.plan,
            status=account.status,
        )
    )


def create_app() -> web.Application:
    return dialect_app(routes, render_error)
