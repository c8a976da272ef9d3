"""Prometheus metrics of the API process, served at /metrics."""

from __future__ import annotations

import time

from aiohttp import web
from aiohttp.typedefs import Handler
from prometheus_client import Counter, Histogram

REQUESTS = Counter(
    "smsbroker_api_requests_total",
    "HTTP requests answered, by route and status",
    ["method", "route", "status"],
)
LATENCY = Histogram(
    "smsbroker_api_request_seconds",
    "Time to answer an HTTP request, by route",
    ["method", "route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)
MESSAGES_ACCEPTED = Counter(
    "smsbroker_messages_accepted_total", "Messages accepted (answered 202) by this API process"
)
RATE_LIMIT_UNAVAILABLE = Counter(
    "smsbroker_rate_limit_unavailable_total",
    "Requests let through without a rate-limit check because Redis was unreachable or slow",
)


@web.middleware
async def metrics_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    started = time.perf_counter()
    response = await handler(request)
    resource = request.match_info.route.resource
    route = resource.canonical if resource is not None else "unmatched"
    REQUESTS.labels(request.method, route, str(response.status)).inc()
    LATENCY.labels(request.method, route).observe(time.perf_counter() - started)
    return response
