"""Vendel's two ways in: ``X-API-Key: KEY``, or ``Authorization: Bearer JWT`` with a token the
account minted with its key (POST /api/auth/token).

A token stands for its key: after its signature and expiry check out, the key is looked up
and refused exactly as the native API refuses it (revoked, expired, suspended account), so
revoking a key ends its tokens too. The signing secret is made once per gateway and shared by
every API process (gateway_secrets).
"""

from __future__ import annotations

import asyncio
import os
import time
from dataclasses import dataclass, field

from aiohttp import web

from api.context import POOL, Caller, shared
from api.dialects.base import bearer, by_key, by_key_id
from api.errors import ApiError
from broker import jwt_tokens
from broker.db import unavailable_as_error
from broker.store import gateway_secrets

SECRET_NAME = "vendel_jwt"
#: How long a minted token works (seconds); never past its key's own expiry.
TOKEN_LIFETIME = 3600


@dataclass
class SigningSecret:
    """The gateway's token secret, read from PostgreSQL once per process."""

    value: bytes | None = None
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    async def get(self, request: web.Request) -> bytes:
        if self.value is None:
            async with self.lock:
                if self.value is None:
                    async with unavailable_as_error():
                        self.value = await gateway_secrets.ensure(
                            shared(request)[POOL], SECRET_NAME, os.urandom(32)
                        )
        return self.value


SECRET = web.AppKey("vendel_jwt_secret", SigningSecret)


async def by_token(request: web.Request, token: str) -> Caller:
    """Authenticate with a minted token; 401 for a bad or expired one."""
    secret = await request.config_dict[SECRET].get(request)
    try:
        claims = jwt_tokens.verify(token, secret, time.time())
    except jwt_tokens.InvalidToken as exc:
        raise ApiError(401, "UNAUTHORIZED", exc.message) from None
    return await by_key_id(request, claims.key_id, claims.account_id)


async def authenticate(request: web.Request) -> Caller:
    """Bearer first (a JWT, or a key given that way), then X-API-Key, as Vendel tries them."""
    presented = bearer(request)
    if presented is not None:
        if jwt_tokens.looks_like_jwt(presented):
            return await by_token(request, presented)
        return await by_key(request, presented)
    return await by_key(request, request.headers.get("X-API-Key"))


async def mint_for(request: web.Request, who: Caller) -> tuple[str, int]:
    """A token for the caller's key: (token, seconds it lives)."""
    now = int(time.time())
    expires = now + TOKEN_LIFETIME
    if who.expires_at is not None:
        expires = min(expires, int(who.expires_at.timestamp()))
    claims = jwt_tokens.TokenClaims(who.key_id, who.account_id, now, expires)
    secret = await request.config_dict[SECRET].get(request)
    return jwt_tokens.mint(claims, secret), expires - now
