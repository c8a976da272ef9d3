"""The OpenAPI 3.1 document, built from the declared endpoints and their models.

Nothing here is written by hand per route: parameters come from the query models, bodies and
answers from the request and response models, and every route's possible errors from what it
takes (a body can be malformed, too large or of the wrong type; an id can be unknown; a key can
be missing, refused or over its rate).
"""

from __future__ import annotations

from importlib import metadata
from typing import Any

from aiohttp import web
from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema

from api.contract import ENDPOINTS, FORM, JSON, Endpoint, Endpoints
from api.protocol import MAX_REQUEST_LINE
from api.schemas.common import ErrorResponse

OPENAPI = web.AppKey("openapi", dict)
REF = "#/components/schemas/{model}"

SECURITY_SCHEMES = {
    "bearerAuth": {"type": "http", "scheme": "bearer", "description": "Authorization: Bearer KEY"},
    "apiKeyHeader": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
    "apiKeyQuery": {"type": "apiKey", "in": "query", "name": "api_key"},
}
_ANY_KEY: list[dict[str, list[str]]] = [{name: []} for name in SECURITY_SCHEMES]

#: status → (description, an example code, an example message)
ERRORS: dict[int, tuple[str, str, str]] = {
    400: ("Invalid input; nothing was changed", "INVALID_INPUT", "`limit`: must be 1–200"),
    401: ("No API key, or one that does not exist", "INVALID_API_KEY", "this API key is not valid"),
    402: (
        "The balance cannot cover the estimated cost",
        "INSUFFICIENT_CREDITS",
        "this send costs 3 credits and the balance is 2",
    ),
    403: (
        "The key is revoked or expired, the account suspended, or the channel not allowed",
        "API_KEY_DISABLED",
        "this API key has been revoked",
    ),
    404: ("No such resource in this account", "NOT_FOUND", "message 0b5d… not found"),
    409: (
        "The request contradicts the current state",
        "IDEMPOTENCY_KEY_REUSED",
        "this Idempotency-Key was used with a different request in the last 24 hours",
    ),
    413: (
        "The request body is too large (1 MiB; a CSV import 50 MB)",
        "PAYLOAD_TOO_LARGE",
        "Request Entity Too Large",
    ),
    414: (
        f"The request line (the path and the query) is longer than {MAX_REQUEST_LINE:,} bytes",
        "URI_TOO_LONG",
        f"the request line is longer than {MAX_REQUEST_LINE} bytes",
    ),
    415: (
        "The body is neither JSON nor form-urlencoded",
        "UNSUPPORTED_MEDIA_TYPE",
        "send the request body as application/json or application/x-www-form-urlencoded",
    ),
    429: (
        "Over the key's rate limit; retry after `Retry-After` seconds",
        "RATE_LIMIT_EXCEEDED",
        "more than 60 requests this minute; retry in 12s",
    ),
    503: (
        "PostgreSQL or RabbitMQ is unreachable; retry shortly",
        "BROKER_UNAVAILABLE",
        "the message queue is unreachable, try again shortly",
    ),
}

_RATE_HEADERS = {
    "X-RateLimit-Limit": "Requests allowed per minute for this key",
    "X-RateLimit-Remaining": "Requests left in the current window",
    "X-RateLimit-Reset": "Seconds until the window resets",
}


def _int_headers(names: dict[str, str]) -> dict[str, Any]:
    return {n: {"description": d, "schema": {"type": "integer"}} for n, d in names.items()}


def error_statuses(endpoint: Endpoint) -> list[int]:
    """Every error status the route can answer."""
    statuses = set(endpoint.errors)
    if not endpoint.public:
        statuses |= {401, 403, 429, 503}
    if endpoint.path_params:
        statuses |= {404, 414}
    if endpoint.query is not None:
        statuses |= {400, 414}
    if endpoint.body is not None:
        statuses |= {400, 413, 415}
    if endpoint.raw_body is not None:
        statuses |= {400, 413, 415}
    return sorted(statuses)


def _models(endpoints: list[Endpoint]) -> list[tuple[type[BaseModel], JsonSchemaMode]]:
    wanted: list[tuple[type[BaseModel], JsonSchemaMode]] = [(ErrorResponse, "serialization")]
    for e in endpoints:
        if e.body is not None:
            wanted.append((e.body, "validation"))
        if e.query is not None:
            wanted.append((e.query, "validation"))
        if e.response is not None:
            wanted.append((e.response, "serialization"))
    return list(dict.fromkeys(wanted))


#: Path parameters that are not ids (UUIDs).
_PATH_PARAM_SCHEMAS: dict[str, dict[str, Any]] = {
    "phone": {"type": "string", "minLength": 1, "maxLength": 40},
}


def _parameters(endpoint: Endpoint, schemas: dict[str, Any]) -> list[dict[str, Any]]:
    params: list[dict[str, Any]] = [
        {
            "name": name,
            "in": "path",
            "required": True,
            "schema": _PATH_PARAM_SCHEMAS.get(name, {"type": "string", "format": "uuid"}),
        }
        for name in endpoint.path_params
    ]
    params.extend(
        {
            "name": name,
            "in": "header",
            "required": False,
            "description": description,
            "schema": {"type": "string", "minLength": 1, "maxLength": 255},
        }
        for name, description in endpoint.header_params
    )
    if endpoint.query is not None:
        schema = schemas[endpoint.query.__name__]
        required = set(schema.get("required", []))
        for name, prop in schema.get("properties", {}).items():
            param: dict[str, Any] = {"name": name, "in": "query", "required": name in required}
            if "description" in prop:
                param["description"] = prop["description"]
            param["schema"] = _not_null({k: v for k, v in prop.items() if k != "description"})
            params.append(param)
    return params


def _not_null(schema: dict[str, Any]) -> dict[str, Any]:
    """A query parameter is absent or has a value: drop the ``null`` of an optional one."""
    options = [o for o in schema.get("anyOf", []) if o != {"type": "null"}]
    if len(options) != 1:
        return schema
    rest = {k: v for k, v in schema.items() if k != "anyOf" and not (k == "default" and v is None)}
    return {**options[0], **rest}


def _success(endpoint: Endpoint, refs: dict[Any, Any]) -> dict[str, Any]:
    answer: dict[str, Any] = {"description": endpoint.summary}
    if endpoint.status == 204:
        return answer
    if endpoint.response is not None:
        schema = refs[(endpoint.response, "serialization")]
    elif endpoint.media_type == JSON:
        schema = {"type": "object"}
    else:
        schema = {"type": "string"}
    answer["content"] = {endpoint.media_type: {"schema": schema}}
    return answer


def _error(status: int, error_ref: dict[str, Any], *, rated: bool) -> dict[str, Any]:
    description, code, message = ERRORS[status]
    answer: dict[str, Any] = {
        "description": description,
        "content": {
            JSON: {"schema": error_ref, "example": {"error": {"code": code, "message": message}}}
        },
    }
    headers = dict(_RATE_HEADERS) if rated and status != 401 else {}
    if status in (429, 503):
        headers["Retry-After"] = "Seconds to wait"
    if headers:
        answer["headers"] = _int_headers(headers)
    return answer


def _operation(endpoint: Endpoint, refs: dict[Any, Any], schemas: dict[str, Any]) -> dict[str, Any]:
    responses: dict[str, Any] = {str(endpoint.status): _success(endpoint, refs)}
    if not endpoint.public and endpoint.status != 204:
        responses[str(endpoint.status)]["headers"] = _int_headers(_RATE_HEADERS)
    for status in sorted(endpoint.also):
        responses[str(status)] = _success(endpoint, refs)
    error_ref = refs[(ErrorResponse, "serialization")]
    for status in error_statuses(endpoint):
        responses.setdefault(str(status), _error(status, error_ref, rated=not endpoint.public))
    operation: dict[str, Any] = {
        "operationId": endpoint.handler.__name__,
        "tags": [endpoint.tag],
        "summary": endpoint.summary,
        "security": [] if endpoint.public else _ANY_KEY,
        "responses": responses,
    }
    if endpoint.description:
        operation["description"] = endpoint.description
    parameters = _parameters(endpoint, schemas)
    if parameters:
        operation["parameters"] = parameters
    if endpoint.body is not None:
        body_ref = refs[(endpoint.body, "validation")]
        operation["requestBody"] = {
            "required": True,
            "content": {JSON: {"schema": body_ref}, FORM: {"schema": body_ref}},
        }
    if endpoint.raw_body is not None:
        operation["requestBody"] = {
            "required": True,
            "content": {
                endpoint.raw_body: {
                    "schema": {"type": "string"},
                    **({"example": endpoint.raw_example} if endpoint.raw_example else {}),
                }
            },
        }
    return operation


def build_document(endpoints: list[Endpoint]) -> dict[str, Any]:
    visible = [e for e in endpoints if not e.hidden]
    refs, top = models_json_schema(_models(visible), ref_template=REF)
    schemas: dict[str, Any] = top.get("$defs", {})
    paths: dict[str, dict[str, Any]] = {}
    for endpoint in visible:
        operation = _operation(endpoint, refs, schemas)
        paths.setdefault(endpoint.path, {})[endpoint.method.lower()] = operation
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "smsbroker API",
            "version": _version(),
            "description": "Send SMS, follow every message to its final state, and receive "
            "signed delivery and inbound webhooks. Every error has one shape: "
            '`{"error": {"code", "message", "field", "details"}}`.',
        },
        "servers": [{"url": "/"}],
        "tags": [{"name": tag} for tag in dict.fromkeys(e.tag for e in visible)],
        "paths": paths,
        "components": {"schemas": schemas, "securitySchemes": SECURITY_SCHEMES},
    }


def _version() -> str:
    try:
        return metadata.version("smsbroker")
    except metadata.PackageNotFoundError:
        return "0"


def document(app: web.Application) -> dict[str, Any]:
    """The app's OpenAPI document, built once when the app was created."""
    doc: dict[str, Any] = app[OPENAPI]
    return doc


endpoints = Endpoints("operations")


@endpoints.get("/openapi.json", public=True, summary="This document (OpenAPI 3.1)", media_type=JSON)
async def openapi_json(request: web.Request) -> web.Response:
    return web.json_response(document(request.app))


def install(app: web.Application) -> None:
    """Serve the document of every endpoint registered so far (call after registering them)."""
    from api.contract import register

    register(app, endpoints)
    app[OPENAPI] = build_document(app[ENDPOINTS])
