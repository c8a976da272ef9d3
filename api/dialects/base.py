"""What every dialect shares: its own error shape for every failure, its parameters from the
query, a form or a JSON body alike, and authentication by the native key and login checks."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar
from uuid import UUID

from aiohttp import hdrs, web
from aiohttp.typedefs import Handler, Middleware
from pydantic import BaseModel, ValidationError

from api.auth import caller_for_key, caller_for_key_id, caller_for_login, rate_limit_headers
from api.context import CALLER, Caller, validation_context
from api.contract import input_error
from api.errors import ApiError
from broker.errors import BrokerError

M = TypeVar("M", bound=BaseModel)
#: A dialect's answer for a failure of the native services (BrokerError and its ApiErrors).
ErrorRenderer = Callable[[BrokerError], web.Response]
#: ApiError codes for the HTTP errors aiohttp raises itself (no route, wrong method...).
_HTTP_CODES = {404: "NOT_FOUND", 405: "METHOD_NOT_ALLOWED", 413: "PAYLOAD_TOO_LARGE"}

LIMIT_HEADERS = web.RequestKey("dialect_limit_headers", dict[str, str])


def errors_as(render: ErrorRenderer) -> Middleware:
    """Every failure answered in the dialect's shape, with the key's rate-limit headers."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            response = await handler(request)
        except BrokerError as exc:
            response = render(exc)
        except web.HTTPException as exc:
            if exc.status < 400:
                raise
            code = _HTTP_CODES.get(exc.status, "INVALID_REQUEST")
            kept = {k: v for k, v in exc.headers.items() if k.lower() == "allow"}
            response = render(ApiError(exc.status, code, exc.reason, headers=kept))
        response.headers.update(request.get(LIMIT_HEADERS, {}))
        return response

    return middleware


def dialect_app(routes: web.RouteTableDef, render: ErrorRenderer) -> web.Application:
    app = web.Application(middlewares=[errors_as(render)])
    app.add_routes(routes)
    return app


async def params(request: web.Request) -> dict[str, Any]:
    """The query string, then a form or JSON object body on top: providers take either."""
    found: dict[str, Any] = dict(request.query)
    if request.method in ("GET", "HEAD") or not request.body_exists:
        return found
    media = request.content_type if hdrs.CONTENT_TYPE in request.headers else "application/json"
    if media in ("application/x-www-form-urlencoded", "multipart/form-data"):
        form = await request.post()
        found.update({k: v for k, v in form.items() if isinstance(v, str)})
        return found
    raw = await request.read()
    if not raw.strip():
        return found
    try:
        body = json.loads(raw)
    except ValueError:
        raise ApiError(400, "INVALID_JSON", "the request body is not valid JSON") from None
    if not isinstance(body, dict):
        raise ApiError(400, "INVALID_JSON", "the request body must be a JSON object")
    found.update(body)
    return found


def validated(request: web.Request, model: type[M], values: dict[str, Any]) -> M:
    """``values`` as a native request model: the native checks and error codes."""
    try:
        return model.model_validate(values, context=validation_context(request))
    except ValidationError as exc:
        raise input_error(exc, model) from None


async def _admit(request: web.Request, found: Awaitable[Caller]) -> Caller:
    caller = await found
    request[LIMIT_HEADERS] = await rate_limit_headers(request, caller)
    request[CALLER] = caller
    return caller


async def by_key(request: web.Request, key: str | None) -> Caller:
    """Authenticate with an API key as the native API does (401/403/429 as ApiError)."""
    if not key:
        raise ApiError(401, "UNAUTHORIZED", "an API key is required")
    return await _admit(request, caller_for_key(request, key))


async def by_key_id(request: web.Request, key_id: UUID, account_id: UUID) -> Caller:
    """Authenticate as a key named by its id (a token minted for it)."""
    return await _admit(request, caller_for_key_id(request, key_id, account_id))


async def by_login(request: web.Request, username: str | None, password: str | None) -> Caller:
    """Authenticate with a login (smsbroker account login)."""
    if not username or not password:
        raise ApiError(401, "UNAUTHORIZED", "a username and a password are required")
    return await _admit(request, caller_for_login(request, username, password))


def bearer(request: web.Request) -> str | None:
    """The key of an ``Authorization: Bearer KEY`` header, if there is one."""
    scheme, _, value = request.headers.get("Authorization", "").partition(" ")
    return value.strip() or None if scheme.lower() == "bearer" else None
