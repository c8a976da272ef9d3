"""Liveness, readiness and metrics: what an orchestrator and Prometheus ask."""

from __future__ import annotations

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from api.context import AMQP, POOL, shared
from api.contract import Endpoints
from api.ratelimit import LIMITER
from api.schemas.health import Health, Readiness
from broker.db import CONNECTION_ERRORS

endpoints = Endpoints("operations")


@endpoints.get("/healthz", response=Health, public=True, summary="Liveness")
async def healthz(request: web.Request) -> Health:
    return Health(status="ok")


@endpoints.get(
    "/readyz",
    response=Readiness,
    public=True,
    also=frozenset({503}),
    summary="Readiness: PostgreSQL and RabbitMQ reachable (503 names what is not)",
    description=(
        "`ready`: every dependency answers. `unavailable` (503): PostgreSQL or RabbitMQ does"
        " not, so the API cannot accept. `degraded` (200): only Redis does not; requests go on"
        " with their rate limits unchecked until it is back."
    ),
)
async def readyz(request: web.Request) -> web.Response:
    checks: dict[str, str] = {}
    try:
        await shared(request)[POOL].fetchval("SELECT 1", timeout=2)
        checks["postgres"] = "ok"
    except CONNECTION_ERRORS:
        checks["postgres"] = "unreachable"
    checks["rabbitmq"] = "ok" if shared(request)[AMQP].is_connected else "unreachable"
    ready = all(v == "ok" for v in checks.values())
    # Redis holds only rate-limit state: without it the API still accepts (fail open).
    checks["redis"] = "ok" if await shared(request)[LIMITER].ping() else "unreachable"
    status = "unavailable" if not ready else "ready" if checks["redis"] == "ok" else "degraded"
    answer = Readiness.model_validate({"status": status, "checks": checks})
    return web.Response(
        text=answer.model_dump_json(),
        status=200 if ready else 503,
        content_type="application/json",
    )


@endpoints.get(
    "/metrics",
    public=True,
    media_type="text/plain",
    summary="Prometheus metrics of this API process",
)
async def metrics(request: web.Request) -> web.Response:
    response = web.Response(body=generate_latest())
    response.content_type = CONTENT_TYPE_LATEST.split(";")[0]
    return response
