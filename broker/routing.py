"""Longest-prefix routing, per channel, over a table small enough to keep in memory and
refresh, with failover: a prefix may name several connectors, tried by priority (lower first)
and shared by weight within a priority; a connector that is out (connector_outages: no bind
up for a while, or a refusal that is the connector's) is passed over while another can carry
the number, and a disabled one is not routed to at all."""

from __future__ import annotations

import random
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
    #: Tried in increasing order; within one priority, chosen in proportion to ``weight``.
    priority: int = 0
    weight: int = 1
    #: The connector is out now: used only when no other route of the prefix is in.
    out: bool = False


class RouteTable:
    """Routes by channel and digits prefix; the empty prefix is a channel's default route."""

    def __init__(self, routes: list[Route] | None = None, *, ttl: float = 5.0) -> None:
        self._by_prefix: dict[tuple[str, str], list[Route]] = {}
        self._lengths: dict[str, list[int]] = {}
        self._loaded_at = 0.0
        self._ttl = ttl
        self._random = random.Random()
        if routes is not None:
            self.replace(routes)

    def replace(self, routes: list[Route]) -> None:
        by_prefix: dict[tuple[str, str], list[Route]] = {}
        for r in sorted(routes, key=lambda r: (r.priority, r.connector)):
            by_prefix.setdefault((r.channel, r.prefix), []).append(r)
        self._by_prefix = by_prefix
        self._lengths = {
            channel: sorted({len(r.prefix) for r in routes if r.channel == channel}, reverse=True)
            for channel in {r.channel for r in routes}
        }
        self._loaded_at = time.monotonic()

    def has_channel(self, channel: str) -> bool:
        """Some route carries the channel."""
        return bool(self._lengths.get(channel))

    def candidates(self, e164: str, channel: str = "sms") -> list[Route]:
        """The routes of the longest prefix matching the number, by priority."""
        digits = e164.lstrip("+")
        for n in self._lengths.get(channel, ()):
            found = self._by_prefix.get((channel, digits[:n]))
            if found is not None and len(digits) >= n:
                return found
        return []

    def match(
        self, e164: str, channel: str = "sms", *, avoid: frozenset[str] = frozenset()
    ) -> Route | None:
        """The route a message to the number takes now: the first priority with a connector
        that is in (and not in ``avoid``), one of them by weight; if every one is out, the
        first anyway (its messages wait for it rather than fail)."""
        found = self.candidates(e164, channel)
        if len(found) == 1 and not avoid:
            return found[0]  # the common case: one connector, taken in or out
        usable = [r for r in found if not r.out and r.connector not in avoid]
        if not usable:
            usable = [r for r in found if r.connector not in avoid]
        if not usable:
            return None
        best = [r for r in usable if r.priority == usable[0].priority]
        if len(best) == 1:
            return best[0]
        return self._random.choices(best, weights=[r.weight for r in best])[0]

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
                    r.priority,
                    r.weight,
                    r.out,
                )
                for r in await connectors.routes(pool)
            ]
        )
