"""Who is calling: API key authentication and the per-key rate limit (api/ratelimit.py).

A key comes as ``Authorization: Bearer KEY``, ``X-API-Key: KEY`` or ``?api_key=KEY``. The key's
row and its account's balance come back in one indexed query, so a send needs no second
round trip to check the balance.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from uuid import UUID

import asyncpg
from aiohttp import web
from aiohttp.typedefs import Handler

from api.context import CALLER, POOL, Caller, shared
from api.errors import ApiError, error_response, http_error_response, rate_limited
from api.key_usage import note_use
from api.ratelimit import LIMITER
from api.ttl_cache import TtlCache
from broker import logins
from broker.api_keys import KeyStatus, status_of
from broker.db import unavailable_as_error
from broker.errors import BrokerError
from broker.keys import key_hash
from broker.status import AccountStatus
from broker.store import keys as key_store
from broker.store import logins as login_store

PUBLIC_PATHS = frozenset({"/healthz", "/readyz", "/metrics", "/openapi.json", "/docs", "/"})


def presented_key(request: web.Request) -> str | None:
    header = request.headers.get("Authorization", "")
    if header:
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            raise ApiError(401, "UNAUTHORIZED", "the Authorization header must be 'Bearer KEY'")
        return value.strip()
    return request.headers.get("X-API-Key") or request.query.get("api_key") or None


#: A refusal to remember: (HTTP status, code, message). An exception object is not cached, as
#: raising one instance again and again would grow its traceback.
Refusal = tuple[int, str, str]


#: Why a key that is not active is refused (broker.api_keys.status_of says which it is).
_DISABLED = {
    KeyStatus.REVOKED: "this API key has been revoked",
    KeyStatus.EXPIRED: "this API key has expired",
}


def _caller(row: asyncpg.Record | None) -> Caller | Refusal:
    """The caller a key row stands for, or the refusal its key earns (both worth caching)."""
    if row is None:
        return 401, "INVALID_API_KEY", "this API key is not valid"
    disabled = _DISABLED.get(status_of(row["revoked_at"], row["expires_at"], datetime.now(UTC)))
    if disabled is not None:
        return 403, "API_KEY_DISABLED", disabled
    if row["status"] != AccountStatus.ACTIVE:
        return 403, "ACCOUNT_SUSPENDED", "this account is suspended"
    return Caller(
        account_id=row["account_id"],
        key_id=row["id"],
        region=row["region"],
        balance_at_auth=float(row["balance"]),
        rate_limit=row["rate_limit"],
        channels=tuple(row["channels"]),
        expires_at=row["expires_at"],
    )


class KeyCache(TtlCache[bytes, Caller | Refusal]):
    """Key lookups remembered for ``ttl`` seconds by this API process.

    Under load most requests come with a key seen a moment ago; remembering the answer saves
    a PostgreSQL round trip per request. The price: a revoked key, or a balance change, takes
    up to ``ttl`` to be seen here (charging itself is always exact, in the charge worker).
    """


KEY_CACHE = web.AppKey("key_cache", KeyCache)


async def caller_for_key(request: web.Request, key: str) -> Caller:
    """The caller a key stands for; ApiError 401 (unknown) or 403 (revoked, expired,
    suspended). Provider dialects present keys their own way and call this too."""
    digest = key_hash(key)
    pool = shared(request)[POOL]

    async def read() -> Caller | Refusal:
        async with unavailable_as_error():
            return _caller(await key_store.owner_by_hash(pool, digest))

    return accepted(request, await shared(request)[KEY_CACHE].get_or_load(digest, read))


async def caller_for_key_id(request: web.Request, key_id: UUID, account_id: UUID) -> Caller:
    """The caller a key stands for, named by its id (by a token minted for it): refused as the
    key's secret would be, so revoking the key ends its tokens too."""
    async with unavailable_as_error():
        row = await key_store.owner_by_id(shared(request)[POOL], key_id, account_id)
    return accepted(request, _caller(row))


async def caller_for_login(request: web.Request, username: str, password: str) -> Caller:
    """The caller a login (username and password) stands for: its key's, refused as its key
    would be; ApiError 401 for a wrong username or password. A right pair is remembered like
    a key (by a digest of both), so scrypt runs once per ``AUTH_CACHE_SECONDS``, not per call."""
    cache = shared(request)[KEY_CACHE]
    digest = hashlib.sha256(b"login\0" + username.encode() + b"\0" + password.encode()).digest()
    answer = cache.get(digest)
    if answer is None:
        async with unavailable_as_error():
            row = await login_store.owner_by_login(shared(request)[POOL], username)
        if row is None or not await logins.check_password(password, row["password_hash"]):
            raise ApiError(401, "UNAUTHORIZED", "the username or password is wrong")
        answer = _caller(row)
        cache.put(digest, answer)
    return accepted(request, answer)


def accepted(request: web.Request, answer: Caller | Refusal) -> Caller:
    """The caller, its use noted; or its refusal raised."""
    if isinstance(answer, tuple):
        raise ApiError(*answer)
    note_use(request, answer.key_id)
    return answer


async def authenticate(request: web.Request) -> Caller:
    key = presented_key(request)
    if key is None:
        raise ApiError(401, "UNAUTHORIZED", "an API key is required (Authorization: Bearer KEY)")
    return await caller_for_key(request, key)


async def rate_limit_headers(request: web.Request, found: Caller) -> dict[str, str]:
    """Count the request against the key's limit: the X-RateLimit-* headers of the answer;
    ApiError 429 (with Retry-After and those headers) over the limit."""
    verdict = await shared(request)[LIMITER].check(found.key_id, found.rate_limit)
    # Redis unreachable: the request goes on unchecked, and only the limit is known.
    limit_headers = {"X-RateLimit-Limit": str(found.rate_limit)}
    if verdict is not None:
        limit_headers["X-RateLimit-Remaining"] = str(verdict.remaining)
        limit_headers["X-RateLimit-Reset"] = str(verdict.reset)
        if not verdict.allowed:
            wait = verdict.retry_after
            raise rate_limited(
                f"more than {found.rate_limit} requests a minute; retry in {wait}s",
                wait,
                limit_headers,
            )
    return limit_headers


@web.middleware
async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    if request.path in PUBLIC_PATHS or not request.path.startswith("/v1/"):
        return await handler(request)
    found = await authenticate(request)
    limit_headers = await rate_limit_headers(request, found)
    request[CALLER] = found
    try:
        response = await handler(request)
    except BrokerError as exc:
        response = error_response(exc)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        response = http_error_response(exc)
    # On every answer to a known key, errors included, so a client can pace itself.
    response.headers.update(limit_headers)
    return response
