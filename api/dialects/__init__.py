"""Provider dialects: other SMS providers' API shapes, served beside the native API.

A customer of one of them switches by replacing the provider's base URL with
``https://GATEWAY/compat/<name>``. Each dialect is a small sub-application that translates the
provider's requests into the native services (api.sending, api.audience, api.otp...) and their
answers and errors back; none sends, bills or stores anything its own way. The operator picks
the dialects served with DIALECTS (default: all).
"""

from __future__ import annotations

import importlib

from aiohttp import web

from broker.config import Settings


def mount(app: web.Application, settings: Settings) -> None:
    """Each enabled dialect's sub-application at /compat/<name>."""
    for name in settings.dialects:
        module = importlib.import_module(f"api.dialects.{name}")
        app.add_subapp(f"/compat/{name}", module.create_app())
