"""The API's HTTP server: the app on a listening socket, behind GatewayRequestHandler."""

from __future__ import annotations

import asyncio

import structlog
from aiohttp import web

from api.app import create_app
from api.protocol import MAX_HEADER_FIELD, MAX_REQUEST_LINE, GatewayServer
from broker.config import Settings

log = structlog.get_logger(__name__)

#: Seconds an idle keep-alive connection is kept (aiohttp's default is an hour). It also bounds
#: the one case the header clock cannot see: a second request begun in the first one's packet.
KEEPALIVE_TIMEOUT = 75.0


class _GatewayRunner(web.AppRunner):
    """AppRunner whose connections are GatewayRequestHandlers (aiohttp has no public hook)."""

    def __init__(self, app: web.Application, settings: Settings) -> None:
        super().__init__(
            app,
            access_log=None,
            max_line_size=MAX_REQUEST_LINE,
            max_field_size=MAX_HEADER_FIELD,
            keepalive_timeout=KEEPALIVE_TIMEOUT,
        )
        self._settings = settings

    async def _make_server(self) -> web.Server:
        # The app's own server runs its startup and freezes it; ours takes its handlers.
        base = await super()._make_server()
        return GatewayServer(
            base.request_handler,
            request_factory=base.request_factory,
            loop=asyncio.get_running_loop(),
            head_timeout=self._settings.http_header_timeout,
            body_timeout=self._settings.http_body_timeout,
            access_log=None,
            max_line_size=MAX_REQUEST_LINE,
            max_field_size=MAX_HEADER_FIELD,
            keepalive_timeout=KEEPALIVE_TIMEOUT,
        )


async def start_api(settings: Settings, host: str, port: int) -> web.AppRunner:
    runner = _GatewayRunner(create_app(settings), settings)
    await runner.setup()
    await web.TCPSite(runner, host, port, backlog=1024).start()
    log.info("api listening", host=host, port=port)
    return runner
