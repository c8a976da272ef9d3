"""VavaSMS's HTTP API (seed 002), served at /compat/vavasms: a customer replaces
``https://vavasms.com/api`` with ``https://GATEWAY/compat/vavasms`` and changes nothing else.

Every call is a form POST carrying ``username`` and ``password`` (a login the operator made with
``smsbroker account login``). The routes translate into the native services: the balance of
the account (its ``currency``), a send through api.messages.send_now (``lot_id`` is the native
batch id, or the message id when there is one recipient, which the status call accepts as a
lot too), the status of stored messages, and OTP through api.otp. Numbers are written the
provider's way, international without a plus (22509000001); a number starting with 0 is read
with the account's region. The inbound SMS notification is a native webhook registered with
``"format": "vavasms"`` (broker.webhooks.formats). Answers: api.dialects.vavasms_answers.
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Awaitable, Callable
from typing import Any
from uuid import UUID

import asyncpg
from aiohttp import web

from api.context import POOL, SETTINGS, Caller, shared
from api.dialects.base import by_login, dialect_app, params, validated
from api.dialects.vavasms_answers import (
    EXECUTION_ERROR,
    INVALID_OTP,
    STATUSES,
    BalanceData,
    OtpSentData,
    OtpVerifiedData,
    Route,
    SentData,
    StatusLine,
    VavaProblem,
    failure,
    ok,
    render_error,
)
from api.messages import send_now
from api.otp import send_code, verify_code
from api.schemas.messages import SendRequest
from api.schemas.otp import OtpSend, OtpVerify
from api.sending import checked_sender
from broker.db import unavailable_as_error
from broker.errors import BrokerError, NotFound
from broker.phone import check_sender
from broker.resources import number
from broker.status import MessageStatus
from broker.store import accounts as accounts_store
from broker.store import messages as messages_store

routes = web.RouteTableDef()

#: The document's OTP defaults (the native API's differ).
OTP_LENGTH = 4
OTP_EXPIRY_MINUTES = 60
OTP_MESSAGE = "Votre code OTP est : ##OTP##"

Handler = Callable[[web.Request], Awaitable[web.Response]]


def answering(route: Route) -> Callable[[Handler], Handler]:
    """Failures inside the handler in the shape the document shows for this route."""

    def wrap(handler: Handler) -> Handler:
        @functools.wraps(handler)
        async def run(request: web.Request) -> web.Response:
            try:
                return await handler(request)
            except BrokerError as exc:
                return failure(exc, route)

        return run

    return wrap


def _text(values: dict[str, Any], name: str) -> str | None:
    """A parameter as text (a JSON number too); None when absent or blank."""
    value = values.get(name)
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        value = str(value)
    if not isinstance(value, str) or not value.strip():
        return None
    return value


def international(phone: str | None) -> str | None:
    """``22509000001,22377000010`` as the native API reads it: a plus before each number
    written in digits without a leading 0 (the provider's international form)."""
    if phone is None:
        return None
    items = [item.strip() for item in phone.split(",")]
    return ",".join(
        "+" + item if item.isascii() and item.isdigit() and not item.startswith("0") else item
        for item in items
    )


async def _login(request: web.Request) -> tuple[Caller, dict[str, Any]]:
    values = await params(request)
    who = await by_login(request, _text(values, "username"), _text(values, "password"))
    return who, values


@routes.post("/v1/check/balance")
@answering(Route.BALANCE)
async def check_balance(request: web.Request) -> web.Response:
    who, _ = await _login(request)
    async with unavailable_as_error():
        found = await accounts_store.balance(shared(request)[POOL], who.account_id)
    if found is None:
        raise NotFound("the account no longer exists")
    amount, currency, _ = found
    return ok(BalanceData(amount=number(amount) or 0, currency=currency))


@routes.post("/v1/text/single")
@answering(Route.SEND)
async def text_single(request: web.Request) -> web.Response:
    """One text to one number or to comma-separated numbers."""
    _, values = await _login(request)
    send = validated(
        request,
        SendRequest,
        {
            "to": international(_text(values, "phone")),
            "body": values.get("message"),
            "from": _text(values, "sender_id"),
        },
    )
    answer = await send_now(request, send)
    ids = [str(m.id) for m in answer.messages]
    lot = str(answer.batch_id) if answer.batch_id is not None else ids[0]
    return ok(SentData(lot_id=lot, message_id=ids))


def _lot_of(row: asyncpg.Record) -> str:
    """A message's lot: its batch, or itself when it was sent alone."""
    return str(row["batch_id"] or row["id"])


def _as_id(raw: str) -> UUID:
    try:
        return uuid.UUID(raw.strip())
    except ValueError:
        raise VavaProblem(EXECUTION_ERROR) from None


async def _sends(request: web.Request, who: Caller, values: dict[str, Any]) -> list[asyncpg.Record]:
    """The messages a status call names: one by ``message_id`` (in ``lot_id`` if given too),
    or every message of ``lot_id``; VavaProblem 709 when there are none."""
    pool = shared(request)[POOL]
    message_id, lot_id = _text(values, "message_id"), _text(values, "lot_id")
    if message_id is None and lot_id is None:
        raise VavaProblem(EXECUTION_ERROR)
    async with unavailable_as_error():
        if message_id is not None:
            view = await messages_store.find(pool, who.account_id, _as_id(message_id))
            found = [] if view is None else [view.message]
            if lot_id is not None:
                found = [r for r in found if _lot_of(r) == str(_as_id(lot_id))]
        else:
            assert lot_id is not None
            lot = _as_id(lot_id)
            limit = shared(request)[SETTINGS].max_recipients
            found = await messages_store.page(
                pool, who.account_id, {"batch_id": lot}, after=None, limit=limit
            )
            if not found:
                view = await messages_store.find(pool, who.account_id, lot)
                alone = view is not None and view.message["batch_id"] is None
                found = [view.message] if view is not None and alone else []
    if not found:
        raise VavaProblem(EXECUTION_ERROR)
    return found[::-1]


@routes.post("/v1/text/status")
@answering(Route.STATUS)
async def text_status(request: web.Request) -> web.Response:
    """The state of a message, or of every message of a lot."""
    who, values = await _login(request)
    lines = []
    for row in await _sends(request, who, values):
        state, text = STATUSES[MessageStatus(row["status"])]
        lines.append(
            StatusLine(
                lot_id=_lot_of(row), message_id=str(row["id"]), status=state, description=text
            )
        )
    return ok(lines)


@routes.post("/v1/otp/send")
@answering(Route.OTP_SEND)
async def otp_send(request: web.Request) -> web.Response:
    _, values = await _login(request)
    send = validated(
        request,
        OtpSend,
        {
            "to": international(_text(values, "phone")),
            "from": _text(values, "sender_id"),
            "length": _text(values, "otp_length") or OTP_LENGTH,
            "expiry_minutes": _text(values, "otp_expiry") or OTP_EXPIRY_MINUTES,
            "message": _text(values, "message") or OTP_MESSAGE,
        },
    )
    sent = await send_code(request, send)
    return ok(OtpSentData(message_id=str(sent.id)))


@routes.post("/v1/otp/verify")
@answering(Route.OTP_VERIFY)
async def otp_verify(request: web.Request) -> web.Response:
    """The number's newest code; a ``sender_id``, which the document's examples pass, must be
    one the account may send from (902 otherwise)."""
    _, values = await _login(request)
    sender = check_sender(_text(values, "sender_id"), field="sender_id")
    if sender is not None:
        await checked_sender(request, "sms", sender)
    check = validated(
        request,
        OtpVerify,
        {"to": international(_text(values, "phone")), "code": _text(values, "otp")},
    )
    verdict = await verify_code(request, check)
    if not verdict.valid or verdict.id is None:
        raise VavaProblem(INVALID_OTP)
    return ok(OtpVerifiedData(message_id=str(verdict.id)))


def create_app() -> web.Application:
    return dialect_app(routes, render_error)
