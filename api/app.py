"""The customer API application: thin handlers over PostgreSQL reads and confirmed publishes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import structlog
from aiohttp import web
from aiohttp.typedefs import Handler

from api import (
    account,
    contact_import,
    contacts,
    dialects,
    docs,
    groups,
    health,
    inbound,
    keys,
    message_cancel,
    message_preview,
    messages,
    openapi,
    opt_outs,
    otp,
    sender_ids,
    templates,
    webhooks,
    whatsapp_webhooks,
)
from api.auth import KEY_CACHE, KeyCache, auth_middleware
from api.context import AMQP, INGEST, POOL, ROUTES, SEND_RULES, SETTINGS
from api.contract import register
from api.errors import error_body, error_response, http_error_response
from api.key_usage import KEY_USAGE, KeyUsage
from api.metrics import metrics_middleware
from api.ratelimit import LIMITER, RateLimiter, open_redis
from api.send_rules import SendRulesCache
from broker.config import Settings
from broker.db import create_pool
from broker.errors import BrokerError
from broker.packing import PackedPublisher
from broker.queues import Amqp, QueueNames
from broker.routing import RouteTable

log = structlog.get_logger(__name__)


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except BrokerError as exc:
        return error_response(exc)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return http_error_response(exc)
    except asyncio.CancelledError:
        raise
    except Exception:  # noqa: BLE001 - the HTTP boundary: a bug answers 500, never a traceback
        log.exception("unhandled error", method=request.method, route=_route(request))
        return web.json_response(
            error_body("INTERNAL_ERROR", "the gateway failed to answer this request"), status=500
        )


def _route(request: web.Request) -> str:
    """The route's pattern, not the path: a path or query may carry a key or a number."""
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else "unmatched"


def create_app(settings: Settings, *, amqp: Amqp | None = None) -> web.Application:
    """The app; it opens its own pool and AMQP connection unless given a shared one."""
    limiter = RateLimiter(settings.queue_prefix)
    app = web.Application(
        middlewares=[
            metrics_middleware,
            error_middleware,
            auth_middleware,
        ],
        client_max_size=1024 * 1024,
    )
    app[SETTINGS] = settings
    app[ROUTES] = RouteTable()
    app[SEND_RULES] = SendRulesCache(settings.auth_cache_seconds)
    app[LIMITER] = limiter
    app[KEY_CACHE] = KeyCache(settings.auth_cache_seconds)

    async def resources(app: web.Application) -> AsyncIterator[None]:
        # Redis connects on first use, so a Redis down at startup only degrades the API.
        redis = open_redis(settings)
        limiter.use(redis)
        app[POOL] = await create_pool(settings.database_url, size=settings.db_pool_size)
        own = amqp is None
        app[AMQP] = amqp or Amqp(settings.amqp_url, QueueNames(settings.queue_prefix))
        if own:
            await app[AMQP].connect()
            await app[AMQP].declare_topology(settings.webhook_retry_delays)
        app[INGEST] = PackedPublisher(app[AMQP], app[AMQP].names.ingest, "requests")
        app[KEY_USAGE] = KeyUsage(app[POOL])
        app[KEY_USAGE].start()
        yield
        if own:
            await app[AMQP].close()
        await app[KEY_USAGE].stop()
        await app[POOL].close()
        await limiter.close()
        await redis.aclose()

    app.cleanup_ctx.append(resources)
    for module in (
        health,
        account,
        keys,
        messages,
        message_preview,
        message_cancel,
        otp,
        sender_ids,
        opt_outs,
        inbound,
        contact_import,
        contacts,
        groups,
        templates,
        webhooks,
    ):
        register(app, module.endpoints)
    dialects.mount(app, settings)
    whatsapp_webhooks.register(app)
    docs.register(app)
    openapi.install(app)
    return app
