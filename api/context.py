"""What the API's handlers share: typed app keys and the authenticated caller."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg
from aiohttp import web

from api.send_rules import SendRulesCache
from broker.config import Settings
from broker.packing import PackedPublisher
from broker.queues import Amqp
from broker.routing import RouteTable

SETTINGS = web.AppKey("settings", Settings)
POOL = web.AppKey("pool", asyncpg.Pool)
AMQP = web.AppKey("amqp", Amqp)
INGEST = web.AppKey("ingest", PackedPublisher)
ROUTES = web.AppKey("routes", RouteTable)
SEND_RULES = web.AppKey("send_rules", SendRulesCache)


@dataclass(frozen=True, slots=True)
class Caller:
    """The account and key a request was authenticated with."""

    account_id: UUID
    key_id: UUID
    region: str
    balance_at_auth: float
    rate_limit: int
    channels: tuple[str, ...]
    #: When the key expires (None: never); keys it makes expire no later.
    expires_at: datetime | None = None


CALLER = web.RequestKey("caller", Caller)


def shared(request: web.Request) -> web.Application:
    """The gateway's own application, whose keys hold what every handler shares (the pool,
    the queues, the caches); a dialect's sub-application reaches the same ones. Cheaper than
    ``request.config_dict``, which builds a chain of the applications at every access."""
    return request.match_info.apps[0]


def caller(request: web.Request) -> Caller:
    return request[CALLER]


def validation_context(request: web.Request) -> dict[str, Any]:
    """What request models need to know beyond the request: the caller's region, limits."""
    settings = shared(request)[SETTINGS]
    found = request.get(CALLER)
    return {
        "region": found.region if found is not None else "US",
        "max_recipients": settings.max_recipients,
        "max_body_chars": settings.max_body_chars,
        "allow_private": settings.webhook_allow_private,
    }
