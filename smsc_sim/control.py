"""HTTP control API of the simulated carrier, for operators and tests driving it from outside.

    POST   /mo         {"from", "to", "text", "system_id"?}  inject an inbound message -> 202
    POST   /faults     {"submit_error": "0x58", "submit_error_count": 5, ...}  -> standing faults
    DELETE /faults     clear every fault
    GET    /stats      counters, binds, queue depth, faults
    GET    /submitted  the last submits (?limit=N, default 100)

Errors are ``{"error": {"code", "message", "field"}}`` with status 400 (404 for unknown paths).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from itertools import islice
from typing import Any

from aiohttp import web

from broker.errors import InputError
from smsc_sim.server import SmscSimulator

SIMULATOR: web.AppKey[SmscSimulator] = web.AppKey("simulator", SmscSimulator)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def error_response(status: int, code: str, message: str, field: str | None = None) -> web.Response:
    error = {"code": code, "message": message, "field": field}
    return web.json_response({"error": error}, status=status)


@web.middleware
async def input_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except InputError as exc:
        return error_response(400, exc.code, exc.message, exc.field)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return error_response(exc.status, f"HTTP_{exc.status}", exc.reason)


async def _json_object(request: web.Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise InputError("the body is not valid JSON", code="INVALID_JSON") from None
    if not isinstance(body, dict):
        raise InputError("the body must be a JSON object", code="INVALID_JSON")
    return body


def _text_field(body: dict[str, Any], name: str, *, required: bool = True) -> str | None:
    value = body.get(name)
    if value is None and not required:
        return None
    if not isinstance(value, str) or (required and not value):
        raise InputError(f"{name!r} must be a non-empty string", code="INVALID_FIELD", field=name)
    return value


async def post_mo(request: web.Request) -> web.Response:
    body = await _json_object(request)
    unknown = sorted(set(body) - {"from", "to", "text", "system_id"})
    if unknown:
        raise InputError(f"unknown field {unknown[0]!r}", code="UNKNOWN_FIELD", field=unknown[0])
    source = _text_field(body, "from")
    destination = _text_field(body, "to")
    text = body.get("text")
    if not isinstance(text, str):
        raise InputError("'text' must be a string", code="INVALID_FIELD", field="text")
    system_id = _text_field(body, "system_id", required=False)
    assert source is not None and destination is not None
    parts = await request.app[SIMULATOR].inject_mo(source, destination, text, system_id=system_id)
    return web.json_response({"parts": parts}, status=202)


async def post_faults(request: web.Request) -> web.Response:
    body = await _json_object(request)
    faults = request.app[SIMULATOR].set_faults(**body)
    return web.json_response({"faults": faults})


async def delete_faults(request: web.Request) -> web.Response:
    simulator = request.app[SIMULATOR]
    simulator.clear_faults()
    return web.json_response({"faults": simulator.faults.to_json()})


async def get_stats(request: web.Request) -> web.Response:
    return web.json_response(request.app[SIMULATOR].stats)


async def get_submitted(request: web.Request) -> web.Response:
    raw = request.query.get("limit", "100")
    if not raw.isdigit() or not 1 <= int(raw) <= 100_000:
        raise InputError("limit must be an integer 1..100000", code="INVALID_FIELD", field="limit")
    records = request.app[SIMULATOR].submitted
    last = list(islice(reversed(records), int(raw)))
    return web.json_response({"submitted": [record.to_json() for record in reversed(last)]})


def build_control_app(simulator: SmscSimulator) -> web.Application:
    app = web.Application(middlewares=[input_errors])
    app[SIMULATOR] = simulator
    app.router.add_post("/mo", post_mo)
    app.router.add_post("/faults", post_faults)
    app.router.add_delete("/faults", delete_faults)
    app.router.add_get("/stats", get_stats)
    app.router.add_get("/submitted", get_submitted)
    return app


class ControlServer:
    """The control API on its own port (0: ephemeral), beside a running simulator."""

    def __init__(self, simulator: SmscSimulator, host: str = "127.0.0.1", port: int = 0) -> None:
        self._runner = web.AppRunner(build_control_app(simulator), access_log=None)
        self._host = host
        self._port = port

    async def start(self) -> None:
        await self._runner.setup()
        site = web.TCPSite(self._runner, self._host, self._port)
        await site.start()
        address = self._runner.addresses[0]
        self._port = int(address[1])

    @property
    def port(self) -> int:
        return self._port

    async def stop(self) -> None:
        await self._runner.cleanup()
