"""What an API process remembers for a short while (keys, send rules), loaded once per expiry.

Under load a popular entry expires while a hundred requests want it; each used to miss and
read it from PostgreSQL (about 80 key lookups a second at 200 concurrent requests, for one
key). ``get_or_load`` lets the first miss read it and the others wait for that read.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class TtlCache(Generic[K, V]):
    """Values remembered for ``ttl`` seconds (0: never), at most ``max_entries`` of them."""

    def __init__(self, ttl: float, max_entries: int = 100_000) -> None:
        self.ttl = ttl
        self._max = max_entries
        self._entries: dict[K, tuple[float, V]] = {}
        #: A read in progress per key; its result is None if it failed (waiters read again).
        self._reads: dict[K, asyncio.Future[V | None]] = {}

    def get(self, key: K, now: float | None = None) -> V | None:
        hit = self._entries.get(key)
        if hit is None or (time.monotonic() if now is None else now) - hit[0] >= self.ttl:
            return None
        return hit[1]

    def put(self, key: K, value: V, now: float | None = None) -> None:
        if self.ttl <= 0:
            return
        now = time.monotonic() if now is None else now
        if len(self._entries) >= self._max:
            self._entries = {k: v for k, v in self._entries.items() if now - v[0] < self.ttl}
            if len(self._entries) >= self._max:
                self._entries.clear()
        self._entries[key] = (now, value)

    def forget(self, key: K) -> None:
        self._entries.pop(key, None)

    async def get_or_load(self, key: K, load: Callable[[], Awaitable[V]]) -> V:
        """The remembered value, or ``load()``'s, shared with whoever asks meanwhile. A failed
        read raises in its caller only; those waiting on it read for themselves."""
        while True:
            found = self.get(key)
            if found is not None:
                return found
            reading = self._reads.get(key)
            if reading is None:
                break
            shared = await asyncio.shield(reading)
            if shared is not None:
                return shared
        reading = self._reads[key] = asyncio.get_running_loop().create_future()
        value: V | None = None
        try:
            value = await load()
            self.put(key, value)
        finally:
            del self._reads[key]
            reading.set_result(value)
        return value
