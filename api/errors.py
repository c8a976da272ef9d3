"""One error shape for every answer that is not a success.

{"error": {"code": "INVALID_PHONE_NUMBER", "message": "...", "field": "to", "details": [...]}}
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from broker.errors import (
    BrokerError,
    Conflict,
    DependencyUnavailable,
    Forbidden,
    InputError,
    InsufficientCredits,
    NotFound,
)

_STATUS: tuple[tuple[type[BrokerError], int], ...] = (
    (InputError, 400),
    (InsufficientCredits, 402),
    (Forbidden, 403),
    (NotFound, 404),
    (Conflict, 409),
    (DependencyUnavailable, 503),
)


class ApiError(BrokerError):
    """An error raised by the HTTP layer itself, with its own status."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        headers: dict[str, str] | None = None,
        details: list[dict[str, Any]] | None = None,
        field: str | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message, code=code)
        self.extra = extra
        self.status = status
        self.headers = headers or {}
        self.details = details
        self.field = field


def rate_limited(message: str, retry_after: int, headers: dict[str, str] | None = None) -> ApiError:
    """429 RATE_LIMIT_EXCEEDED, saying when to retry both in ``Retry-After`` and in the body."""
    return ApiError(
        429,
        "RATE_LIMIT_EXCEEDED",
        message,
        headers={**(headers or {}), "Retry-After": str(retry_after)},
        extra={"retry_after": retry_after},
    )


def error_body(
    code: str,
    message: str,
    *,
    field: str | None = None,
    details: list[dict[str, Any]] | None = None,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    err: dict[str, Any] = {"code": code, "message": message}
    if field is not None:
        err["field"] = field
    if details:
        err["details"] = details
    if extra:
        err.update(extra)
    return {"error": err}


def error_response(exc: BrokerError) -> web.Response:
    if isinstance(exc, ApiError):
        return web.json_response(
            error_body(
                exc.code, exc.message, field=exc.field, details=exc.details, extra=exc.extra
            ),
            status=exc.status,
            headers=exc.headers,
        )
    status = 500
    for kind, code in _STATUS:
        if isinstance(exc, kind):
            status = code
            break
    field = exc.field if isinstance(exc, InputError | Forbidden) else None
    details = getattr(exc, "details", None)
    headers = {"Retry-After": "5"} if status == 503 else None
    return web.json_response(
        error_body(exc.code, exc.message, field=field, details=details),
        status=status,
        headers=headers,
    )


_HTTP_CODES = {
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    413: "PAYLOAD_TOO_LARGE",
    415: "UNSUPPORTED_MEDIA_TYPE",
}


def http_error_response(exc: web.HTTPException) -> web.Response:
    """aiohttp's own refusals (no route, wrong method, body too large) in the one shape."""
    code = _HTTP_CODES.get(exc.status, "BAD_REQUEST" if exc.status < 500 else "SERVER_ERROR")
    allow = exc.headers.get("Allow")
    return web.json_response(
        error_body(code, exc.reason),
        status=exc.status,
        headers={"Allow": allow} if allow else None,
    )
