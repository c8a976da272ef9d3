"""Waiting for the gateway's parts to be ready before any load is sent."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Sequence

import aiohttp

from bench.children import Child
from broker.errors import BrokerError

POLL = 0.2


class BenchFailed(BrokerError):
    """The bench could not run (a part did not start, a dependency is unreachable)."""

    code = "BENCH_FAILED"


async def wait_until(
    what: str,
    ready: Callable[[], Awaitable[bool]],
    timeout: float,
    watched: Sequence[Child] = (),
) -> None:
    """Poll ``ready`` until it says yes; fail at once if a watched child has exited."""
    deadline = time.monotonic() + timeout
    while True:
        for child in watched:
            if child.exited:
                raise BenchFailed(f"{what}: {child.describe_exit()}")
        if await ready():
            return
        if time.monotonic() > deadline:
            logs = ", ".join(str(c.log_path) for c in watched)
            where = f"; logs: {logs}" if logs else ""
            raise BenchFailed(f"{what} not ready after {timeout:.0f} s{where}")
        await asyncio.sleep(POLL)


def tcp_listening(port: int) -> Callable[[], Awaitable[bool]]:
    async def probe() -> bool:
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            return False
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
        return True

    return probe


def http_ready(url: str, session: aiohttp.ClientSession) -> Callable[[], Awaitable[bool]]:
    async def probe() -> bool:
        try:
            async with session.get(url, timeout=aiohttp.ClientTimeout(total=2)) as resp:
                return resp.status == 200
        except (TimeoutError, aiohttp.ClientError):
            return False

    return probe
