"""Where webhooks may go: public addresses only, unless the operator allows private ones.

A customer chooses the URL, and the gateway's webhook sender sits inside the operator's network;
without this, a customer could make it POST to internal services or a cloud metadata endpoint.
Names are checked after resolution (a public name may resolve to a private address), literal
addresses before the request.
"""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit

from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver


def is_public(address: str) -> bool:
    try:
        return ipaddress.ip_address(address.split("%", 1)[0]).is_global
    except ValueError:
        return False


def refused_destination(url: str) -> str | None:
    """Why ``url`` may not receive webhooks judging by its literal host, or None."""
    host = (urlsplit(url).hostname or "").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return f"webhooks may not go to {host}"
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return None  # a name: checked when it is resolved
    return None if is_public(host) else f"webhooks may not go to the private address {host}"


class PublicOnlyResolver(AbstractResolver):
    """Resolves like aiohttp's default resolver, then keeps only public addresses."""

    def __init__(self, inner: AbstractResolver | None = None) -> None:
        self._inner = inner if inner is not None else DefaultResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        found = await self._inner.resolve(host, port, family)
        public = [r for r in found if is_public(r["host"])]
        if not public:
            raise OSError(f"{host} resolves to no public address; webhooks may not go there")
        return public

    async def close(self) -> None:
        await self._inner.close()

    def __repr__(self) -> str:  # pragma: no cover - debugging aid
        return "PublicOnlyResolver()"


def webhook_resolver(allow_private: bool) -> AbstractResolver | None:
    """The resolver webhook connections use: None (any address) or public addresses only."""
    return None if allow_private else PublicOnlyResolver()
