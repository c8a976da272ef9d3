"""The smsapi dialect's Swagger page (``GET /api/v2``): an OpenAPI 3.1 document of the dialect's
own routes, rendered by the native docs renderer (api/docs.py) into one self-contained page.

The provider served Swagger UI from a CDN; gateways are often offline, so this page has its
stylesheet inlined and no script: nothing is fetched from elsewhere.
"""

from __future__ import annotations

import functools
from typing import Any

from aiohttp import web
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from api.dialects.smsapi_schemas import (
    EXPIRY_DAYS_MAX,
    EXPIRY_DAYS_MIN,
    AccountBalance,
    ErrorAnswer,
    KeyIssued,
    KeyRevoked,
    LaravelMessage,
    SmsSent,
    ValidationAnswer,
)
from api.docs import render_docs

_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'; "
        "frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-cache, private",
    "Access-Control-Allow-Origin": "*",
}
_MODELS: tuple[type[BaseModel], ...] = (
    SmsSent,
    AccountBalance,
    KeyIssued,
    KeyRevoked,
    ErrorAnswer,
    LaravelMessage,
    ValidationAnswer,
)
_KEY: list[dict[str, list[str]]] = [{"ApiKeyHeader": []}, {"ApiKeyParameter": []}]
_LOGIN: list[dict[str, list[str]]] = [{"Username": [], "Password": []}]
_JSON = "application/json"
_FORM = "application/x-www-form-urlencoded"
_HTML = "text/html"


def _ref(model: type[BaseModel]) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{model.__name__}"}


def _answer(description: str, model: type[BaseModel], example: Any = None) -> dict[str, Any]:
    media: dict[str, Any] = {"schema": _ref(model)}
    if example is not None:
        media["example"] = example
    return {"description": description, "content": {_JSON: media}}


def _error(description: str, text: str, **extra: str) -> dict[str, Any]:
    return _answer(description, ErrorAnswer, {"error": text, **extra})


def _laravel(description: str, text: str) -> dict[str, Any]:
    return _answer(description, LaravelMessage, {"message": text})


def _page(description: str) -> dict[str, Any]:
    return {"description": description, "content": {_HTML: {"schema": {"type": "string"}}}}


_STRING = {"type": "string"}
_NUMBERS = {
    **_STRING,
    "description": "The phone numbers to send the message to, comma separated; local numbers"
    " are read with the account's region.",
    "example": "0701234567, 0712345678",
}
_BODY = {
    **_STRING,
    "description": "The content of the message to be sent.",
    "example": "Hello, this is a test message.",
}
_EXPIRY = {
    "type": "integer",
    "minimum": EXPIRY_DAYS_MIN,
    "maximum": EXPIRY_DAYS_MAX,
    "description": "Days until the key expires (default: when the calling key does). A key"
    " never makes a key that outlives itself (403).",
}
_KEY_REQUIRED = _error(
    "No key given",
    "API key is required",
    help="Provide X-API-Key header or api_key parameter",
)
_COMMON = {
    "422": _answer(
        "A parameter is missing or out of range (Laravel's validation answer)", ValidationAnswer
    ),
    "429": _laravel(
        "Over the key's rate limit (or, before a key is known, the address's): `Retry-After`"
        " says when to try again",
        "Too Many Attempts.",
    ),
}
_SEND_ERRORS = {
    "400": _error("A number is not a valid phone number", "Invalid phone number format."),
    "402": _error("The balance does not cover the send", "insufficient credits"),
    "403": _error(
        "A revoked or expired key, a suspended account, an opted-out number",
        "this API key has been revoked",
    ),
}


def _body(properties: dict[str, Any], required: list[str], example: dict[str, Any]) -> Any:
    schema = {"type": "object", "properties": properties, "required": required}
    form = {"schema": schema, "example": example}
    return {"required": bool(required), "content": {_FORM: form, _JSON: {"schema": schema}}}


def _query(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"name": name, "in": "query", "schema": schema, "description": description}


def _send_v1() -> dict[str, Any]:
    return {
        "tags": ["v1"],
        "summary": "Send SMS Message API",
        "description": "Send one message to many numbers. The credentials (a login the"
        " gateway's operator made for your account) go as URL parameters or form parameters"
        " (or in a JSON body).",
        "security": _LOGIN,
        "requestBody": _body(
            {
                "numbers": _NUMBERS,
                "message_body": _BODY,
                "username": {**_STRING, "example": "user123"},
                "password": {**_STRING, "example": "pass123"},
            },
            ["numbers", "message_body", "username", "password"],
            {
                "numbers": "0701234567, 0712345678",
                "message_body": "Hello, this is a test message.",
                "username": "user123",
                "password": "pass123",
            },
        ),
        "responses": {
            "200": _answer("Sent: every message is queued", SmsSent),
            **_SEND_ERRORS,
            "401": _error("Missing or wrong username or password", "Unauthorized."),
            **_COMMON,
        },
    }


def _send_v2(method: str) -> dict[str, Any]:
    op: dict[str, Any] = {
        "tags": ["v2"],
        "summary": f"Send SMS ({method.upper()})",
        "description": "The same send as v1, with a key instead of a login. Parameters as"
        " query, form or JSON.",
        "security": _KEY,
        "responses": {
            "200": _answer("Sent: every message is queued", SmsSent),
            **_SEND_ERRORS,
            "401": _KEY_REQUIRED,
            **_COMMON,
        },
    }
    if method == "get":
        op["parameters"] = [
            _query("numbers", _NUMBERS, "Comma-separated phone numbers."),
            _query("message_body", _BODY, "The text."),
        ]
    else:
        op["requestBody"] = _body(
            {"numbers": _NUMBERS, "message_body": _BODY},
            ["numbers", "message_body"],
            {"numbers": "0701234567, 0712345678", "message_body": "Hello, this is a test message."},
        )
    return op


def _balance() -> dict[str, Any]:
    return {
        "tags": ["v2"],
        "summary": "The account's balance",
        "security": _KEY,
        "responses": {
            "200": _answer("Credits left", AccountBalance),
            "401": _KEY_REQUIRED,
            "429": _COMMON["429"],
        },
    }


def _key_operation(
    summary: str, description: str, *, expiry: bool, login: bool = False
) -> dict[str, Any]:
    answer = _answer("The new key; its secret is shown only here", KeyIssued)
    op: dict[str, Any] = {
        "tags": ["Keys"],
        "summary": summary,
        "description": description,
        "security": [*_KEY, *_LOGIN] if login else _KEY,
        "responses": {
            "200": answer if expiry else _answer("Revoked", KeyRevoked),
            "401": _KEY_REQUIRED,
            "403": _error(
                "The key would outlive the calling key",
                "a key expiring in 9 days would outlive this key, which expires at"
                " 2026-05-04T09:30:00+00:00",
            ),
            **_COMMON,
        },
    }
    if expiry:
        op["requestBody"] = _body({"expiry_days": _EXPIRY}, [], {"expiry_days": 3})
    return op


def _public(summary: str, description: str, answer: str) -> dict[str, Any]:
    return {
        "tags": ["Endpoints"],
        "summary": summary,
        "description": description,
        "security": [],
        "responses": {"200": _page(answer)},
    }


@functools.cache
def document() -> dict[str, Any]:
    """The dialect's OpenAPI 3.1 document (paths relative to its mount, /compat/smsapi)."""
    _, schemas = models_json_schema(
        [(model, "serialization") for model in _MODELS],
        ref_template="#/components/schemas/{model}",
    )
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "SMS API",
            "version": "2",
            "description": "Send SMS with a username and password (v1) or an API key (v2), read"
            " the balance, and manage keys. Every answer carries `x-ratelimit-limit` and"
            " `x-ratelimit-remaining`.",
        },
        "servers": [{"url": "/compat/smsapi", "description": "this gateway"}],
        "tags": [
            {"name": "v1", "description": "Username and password."},
            {"name": "v2", "description": "An API key: `X-API-Key` header or `api_key`."},
            {"name": "Keys", "description": "Made, revoked and regenerated by a key."},
            {"name": "Endpoints"},
        ],
        "paths": {
            "/v1/sms/send": {"post": _send_v1()},
            "/api/v2/sms/send": {"get": _send_v2("get"), "post": _send_v2("post")},
            "/api/v2/account/balance": {"get": _balance()},
            "/api/generate-key": {
                "post": _key_operation(
                    "Generate a key",
                    "A new key of the account, no broader than the calling key. A v1 login"
                    " (`username`, `password`) may call this too, to get its first key.",
                    expiry=True,
                    login=True,
                )
            },
            "/api/revoke-key": {
                "post": _key_operation(
                    "Revoke the calling key",
                    "The key this request is made with is refused from now on.",
                    expiry=False,
                )
            },
            "/api/regenerate-key": {
                "post": _key_operation(
                    "Regenerate the calling key",
                    "A new key with the calling key's channels and rate limit replaces it; the"
                    " old one is refused from now on.",
                    expiry=True,
                )
            },
            "/api/v2": {"get": _public("Display Swagger API page.", "This page.", "This page")},
            "/api/oauth2-callback": {
                "get": _public(
                    "Display Oauth2 callback pages.",
                    "This API signs in with keys, not OAuth 2: the page only says so.",
                    "A short page",
                )
            },
        },
        "components": {
            "schemas": schemas.get("$defs", {}),
            "securitySchemes": {
                "ApiKeyHeader": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
                "ApiKeyParameter": {"type": "apiKey", "in": "query", "name": "api_key"},
                "Username": {
                    "type": "apiKey",
                    "in": "query",
                    "name": "username",
                    "description": "v1: the login's username (URL or form parameter).",
                },
                "Password": {
                    "type": "apiKey",
                    "in": "query",
                    "name": "password",
                    "description": "v1: the login's password (URL or form parameter).",
                },
            },
        },
    }


@functools.cache
def _page_html() -> str:
    return render_docs(document())


def page_response() -> web.Response:
    return web.Response(text=_page_html(), content_type=_HTML, charset="utf-8", headers=_HEADERS)


_OAUTH2_CALLBACK = (
    '<!doctype html>\n<html lang="en-US">\n<head><meta charset="utf-8">'
    "<title>OAuth 2 callback</title></head>\n<body>\n<p>This API signs requests with an API key"
    " (<code>X-API-Key</code> header or <code>api_key</code> parameter), not OAuth 2: there is"
    " nothing to complete here.</p>\n</body>\n</html>\n"
)


def oauth2_callback_response() -> web.Response:
    return web.Response(
        text=_OAUTH2_CALLBACK, content_type=_HTML, charset="utf-8", headers=_HEADERS
    )
