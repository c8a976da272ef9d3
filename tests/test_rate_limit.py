"""Rate limits shared by every API process: GCRA on the real Redis, two API processes sharing
one key's limit, the X-RateLimit headers on every answer, and fail-open when Redis goes away."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, replace
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest
from redis.asyncio import Redis

from api.ratelimit import BREAKER_SECONDS, RateLimiter, open_redis
from api.server import start_api
from broker import accounts
from broker.config import Settings

REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
SECOND = 1_000_000  # the script's clock counts microseconds


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _prefix() -> str:
    return f"rltest-{uuid.uuid4().hex[:10]}"


async def _drop_keys(client: Redis, prefix: str) -> None:
    async for key in client.scan_iter(match=f"{prefix}:*", count=500):
        await client.delete(key)


@pytest.fixture
async def redis_client() -> AsyncIterator[Redis]:
    client = Redis.from_url(REDIS_URL)
    yield client
    await client.aclose()


async def _new_key(pool: asyncpg.Pool, rate_limit: int) -> tuple[uuid.UUID, str]:
    async with pool.acquire() as conn:
        account_id = await accounts.create_account(
            conn, f"rl-{uuid.uuid4().hex[:8]}", Decimal(1000), "US"
        )
        key = await accounts.create_key(conn, account_id, rate_limit=rate_limit)
    return account_id, key.secret


def _auth(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


# --- GCRA arithmetic, on the real Redis with a fake clock ----------------------------------


async def test_gcra_bursts_to_the_limit_then_refuses_then_recovers(redis_client: Redis) -> None:
    prefix = _prefix()
    limiter = RateLimiter(prefix)
    client = open_redis(replace(Settings(), redis_url=REDIS_URL))
    limiter.use(client)
    key_id = uuid.uuid4()
    t0 = 1_900_000_000 * SECOND
    try:
        answers = [await limiter.check(key_id, 3, now_us=t0) for _ in range(3)]
        assert [(a.allowed, a.remaining) for a in answers if a] == [(True, 2), (True, 1), (True, 0)]
        assert [a.reset for a in answers if a] == [20, 40, 60]
        refused = await limiter.check(key_id, 3, now_us=t0)
        assert refused is not None and not refused.allowed
        # One request every 20 s comes back; the whole allowance after 60 s.
        assert (refused.retry_after, refused.remaining, refused.reset) == (20, 0, 60)
        late = await limiter.check(key_id, 3, now_us=t0 + 19_500_000)
        assert late is not None and not late.allowed and late.retry_after == 1
        back = await limiter.check(key_id, 3, now_us=t0 + 20 * SECOND)
        assert back is not None and back.allowed and back.remaining == 0
        again = await limiter.check(key_id, 3, now_us=t0 + 21 * SECOND)
        assert again is not None and not again.allowed and again.retry_after == 19
        # Idle for a minute: the full burst again.
        rested = [await limiter.check(key_id, 3, now_us=t0 + 80 * SECOND) for _ in range(4)]
        assert [a.allowed for a in rested if a] == [True, True, True, False]
        # The state expires by itself once the allowance would be full again.
        ttl = await redis_client.pttl(limiter.key(key_id))
        assert 0 < ttl <= 60_000
        # Another key is counted apart.
        other = await limiter.check(uuid.uuid4(), 3, now_us=t0 + 80 * SECOND)
        assert other is not None and other.allowed and other.remaining == 2
    finally:
        await _drop_keys(redis_client, prefix)
        await limiter.close()
        await client.aclose()


async def test_checks_of_one_key_in_one_batch_count_in_order_as_one_command(
    redis_client: Redis,
) -> None:
    """Concurrent checks go together: each key's as one EVALSHA that counts them in order,
    with the answers sequential checks would have had."""
    prefix = _prefix()
    sent: list[int] = []

    class Counting(RateLimiter):
        async def _send(self, redis: Redis, commands: list[tuple[Any, ...]]) -> list[Any]:
            sent.append(len(commands))
            return await super()._send(redis, commands)

    limiter = Counting(prefix)
    client = open_redis(replace(Settings(), redis_url=REDIS_URL))
    limiter.use(client)
    busy, quiet = uuid.uuid4(), uuid.uuid4()
    t0 = 1_900_000_000 * SECOND
    try:
        answers = await asyncio.gather(
            *(limiter.check(busy, 3, now_us=t0) for _ in range(5)),
            limiter.check(quiet, 3, now_us=t0),
        )
        assert sent[-1] == 2  # one command per key (after loading the script, if it had to)
        shown = [(a.allowed, a.remaining, a.reset, a.retry_after) for a in answers if a]
        assert shown == [
            (True, 2, 20, 1),
            (True, 1, 40, 1),
            (True, 0, 60, 1),
            (False, 0, 60, 20),
            (False, 0, 60, 20),
            (True, 2, 20, 1),
        ]
        # The refusals did not count: one request fits again 20 s later.
        back = await limiter.check(busy, 3, now_us=t0 + 20 * SECOND)
        assert back is not None and back.allowed and back.remaining == 0
    finally:
        await _drop_keys(redis_client, prefix)
        await limiter.close()
        await client.aclose()


async def test_gcra_large_limits_and_the_redis_clock(redis_client: Redis) -> None:
    prefix = _prefix()
    limiter = RateLimiter(prefix)
    client = open_redis(replace(Settings(), redis_url=REDIS_URL))
    limiter.use(client)
    try:
        key_id = uuid.uuid4()
        # 1,000,000 a minute: 60 µs apart, a burst of a million.
        big = [await limiter.check(key_id, 1_000_000) for _ in range(50)]
        assert all(a is not None and a.allowed for a in big)
        assert big[-1] is not None and big[-1].remaining >= 1_000_000 - 50
        # Redis's clock (no `now` given): a limit of 2 refuses the third at once.
        small = uuid.uuid4()
        seen = [await limiter.check(small, 2) for _ in range(3)]
        assert [a.allowed for a in seen if a] == [True, True, False]
        assert seen[2] is not None and 29 <= seen[2].retry_after <= 30
        # Redis forgot the script (restart, SCRIPT FLUSH): it is loaded again by itself.
        await redis_client.script_flush()
        after = await limiter.check(small, 2)
        assert after is not None and not after.allowed
    finally:
        await _drop_keys(redis_client, prefix)
        await limiter.close()
        await client.aclose()


# --- two API processes sharing one limit ----------------------------------------------------


@dataclass
class TwoApis:
    urls: list[str]
    prefix: str


def _spawn_api(
    settings: Settings, prefix: str, port: int, log_path: Path
) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "DATABASE_URL": settings.database_url,
        "AMQP_URL": settings.amqp_url,
        "REDIS_URL": REDIS_URL,
        "QUEUE_PREFIX": prefix,
        "AUTH_CACHE_SECONDS": "0",
        "WEBHOOK_ALLOW_PRIVATE": "1",
        "LOG_FORMAT": "json",
    }
    with log_path.open("wb") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "cli.main", "api", "--host", "127.0.0.1", "--port", str(port)],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )


async def _wait_ready(url: str, process: subprocess.Popen[bytes], log_path: Path) -> None:
    deadline = time.monotonic() + 30
    async with aiohttp.ClientSession() as http:
        while True:
            try:
                async with http.get(f"{url}/readyz") as resp:
                    if resp.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"the API did not start:\n{log_path.read_text()}")
            await asyncio.sleep(0.2)


@pytest.fixture(scope="module")
def two_apis(settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TwoApis]:
    prefix = _prefix()
    logs = Path(tmp_path_factory.mktemp("rl-apis"))
    ports = [_free_port(), _free_port()]
    procs = [_spawn_api(settings, prefix, p, logs / f"api-{p}.log") for p in ports]
    urls = [f"http://127.0.0.1:{p}" for p in ports]
    try:

        async def ready() -> None:
            await asyncio.gather(
                *(
                    _wait_ready(u, p, logs / f"api-{port}.log")
                    for u, p, port in zip(urls, procs, ports, strict=True)
                )
            )

        asyncio.run(ready())
        yield TwoApis(urls, prefix)
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(timeout=20)

        async def drop() -> None:
            client = Redis.from_url(REDIS_URL)
            await _drop_keys(client, prefix)
            await client.aclose()

        asyncio.run(drop())


async def test_two_api_processes_share_one_limit(two_apis: TwoApis, pool: asyncpg.Pool) -> None:
    _, secret = await _new_key(pool, rate_limit=4)
    a, b = two_apis.urls
    async with aiohttp.ClientSession(headers=_auth(secret)) as http:
        remaining = []
        for url in (a, b, a, b):
            async with http.get(f"{url}/v1/balance") as resp:
                assert resp.status == 200, await resp.text()
                assert resp.headers["X-RateLimit-Limit"] == "4"
                remaining.append(int(resp.headers["X-RateLimit-Remaining"]))
        assert remaining == [3, 2, 1, 0]
        for url in (a, b):
            async with http.get(f"{url}/v1/balance") as resp:
                assert resp.status == 429
                body = await resp.json()
                assert body["error"]["code"] == "RATE_LIMIT_EXCEEDED"
                wait = body["error"]["retry_after"]
                # One more request every 15 s at 4 a minute.
                assert isinstance(wait, int) and 1 <= wait <= 15
                assert resp.headers["Retry-After"] == str(wait)
                assert resp.headers["X-RateLimit-Limit"] == "4"
                assert resp.headers["X-RateLimit-Remaining"] == "0"
                assert 1 <= int(resp.headers["X-RateLimit-Reset"]) <= 60


async def test_a_concurrent_burst_on_both_processes_gets_exactly_the_limit(
    two_apis: TwoApis, pool: asyncpg.Pool
) -> None:
    _, secret = await _new_key(pool, rate_limit=6)
    async with aiohttp.ClientSession(headers=_auth(secret)) as http:

        async def one(url: str) -> int:
            async with http.get(f"{url}/v1/balance") as resp:
                await resp.read()
                return resp.status

        statuses = await asyncio.gather(*(one(two_apis.urls[i % 2]) for i in range(16)))
    assert sorted(statuses) == [200] * 6 + [429] * 10


async def test_limit_headers_on_every_answer_to_a_known_key(
    two_apis: TwoApis, pool: asyncpg.Pool
) -> None:
    _, secret = await _new_key(pool, rate_limit=5)
    url = two_apis.urls[0]
    async with aiohttp.ClientSession(headers=_auth(secret)) as http:
        seen: list[tuple[int, str, str, str]] = []
        requests: list[tuple[str, str, Any]] = [
            ("GET", "/v1/balance", None),  # 200
            ("GET", f"/v1/messages/{uuid.uuid4()}", None),  # 404
            ("POST", "/v1/messages", {"to": "not a number", "body": "x"}),  # 400
            ("GET", "/v1/balance", None),
            ("GET", "/v1/balance", None),
            ("GET", "/v1/balance", None),  # 429
        ]
        for method, path, body in requests:
            async with http.request(method, f"{url}{path}", json=body) as resp:
                await resp.read()
                seen.append(
                    (
                        resp.status,
                        resp.headers["X-RateLimit-Limit"],
                        resp.headers["X-RateLimit-Remaining"],
                        resp.headers["X-RateLimit-Reset"],
                    )
                )
    assert [s[0] for s in seen] == [200, 404, 400, 200, 200, 429]
    assert [s[1] for s in seen] == ["5"] * 6
    assert [s[2] for s in seen] == ["4", "3", "2", "1", "0", "0"]
    assert all(1 <= int(s[3]) <= 60 for s in seen)
    # A key nobody knows gets no limit headers: there is no key to count against.
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"{url}/v1/balance", headers=_auth("sk_nope")) as resp,
    ):
        assert resp.status == 401
        assert "X-RateLimit-Limit" not in resp.headers


# --- Redis down: fail open, degraded, counted; back: enforced again ----------------------------


class ThrowawayRedis:
    """A redis-server of this test's own, stopped and started again on the same port."""

    def __init__(self) -> None:
        self.port = _free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    async def start(self) -> None:
        server = shutil.which("redis-server")
        assert server, "redis-server is not installed"
        self.process = subprocess.Popen(
            [server, "--port", str(self.port), "--bind", "127.0.0.1", "--save", ""]
            + ["--appendonly", "no", "--loglevel", "warning"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while True:
            client = Redis.from_url(self.url, socket_connect_timeout=0.2)
            try:
                if await client.ping():
                    return
            except Exception:  # noqa: BLE001 - not listening yet
                pass
            finally:
                await client.aclose()
            assert time.monotonic() < deadline, "redis-server did not start"
            await asyncio.sleep(0.05)

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=10)
            self.process = None


def _unchecked(metrics_text: str) -> float:
    found = re.search(r"^smsbroker_rate_limit_unavailable_total (\S+)$", metrics_text, re.M)
    assert found, "the counter is not exported"
    return float(found.group(1))


@pytest.fixture
async def throwaway_redis() -> AsyncIterator[ThrowawayRedis]:
    server = ThrowawayRedis()
    await server.start()
    try:
        yield server
    finally:
        server.stop()


async def test_redis_down_fails_open_and_recovers(
    settings: Settings,
    pool: asyncpg.Pool,
    throwaway_redis: ThrowawayRedis,
    capfd: pytest.CaptureFixture[str],
) -> None:
    account_id, secret = await _new_key(pool, rate_limit=1000)
    runner = await start_api(
        replace(settings, redis_url=throwaway_redis.url, queue_prefix=_prefix()), "127.0.0.1", 0
    )
    url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    send = {"to": "+16502530001", "body": "fail open"}
    try:
        async with aiohttp.ClientSession(headers=_auth(secret)) as http:

            async def ready() -> tuple[int, Any]:
                async with http.get(f"{url}/readyz") as resp:
                    return resp.status, await resp.json()

            async def unchecked() -> float:
                async with http.get(f"{url}/metrics") as resp:
                    return _unchecked(await resp.text())

            assert await ready() == (
                200,
                {"status": "ready", "checks": {"postgres": "ok", "rabbitmq": "ok", "redis": "ok"}},
            )
            async with http.post(f"{url}/v1/messages", json=send) as resp:
                assert resp.status == 202, await resp.text()
                assert resp.headers["X-RateLimit-Remaining"] == "999"
            before = await unchecked()

            throwaway_redis.stop()
            for _ in range(3):
                async with http.post(f"{url}/v1/messages", json=send) as resp:
                    assert resp.status == 202, await resp.text()
                    # Only the limit is known while nothing counts.
                    assert resp.headers["X-RateLimit-Limit"] == "1000"
                    assert "X-RateLimit-Remaining" not in resp.headers
            status, body = await ready()
            assert status == 200
            assert body == {
                "status": "degraded",
                "checks": {"postgres": "ok", "rabbitmq": "ok", "redis": "unreachable"},
            }
            assert await unchecked() >= before + 3
            # One warning for the outage, not one per request.
            out, err = capfd.readouterr()
            assert (out + err).count("rate limits unchecked") == 1, out + err

            # Redis back (empty, as after a restart): a limit of 2 holds again within seconds.
            await throwaway_redis.start()
            await pool.execute(
                "UPDATE api_keys SET rate_limit = 2 WHERE account_id = $1", account_id
            )
            assert (await ready())[1]["status"] == "ready"
            deadline = time.monotonic() + 5
            while True:
                async with http.get(f"{url}/v1/balance") as resp:
                    await resp.read()
                    if "X-RateLimit-Remaining" in resp.headers:
                        break
                assert time.monotonic() < deadline, "rate limits were not checked again"
                await asyncio.sleep(0.1)
            # That request counted; one more fits, then 429.
            statuses = []
            for _ in range(2):
                async with http.post(f"{url}/v1/messages", json=send) as resp:
                    await resp.read()
                    statuses.append(resp.status)
            assert statuses == [202, 429]
            out, err = capfd.readouterr()
            assert (out + err).count("rate limits checked again") == 1, out + err
    finally:
        await runner.cleanup()


async def test_a_redis_restart_while_idle_costs_no_check(
    throwaway_redis: ThrowawayRedis,
) -> None:
    """The limiter keeps one connection; one that died while idle is replaced at once, not
    taken for an outage (which would let requests through unchecked)."""
    limiter = RateLimiter(_prefix())
    client = open_redis(replace(Settings(), redis_url=throwaway_redis.url))
    limiter.use(client)
    try:
        first = await limiter.check(uuid.uuid4(), 5)
        assert first is not None and first.allowed
        throwaway_redis.stop()
        await throwaway_redis.start()
        key_id = uuid.uuid4()
        after = [await limiter.check(key_id, 2) for _ in range(3)]
        assert [v.allowed if v else None for v in after] == [True, True, False]
    finally:
        await limiter.close()
        await client.aclose()


async def test_a_slow_redis_costs_one_timeout_not_one_per_request(
    settings: Settings, pool: asyncpg.Pool
) -> None:
    """A Redis that accepts and never answers: one request waits the timeout, then the circuit
    breaker lets the next ones through without trying it."""
    accepted = 0
    held: list[asyncio.StreamWriter] = []

    async def black_hole(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal accepted
        accepted += 1
        held.append(writer)

    hole = await asyncio.start_server(black_hole, "127.0.0.1", 0)
    port = hole.sockets[0].getsockname()[1]
    _, secret = await _new_key(pool, rate_limit=1000)
    runner = await start_api(
        replace(settings, redis_url=f"redis://127.0.0.1:{port}/0", queue_prefix=_prefix()),
        "127.0.0.1",
        0,
    )
    url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    try:
        async with aiohttp.ClientSession(headers=_auth(secret)) as http:
            started = time.monotonic()
            for _ in range(8):
                async with http.get(f"{url}/v1/balance") as resp:
                    assert resp.status == 200
            spent = time.monotonic() - started
        # Without the breaker every request would connect again after a timeout (8
        # connections); with it, one try per 1.5 s.
        assert 1 <= accepted <= 1 + int(spent // BREAKER_SECONDS), (accepted, spent)
    finally:
        await runner.cleanup()
        for w in held:
            w.close()
        hole.close()
        await hole.wait_closed()
