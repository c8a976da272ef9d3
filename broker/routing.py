"""Longest-prefix routing over a table small enough to keep in memory and refresh."""

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


class RouteTable:
    """Routes by digits prefix; the empty prefix is the default route."""

    def __init__(self, routes: list[Route] | None = None, *, ttl: float = 5.0) -> None:
        self._by_prefix: dict[str, Route] = {}
        self._lengths: list[int] = []
        self._loaded_at = 0.0
        self._ttl = ttl
        if routes is not None:
            self.replace(routes)

    def replace(self, routes: list[Route]) -> None:
        self._by_prefix = {r.prefix: r for r in routes}
        self._lengths = sorted({len(r.prefix) for r in routes}, reverse=True)
        self._loaded_at = time.monotonic()

    def match(self, e164: str) -> Route | None:
        digits = e164.lstrip("+")
        for n in self._lengths:
            route = self._by_prefix.get(digits[:n])
            if route is not None and len(digits) >= n:
                return route
        return None

    async def refresh(self, pool: asyncpg.Pool, *, force: bool = False) -> None:
        if not force and time.monotonic() - self._loaded_at < self._ttl:
            return
        self.replace(
            [
                Route(r.prefix, r.connector, r.price, LongMode(r.long_mode, r.gsm7_packed))
                for r in await connectors.routes(pool)
            ]
        )
