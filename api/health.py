"""Liveness, readiness and metrics: what an orchestrator and Prometheus ask."""

from __future__ import annotations

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from api.context import AMQP, POOL
from broker.db import CONNECTION_ERRORS


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    checks: dict[str, str] = {}
    try:
        await request.app[POOL].fetchval("SELECT 1", timeout=2)
        checks["postgres"] = "ok"
    except CONNECTION_ERRORS:
        checks["postgres"] = "unreachable"
    checks["rabbitmq"] = "ok" if request.app[AMQP].is_connected else "unreachable"
    ready = all(v == "ok" for v in checks.values())
    return web.json_response(
        {"status": "ready" if ready else "unavailable", "checks": checks},
        status=200 if ready else 503,
    )


async def metrics(request: web.Request) -> web.Response:
    response = web.Response(body=generate_latest())
    response.content_type = CONTENT_TYPE_LATEST.split(";")[0]
    return response


def register(app: web.Application) -> None:
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
