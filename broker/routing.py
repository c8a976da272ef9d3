"""Longest-prefix routing, per channel, over a table small enough to keep in memory and
refresh."""

from __future__ import annotations

import time
from dataclasses import dataclass
from decimal import Decimal

import asyncpg

from broker.long_mode import LongMode
from broker.store import connectors


@dataclass(frozen=True, slots=True)
class Route:
    prefix: str
    connector: str
    price: Decimal
    #: The connector's long-message mode: what the route's texts cost in parts.
    mode: LongMode = LongMode()
    #: 'sms' or 'whatsapp': a send on a channel takes only that channel's routes.
    channel: str = "sms"


class RouteTable:
    """Routes by channel and digits prefix; the empty prefix is a channel's default route."""

    def __init__(self, routes: list[Route] | None = None, *, ttl: float = 5.0) -> None:
        self._by_prefix: dict[tuple[str, str], Route] = {}
        self._lengths: dict[str, list[int]] = {}
        self._loaded_at = 0.0
        self._ttl = ttl
        if routes is not None:
            self.replace(routes)

    def replace(self, routes: list[Route]) -> None:
        self._by_prefix = {(r.channel, r.prefix): r for r in routes}
        self._lengths = {
            channel: sorted({len(r.prefix) for r in routes if r.channel == channel}, reverse=True)
            for channel in {r.channel for r in routes}
        }
        self._loaded_at = time.monotonic()

    def has_channel(self, channel: str) -> bool:
        """Some route carries the channel."""
        return bool(self._lengths.get(channel))

    def match(self, e164: str, channel: str = "sms") -> Route | None:
        digits = e164.lstrip("+")
        for n in self._lengths.get(channel, ()):
            route = self._by_prefix.get((channel, digits[:n]))
            if route is not None and len(digits) >= n:
                return route
        return None

    async def refresh(self, pool: asyncpg.Pool, *, force: bool = False) -> None:
        if not force and time.monotonic() - self._loaded_at < self._ttl:
            return
        self.replace(
            [
                Route(
                    r.prefix,
                    r.connector,
                    r.price,
                    LongMode(r.long_mode, r.gsm7_packed),
                    r.channel,
                )
                for r in await connectors.routes(pool)
            ]
        )
