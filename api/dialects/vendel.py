"""Vendel's API (seed 003) at /compat/vendel: send to E.164 numbers and groups, with a body or
a template, authenticated by ``X-API-Key`` or a JWT the account mints with its key.

Every send is a native SendRequest sent through api.messages.prepare_send: recipients, groups,
templates, credits and statuses are the native ones. What is Vendel's own here is its shapes,
and its ``device_id``: a sender chosen by name. Our senders are connectors, and a number goes
out through the connector its route names, so a ``device_id`` is accepted when it names that
connector for every recipient (any other known one is refused, an unknown one is "Device not
found."); no second router picks among connectors. A recipient no route carries is Vendel's
503 ``no_devices``, checked before anything is made durable.
"""

from __future__ import annotations

import re
from typing import Any
from uuid import UUID

from aiohttp import web
from pydantic import BaseModel

from api.context import POOL, ROUTES, caller, shared
from api.dialects import vendel_auth
from api.dialects.base import bearer, by_key, dialect_app, params, validated
from api.dialects.vendel_shapes import (
    CodedError,
    MessageRecord,
    PlainError,
    SendAnswer,
    TokenAnswer,
    vendel_status,
)
from api.errors import ApiError, error_response
from api.messages import prepare_send
from api.schemas.messages import SendAccepted, SendRequest
from broker import jwt_tokens
from broker.db import unavailable_as_error
from broker.errors import BrokerError, InsufficientCredits, NotFound
from broker.resources import iso
from broker.store import connectors as connectors_store
from broker.store import messages as messages_store
from broker.store import templates as templates_store
from broker.templates import MissingVariable

routes = web.RouteTableDef()

#: Vendel's limit on a body, whatever MAX_BODY_CHARS says.
MAX_BODY = 1600
_E164 = re.compile(r"^\+[1-9]\d{1,14}$")

# Our codes for Vendel's own refusals (rendered below).
NO_DEVICES = "NO_DEVICES"
TEMPLATE_NOT_FOUND = "TEMPLATE_NOT_FOUND"
TEMPLATE_NOT_OWNED = "TEMPLATE_NOT_OWNED"
DEVICE_NOT_FOUND = "DEVICE_NOT_FOUND"
DEVICE_NOT_ROUTED = "DEVICE_NOT_ROUTED"
#: Refusals Vendel answers with a bare {"message": ...}.
_PLAIN = frozenset({TEMPLATE_NOT_FOUND, TEMPLATE_NOT_OWNED, DEVICE_NOT_FOUND, DEVICE_NOT_ROUTED})
#: Every way a key or token can be refused is Vendel's one 401.
_AUTH = frozenset({"UNAUTHORIZED", "INVALID_API_KEY", "API_KEY_DISABLED", "ACCOUNT_SUSPENDED"})
#: Vendel's documented errors: our code → (status, its code, its message).
_DOCUMENTED: dict[str, tuple[int, str, str]] = {
    "INVALID_PHONE_NUMBER": (400, "invalid_phone_number", "Phone number must be in E.164 format"),
    "UNAUTHORIZED": (401, "unauthorized", "Authentication required"),
    "INSUFFICIENT_CREDITS": (402, "quota_exceeded", "Monthly message quota exceeded"),
    NO_DEVICES: (503, "no_devices", "No devices available to send messages"),
}


def _json(
    model: BaseModel, status: int = 200, headers: dict[str, str] | None = None
) -> web.Response:
    return web.json_response(
        model.model_dump(mode="json", exclude_none=True), status=status, headers=headers
    )


def render_error(exc: BrokerError) -> web.Response:
    """Vendel's error for every failure: its documented codes, its bare template sentences,
    and ``{"error": code, "message": ...}`` with the native status for anything else."""
    if isinstance(exc, MissingVariable):
        return _json(PlainError(message=f"Missing variable: {exc.name}."), 400)
    native = error_response(exc)  # the native status and headers (Retry-After...)
    headers = {
        k: v
        for k, v in native.headers.items()
        if k.lower() not in ("content-type", "content-length")
    }
    code = "INSUFFICIENT_CREDITS" if isinstance(exc, InsufficientCredits) else exc.code
    if code in _AUTH:
        code = "UNAUTHORIZED"
    if code in _DOCUMENTED:
        status, name, message = _DOCUMENTED[code]
        return _json(CodedError(error=name, message=message), status, headers)
    if code in _PLAIN:
        return _json(PlainError(message=exc.message), 400, headers)
    return _json(CodedError(error=code.lower(), message=exc.message), native.status, headers)


def _recipients(values: dict[str, Any]) -> list[str]:
    """``recipients`` in E.164 only, as Vendel takes them (the native check follows)."""
    raw = values.get("recipients")
    if raw is None or raw == "":
        return []
    items = raw if isinstance(raw, list) else [raw]
    for item in items:
        if not isinstance(item, str) or not _E164.match(item):
            raise ApiError(400, "INVALID_PHONE_NUMBER", "Phone number must be in E.164 format")
    return items


def _group_ids(values: dict[str, Any]) -> tuple[list[str], str | None]:
    """Vendel's group ids as ours, and the first that cannot be ours (not a UUID): that one is
    as unknown as another account's group (404), refused once the recipients passed."""
    raw = values.get("group_ids") or []
    items = raw if isinstance(raw, list) else [raw]
    ids: list[str] = []
    for item in items:
        try:
            ids.append(str(UUID(str(item))))
        except ValueError:
            return ids, str(item)
    return ids, None


async def _device(request: web.Request, values: dict[str, Any]) -> str | None:
    """``device_id``: a connector's name, or None (the route's connector)."""
    device = values.get("device_id")
    if device is None or device == "":
        return None
    async with unavailable_as_error():
        known = isinstance(device, str) and await connectors_store.exists(
            shared(request)[POOL], device
        )
    if not known:
        raise ApiError(400, DEVICE_NOT_FOUND, "Device not found.")
    return str(device)


async def _template(request: web.Request, values: dict[str, Any]) -> str:
    """``template_id`` of a template of the caller's account; another account's is refused
    as Vendel does ("Template does not belong to user."): an id is a random UUID, so saying it
    exists tells nothing one could have guessed."""
    raw = values.get("template_id")
    try:
        template_id = UUID(str(raw)) if raw else None
    except ValueError:
        template_id = None
    if template_id is not None:
        pool = shared(request)[POOL]
        async with unavailable_as_error():
            found = await templates_store.get(pool, caller(request).account_id, template_id)
            owner = None if found is not None else await templates_store.owner(pool, template_id)
        if found is not None:
            return str(template_id)
        if owner is not None:
            raise ApiError(400, TEMPLATE_NOT_OWNED, "Template does not belong to user.")
    raise ApiError(400, TEMPLATE_NOT_FOUND, "Template not found.")


def _check_routes(request: web.Request, answer: SendAccepted, device: str | None) -> None:
    """Every recipient has a connector (else 503 no_devices), and it is ``device`` if named.
    The route table was refreshed by the send's own checks a moment ago."""
    table = shared(request)[ROUTES]
    for message in answer.messages:
        route = table.match(message.to)
        if route is None:
            raise ApiError(503, NO_DEVICES, f"no route carries {message.to}")
        if device is not None and route.connector != device:
            raise ApiError(400, DEVICE_NOT_ROUTED, f"Device {device} cannot send to {message.to}.")


async def _send(
    request: web.Request, native: dict[str, Any], values: dict[str, Any]
) -> web.Response:
    native["to"] = _recipients(values)
    native["group_ids"], unknown_group = _group_ids(values)
    send = validated(request, SendRequest, native)
    if unknown_group is not None:
        raise NotFound(f"group {unknown_group} not found")
    device = await _device(request, values)
    answer, commit = await prepare_send(request, send)
    _check_routes(request, answer, device)
    await commit()
    ids = [str(m.id) for m in answer.messages]
    batch = str(answer.batch_id) if answer.batch_id is not None and answer.recipients > 1 else None
    return _json(SendAnswer(batch_id=batch, message_ids=ids, recipients_count=answer.recipients))


@routes.post("/api/sms/send")
async def send_sms(request: web.Request) -> web.Response:
    await vendel_auth.authenticate(request)
    values = await params(request)
    body = values.get("body")
    if isinstance(body, str) and len(body) > MAX_BODY:
        raise ApiError(400, "BODY_TOO_LONG", f"Message body exceeds {MAX_BODY} character limit")
    return await _send(request, {"body": body}, values)


@routes.post("/api/sms/send-template")
async def send_template(request: web.Request) -> web.Response:
    await vendel_auth.authenticate(request)
    values = await params(request)
    native = {
        "template_id": await _template(request, values),
        "variables": values.get("variables"),
    }
    return await _send(request, native, values)


@routes.post("/api/auth/token")
async def mint_token(request: web.Request) -> web.Response:
    """A JWT for the key presented (X-API-Key, or Bearer KEY); a token cannot mint another,
    so a leaked token dies within the hour."""
    presented = bearer(request)
    if presented is not None and jwt_tokens.looks_like_jwt(presented):
        raise ApiError(401, "UNAUTHORIZED", "a token is minted with an API key, not a token")
    who = await by_key(request, presented or request.headers.get("X-API-Key"))
    token, lifetime = await vendel_auth.mint_for(request, who)
    return _json(TokenAnswer(token=token, expires_in=lifetime))


@routes.get("/api/collections/sms_messages/records/{id}")
async def read_message(request: web.Request) -> web.Response:
    """A message with Vendel's status name, where Vendel's record API serves it."""
    who = await vendel_auth.authenticate(request)
    try:
        message_id = UUID(request.match_info["id"])
    except ValueError:
        raise NotFound("The requested resource wasn't found.") from None
    async with unavailable_as_error():
        view = await messages_store.find(shared(request)[POOL], who.account_id, message_id)
    if view is None:
        raise NotFound("The requested resource wasn't found.")
    row = view.message
    error = row["error_text"] or row["error_code"] or ""
    return _json(
        MessageRecord(
            id=str(row["id"]),
            to=row["to_number"],
            status=vendel_status(row["status"]),
            batch_id=str(row["batch_id"]) if row["batch_id"] else "",
            error_message=str(error),
            created=iso(row["created_at"]) or "",
            updated=iso(row["updated_at"]) or "",
        )
    )


def create_app() -> web.Application:
    app = dialect_app(routes, render_error)
    app[vendel_auth.SECRET] = vendel_auth.SigningSecret()
    return app
