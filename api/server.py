"""The API's HTTP server: the app on a listening socket."""

from __future__ import annotations

import structlog
from aiohttp import web

from api.app import create_app
from broker.config import Settings

log = structlog.get_logger(__name__)


async def start_api(settings: Settings, host: str, port: int) -> web.AppRunner:
    runner = web.AppRunner(create_app(settings), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port, backlog=1024).start()
    log.info("api listening", host=host, port=port)
    return runner
