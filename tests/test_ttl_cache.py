"""api.ttl_cache: expiry, room, and one read per key however many requests miss together."""

from __future__ import annotations

import asyncio

import pytest

from api.ttl_cache import TtlCache


class Source:
    """A slow read that counts itself and can be told to fail."""

    def __init__(self, fail_first: int = 0) -> None:
        self.reads = 0
        self.fail_first = fail_first
        self.gate = asyncio.Event()

    async def read(self) -> str:
        self.reads += 1
        await self.gate.wait()
        if self.reads <= self.fail_first:
            raise ConnectionError("database away")
        return f"value-{self.reads}"


async def misses_together(cache: TtlCache[str, str], source: Source, n: int) -> set[str]:
    """``n`` requests miss at once; the read ends once all of them wait."""
    waiting = [asyncio.create_task(cache.get_or_load("k", source.read)) for _ in range(n)]
    await asyncio.sleep(0.01)
    source.gate.set()
    return set(await asyncio.gather(*waiting))


def test_expiry_and_room() -> None:
    cache: TtlCache[str, int] = TtlCache(ttl=1.0, max_entries=2)
    cache.put("a", 1, 100.0)
    cache.put("b", 2, 100.0)
    assert (cache.get("a", 100.9), cache.get("a", 101.0)) == (1, None)
    cache.put("c", 3, 101.5)  # full of expired entries: they make room
    assert (cache.get("c", 101.6), cache.get("b", 101.6)) == (3, None)
    cache.forget("c")
    assert cache.get("c", 101.6) is None
    off: TtlCache[str, int] = TtlCache(ttl=0)
    off.put("a", 1, 1.0)
    assert off.get("a", 1.0) is None


async def test_concurrent_misses_share_one_read() -> None:
    cache: TtlCache[str, str] = TtlCache(ttl=60)
    source = Source()
    assert await misses_together(cache, source, 50) == {"value-1"}
    assert source.reads == 1
    assert await cache.get_or_load("k", source.read) == "value-1" and source.reads == 1


async def test_a_failed_read_fails_its_caller_only() -> None:
    cache: TtlCache[str, str] = TtlCache(ttl=60)
    source = Source(fail_first=1)
    first = asyncio.create_task(cache.get_or_load("k", source.read))
    await asyncio.sleep(0.01)
    others = [asyncio.create_task(cache.get_or_load("k", source.read)) for _ in range(5)]
    await asyncio.sleep(0.01)
    source.gate.set()
    with pytest.raises(ConnectionError):
        await first
    assert set(await asyncio.gather(*others)) == {"value-2"}
    assert source.reads == 2  # one waiter read again, the rest shared it


async def test_a_cancelled_reader_leaves_the_waiters_a_value() -> None:
    cache: TtlCache[str, str] = TtlCache(ttl=60)
    source = Source()
    first = asyncio.create_task(cache.get_or_load("k", source.read))
    await asyncio.sleep(0.01)
    other = asyncio.create_task(cache.get_or_load("k", source.read))
    await asyncio.sleep(0.01)
    first.cancel()
    await asyncio.sleep(0.01)
    source.gate.set()
    assert await other == "value-2"
    assert first.cancelled()


async def test_without_a_ttl_reads_are_shared_but_never_kept() -> None:
    cache: TtlCache[str, str] = TtlCache(ttl=0)
    source = Source()
    assert await misses_together(cache, source, 3) == {"value-1"}
    assert await cache.get_or_load("k", source.read) == "value-2"
