"""Per-key rate limits shared by every API process: GCRA in one Lua script on Redis.

Each check is one round trip (EVALSHA of a script loaded once; loaded again if Redis forgot
it). A key's state is one Redis string, its theoretical arrival time (TAT) in microseconds of
Redis's own clock, so every process agrees on time; it expires by itself once the key's
allowance is full again. A key with ``rate_limit`` N may burst N requests, then one more
every 60/N seconds.

Redis holds nothing that must not be lost. When it is unreachable or slow (a short socket
timeout), requests go on unchecked (fail open), a counter says how many, and Redis is left
alone for a moment (a circuit breaker) so an outage does not cost every request a timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import time
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import structlog
from aiohttp import web
from redis.asyncio import Redis
from redis.asyncio.connection import Connection
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, RedisError, ResponseError

from api.metrics import RATE_LIMIT_UNAVAILABLE
from broker.config import Settings

log = structlog.get_logger(__name__)

#: After a failed check, requests skip Redis for this long before one tries it again.
BREAKER_SECONDS = 1.5

#: KEYS[1]: the key's state. ARGV[1]: the limit per minute; ARGV[2]: now in microseconds, or
#: empty for Redis's clock; ARGV[3]: how many requests of the key to count, one after another.
#: Answers, per request, {allowed, remaining, reset seconds, retry-after seconds} one after
#: another in one flat list: reset is when the key's allowance is full again, retry-after
#: (refusals) when one more fits.
GCRA = """
local limit = tonumber(ARGV[1])
local count = tonumber(ARGV[3])
local now
if ARGV[2] ~= '' then
  now = tonumber(ARGV[2])
else
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000000 + tonumber(t[2])
end
local period = 60000000
local interval = math.max(1, math.floor(period / limit))
local burst = interval * limit
local tat = tonumber(redis.call('GET', KEYS[1])) or now
if tat < now then tat = now end
local counted = false
local out = {}
for i = 1, count do
  local new_tat = tat + interval
  local allow_at = new_tat - burst
  if allow_at > now then
    out[#out + 1] = 0
    out[#out + 1] = 0
    out[#out + 1] = math.ceil((tat - now) / 1000000)
    out[#out + 1] = math.ceil((allow_at - now) / 1000000)
  else
    tat = new_tat
    counted = true
    out[#out + 1] = 1
    out[#out + 1] = math.floor((burst - (new_tat - now)) / interval)
    out[#out + 1] = math.ceil(math.ceil((new_tat - now) / 1000) / 1000)
    out[#out + 1] = 0
  end
end
if counted then
  redis.call('SET', KEYS[1], string.format('%d', tat), 'PX', math.ceil((tat - now) / 1000))
end
return out
"""


@dataclass(frozen=True, slots=True)
class Verdict:
    allowed: bool
    remaining: int
    #: Seconds until the key's whole allowance is back.
    reset: int
    #: Seconds until one more request fits (refusals only; at least 1).
    retry_after: int


def _no_client_info() -> dict[str, Any]:
    """Skip CLIENT SETINFO on connect: two round trips per new connection, for a label."""
    try:
        from redis.driver_info import DriverInfo
    except ImportError:  # redis-py before 7
        return {"lib_name": None, "lib_version": None}
    return {"driver_info": DriverInfo(name=None, lib_version=None)}


def open_redis(settings: Settings) -> Redis:
    """A client that gives up fast: one try, ``redis_timeout`` to connect and to answer."""
    client: Redis = Redis.from_url(
        settings.redis_url,
        socket_timeout=settings.redis_timeout,
        socket_connect_timeout=settings.redis_timeout,
        retry=Retry(NoBackoff(), 0),
        health_check_interval=0,
        **_no_client_info(),
    )
    return client


#: One pending check: (Redis key, limit, now in µs or "", where its answer goes).
_Pending = tuple[str, int, int | str, "asyncio.Future[Verdict | None]"]


class RateLimiter:
    """GCRA per API key on a shared Redis; ``check`` answers None when Redis cannot say.

    Checks made while a round trip is under way wait for it to end and then go together, as
    EVALSHAs pipelined in one write on the limiter's one connection: still one round trip per
    request, but one write and one read for many requests under load, and no storm of new
    connections (each a handshake that a busy machine may not finish within the timeout).
    """

    def __init__(self, prefix: str, *, breaker_seconds: float = BREAKER_SECONDS) -> None:
        self.prefix = f"{prefix}:ratelimit:"
        self.breaker_seconds = breaker_seconds
        self._redis: Redis | None = None
        self._sha = hashlib.sha1(GCRA.encode()).hexdigest()
        self._queue: list[_Pending] = []
        self._flusher: asyncio.Task[None] | None = None
        #: The connection the checks go on, taken from the client's pool and kept.
        self._conn: Connection | None = None
        #: monotonic time before which Redis is not tried; 0 when Redis is believed up.
        self._skip_until = 0.0
        self._outage = False

    def use(self, client: Redis | None) -> None:
        """Attach the app's client (at startup)."""
        self._redis = client

    async def close(self) -> None:
        """Detach the client (at cleanup); checks still waiting go on unchecked."""
        redis, self._redis = self._redis, None
        if self._flusher is not None:
            self._flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._flusher
            self._flusher = None
        if self._conn is not None and redis is not None:
            await redis.connection_pool.release(self._conn)
        self._conn = None
        self._answer_all(self._queue, None)
        self._queue = []

    def key(self, key_id: UUID | str) -> str:
        return f"{self.prefix}{key_id}"

    async def check(
        self, key_id: UUID | str, limit: int, now_us: int | None = None
    ) -> Verdict | None:
        """Count one request of ``key_id`` against ``limit`` per minute; None: unchecked."""
        if self._redis is None or (self._skip_until and time.monotonic() < self._skip_until):
            RATE_LIMIT_UNAVAILABLE.inc()
            return None
        answer: asyncio.Future[Verdict | None] = asyncio.get_running_loop().create_future()
        self._queue.append((self.key(key_id), limit, "" if now_us is None else now_us, answer))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush())
        verdict = await answer
        if verdict is None:
            RATE_LIMIT_UNAVAILABLE.inc()
        return verdict

    async def _flush(self) -> None:
        while self._queue:
            batch, self._queue = self._queue, []
            if self._skip_until:
                moment = time.monotonic()
                if moment < self._skip_until:
                    self._answer_all(batch, None)
                    continue
                # This batch probes; checks arriving meanwhile are let through unchecked.
                self._skip_until = moment + self.breaker_seconds
            try:
                verdicts = await self._run(batch)
            except asyncio.CancelledError:
                self._answer_all(batch + self._queue, None)
                self._queue = []
                raise
            except Exception as exc:  # noqa: BLE001 - whatever Redis did, requests go on
                self._failed(exc)
                self._answer_all(batch, None)
                continue
            self._recovered()
            for (_, _, _, answer), verdict in zip(batch, verdicts, strict=True):
                if not answer.done():
                    answer.set_result(verdict)

    async def _run(self, batch: list[_Pending]) -> list[Verdict | None]:
        """One write and its replies for the batch; the script is loaded if Redis lost it.
        The checks of one key go as one EVALSHA that counts them in order: a busy key's
        requests cost Redis and this process one command per batch, not one each."""
        redis = self._redis
        if redis is None:
            return [None] * len(batch)
        groups: dict[tuple[str, int, int | str], list[int]] = {}
        for index, (key, limit, now, _) in enumerate(batch):
            groups.setdefault((key, limit, now), []).append(index)
        commands = [
            ("EVALSHA", self._sha, 1, key, limit, now, len(indexes))
            for (key, limit, now), indexes in groups.items()
        ]
        reused = self._conn is not None
        try:
            replies = await self._send(redis, commands)
        except RedisConnectionError:
            if not reused:
                raise
            # The kept connection had died while idle (a Redis restart, a proxy): once more on a
            # new one. Should the first write have run, the key is counted twice, once.
            replies = await self._send(redis, commands)
        if any(isinstance(r, NoScriptError) for r in replies):
            await redis.script_load(GCRA)
            replies = await self._send(redis, commands)
        verdicts: list[Verdict | None] = [None] * len(batch)
        for indexes, reply in zip(groups.values(), replies, strict=True):
            if isinstance(reply, Exception):  # e.g. OOM: Redis cannot count, as if down
                raise reply
            numbers = [int(v) for v in reply]
            for position, index in enumerate(indexes):
                allowed, remaining, reset, retry_after = numbers[4 * position : 4 * position + 4]
                verdicts[index] = Verdict(
                    bool(allowed), max(0, remaining), max(1, reset), max(1, retry_after)
                )
        return verdicts

    async def _send(self, redis: Redis, commands: list[tuple[Any, ...]]) -> list[Any]:
        """The commands in one write on the limiter's own connection, then every reply (an
        error reply is kept in its place, so the connection stays in step)."""
        conn = self._conn
        if conn is None:
            conn = self._conn = await redis.connection_pool.get_connection()  # type: ignore[no-untyped-call]
        try:
            await conn.send_packed_command(conn.pack_commands(commands), check_health=False)
            replies: list[Any] = []
            for _ in commands:
                try:
                    replies.append(await conn.read_response())
                except ResponseError as exc:
                    replies.append(exc)
            return replies
        except BaseException:
            self._conn = None
            await conn.disconnect(nowait=True)
            await redis.connection_pool.release(conn)
            # The pool's idle connections (SCRIPT LOAD's, /readyz's) went the same way.
            await redis.connection_pool.disconnect(inuse_connections=False)
            raise

    @staticmethod
    def _answer_all(batch: list[_Pending], verdict: Verdict | None) -> None:
        for _, _, _, answer in batch:
            if not answer.done():
                answer.set_result(verdict)

    def _failed(self, exc: BaseException) -> None:
        self._skip_until = time.monotonic() + self.breaker_seconds
        if not self._outage:
            self._outage = True
            log.warning(
                "rate limits unchecked: Redis unreachable, requests go on (fail open)",
                error=type(exc).__name__,
                detail=str(exc)[:200],
            )

    def _recovered(self) -> None:
        self._skip_until = 0.0
        if self._outage:
            self._outage = False
            log.info("rate limits checked again: Redis answers")

    async def ping(self) -> bool:
        """Whether Redis answers now (for /readyz); never raises."""
        if self._redis is None:
            return False
        for _ in range(2):  # a pooled connection may have died while idle: once more
            try:
                return bool(await self._redis.ping())
            except RedisConnectionError:
                continue
            except (TimeoutError, RedisError, OSError):
                return False
        return False


LIMITER = web.AppKey("rate_limiter", RateLimiter)
