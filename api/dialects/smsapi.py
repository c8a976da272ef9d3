"""(being written)"""

from __future__ import annotations

from aiohttp import web

from api.dialects.base import dialect_app
from api.errors import error_response

routes = web.RouteTableDef()


def create_app() -> web.Application:
    return dialect_app(routes, error_response)
