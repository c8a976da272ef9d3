"""RabbitMQ or PostgreSQL out of the API's reach: clear 503s, no 500s, no hangs, and recovery
without a restart. The outage is a TCP proxy between the API and the real server being cut; the
servers themselves keep running for the rest of the suite, and so do the workers."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import aiohttp
import asyncpg
import pytest

from broker.config import Settings
from tests.fault_slice import FINAL_DEADLINE, Slice, api_server, fault_slice, workers
from tests.harness import with_settings
from tests.tcp_proxy import TcpProxy

#: A request to a cut dependency must be answered well within this (it is not a timing bar:
#: the test only refuses to wait forever).
ANSWER_WITHIN = 20.0


def proxied(url: str, proxy: TcpProxy) -> str:
    parts = urlsplit(url)
    userinfo = parts.netloc.rpartition("@")[0]
    netloc = f"{userinfo}@{proxy.host}:{proxy.port}" if userinfo else f"{proxy.host}:{proxy.port}"
    return urlunsplit(parts._replace(netloc=netloc))


@asynccontextmanager
async def proxy_for(url: str) -> AsyncIterator[TcpProxy]:
    parts = urlsplit(url)
    assert parts.hostname is not None and parts.port is not None
    proxy = TcpProxy(parts.hostname, parts.port)
    await proxy.start()
    try:
        yield proxy
    finally:
        await proxy.stop()


async def readyz(piece: Slice) -> tuple[int, Any]:
    async with piece.http.get(
        f"{piece.api}/readyz", timeout=aiohttp.ClientTimeout(total=ANSWER_WITHIN)
    ) as resp:
        return resp.status, await resp.json()


async def accepted_after_recovery(piece: Slice, first: int) -> str:
    """POST until one is accepted; every refusal on the way must be a 503, never a 500."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + FINAL_DEADLINE
    i = first
    while True:
        status, body = await piece.send(i, timeout=ANSWER_WITHIN)
        if status == 202:
            mid: str = body["messages"][0]["id"]
            return mid
        assert status == 503, body
        assert loop.time() < deadline, f"still {body} after the dependency came back"
        i += 1
        await asyncio.sleep(0.2)


async def wait_ready(piece: Slice) -> Any:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + FINAL_DEADLINE
    while True:
        status, body = await readyz(piece)
        if status == 200:
            return body
        assert status == 503, body
        assert loop.time() < deadline, f"/readyz still {body}"
        await asyncio.sleep(0.2)


async def wait_reconnect_attempts(piece: Slice, proxy: TcpProxy, attempts: int) -> None:
    """Keep asking /readyz (which must stay 503) until the API has tried to reconnect."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + FINAL_DEADLINE
    while proxy.refused < attempts:
        status, body = await readyz(piece)
        assert status == 503, body
        assert loop.time() < deadline, f"{proxy.refused} reconnect attempts of {attempts}"
        await asyncio.sleep(0.2)


CASES = {
    # id: (Settings field behind the proxy, error code, /readyz check, reset, route prefix)
    "rabbitmq-refused": ("amqp_url", "BROKER_UNAVAILABLE", "rabbitmq", False, "614915703"),
    "rabbitmq-reset": ("amqp_url", "BROKER_UNAVAILABLE", "rabbitmq", True, "614915704"),
    "postgres-refused": ("database_url", "DATABASE_UNAVAILABLE", "postgres", False, "614915705"),
    "postgres-reset": ("database_url", "DATABASE_UNAVAILABLE", "postgres", True, "614915706"),
}


@pytest.mark.parametrize("case", list(CASES))
async def test_dependency_cut_then_back(settings: Settings, pool: asyncpg.Pool, case: str) -> None:
    dependency, code, check, reset, prefix = CASES[case]
    async with (
        fault_slice(settings, pool, f"fd-{case}", prefix) as piece,
        proxy_for(getattr(settings, dependency)) as proxy,
        workers(piece.settings),
    ):
        api_settings = with_settings(
            piece.settings, **{dependency: proxied(getattr(settings, dependency), proxy)}
        )
        async with api_server(api_settings) as piece.api:
            status, body = await piece.send(0)
            assert status == 202, body
            ids = [body["messages"][0]["id"]]

            await proxy.cut(reset=reset)
            status, body = await piece.send(1, timeout=ANSWER_WITHIN)
            assert status == 503, body
            assert body["error"]["code"] == code
            status, body = await readyz(piece)
            assert status == 503
            assert body["checks"][check] == "unreachable"
            if reset:
                # The outage outlasts the client's own reconnect attempts.
                await wait_reconnect_attempts(piece, proxy, 2)
                status, body = await piece.send(2, timeout=ANSWER_WITHIN)
                assert status == 503 and body["error"]["code"] == code, body

            await proxy.restore()
            ids.append(await accepted_after_recovery(piece, 3))
            assert (await wait_ready(piece))["checks"] == {
                "postgres": "ok",
                "rabbitmq": "ok",
                "redis": "ok",
            }
        statuses = await piece.wait_final(ids)
        assert set(statuses.values()) == {"delivered"}
        await piece.assert_charged_once(ids)


WORKER_CASES = {
    # id: (Settings field behind the proxy, route prefix)
    "rabbitmq": ("amqp_url", "614915712"),
    "postgres": ("database_url", "614915713"),
}


@pytest.mark.parametrize("case", ["rabbitmq", "postgres"])
async def test_workers_lose_dependency_mid_stream(
    settings: Settings, pool: asyncpg.Pool, case: str
) -> None:
    dependency, prefix = WORKER_CASES[case]
    async with (
        # The carrier keeps offering receipts the gateway cannot make durable yet, as real
        # carriers do for hours.
        fault_slice(
            settings, pool, f"fw-{case}", prefix, receipt_max_attempts=1000, receipt_retry_delay=0.5
        ) as piece,
        proxy_for(getattr(settings, dependency)) as proxy,
    ):
        worker_settings = with_settings(
            piece.settings, **{dependency: proxied(getattr(settings, dependency), proxy)}
        )
        async with workers(worker_settings), api_server(piece.settings) as piece.api:
            sender = asyncio.ensure_future(piece.send_many(150))
            await piece.wait_count(20)
            await proxy.cut(reset=True)
            ids = await sender
            await wait_refused(proxy, 2)
            await proxy.restore()
            # The client's reconnect interval (5 s for RabbitMQ) plus the work left.
            statuses = await piece.wait_final(ids, within=30.0)
        assert set(statuses.values()) == {"delivered"}
        await piece.assert_charged_once(ids)
        await piece.assert_parts_unique(ids)


async def wait_refused(proxy: TcpProxy, attempts: int) -> None:
    """Until the workers have tried, and failed, to reconnect ``attempts`` times."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + FINAL_DEADLINE
    while proxy.refused < attempts:
        assert loop.time() < deadline, f"{proxy.refused} reconnect attempts of {attempts}"
        await asyncio.sleep(0.05)
