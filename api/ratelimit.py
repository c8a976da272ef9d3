"""Per-key rate limits shared by every API process: GCRA in one Lua script on Redis.

Each check is one round trip (EVALSHA of a script loaded once; redis-py loads it again by
itself if Redis forgot it). A key's state is one Redis string, its theoretical arrival time
(TAT) in microseconds of Redis's own clock, so every process agrees on time; it expires by
itself once the key's allowance is full again. A key with ``rate_limit`` N may burst N
requests, then one more every 60/N seconds.

Redis holds nothing that must not be lost. When it is unreachable or slow (a short socket
timeout), requests go on unchecked (fail open), a counter says how many, and Redis is left
alone for a moment (a circuit breaker) so an outage does not cost every request a timeout.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from uuid import UUID

import structlog
from aiohttp import web
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.commands.core import AsyncScript
from redis.exceptions import RedisError

from api.metrics import RATE_LIMIT_UNAVAILABLE
from broker.config import Settings

log = structlog.get_logger(__name__)

PERIOD_US = 60_000_000
#: After a failed check, requests skip Redis for this long before one tries it again.
BREAKER_SECONDS = 1.5

#: KEYS[1]: the key's state. ARGV[1]: the limit per minute; ARGV[2]: now in microseconds, or
#: empty for Redis's clock. Answers {allowed, remaining, reset seconds, retry-after seconds}:
#: reset is when the key's allowance is full again, retry-after (refusals) when one more fits.
GCRA = """
local limit = tonumber(ARGV[1])
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
local new_tat = tat + interval
local allow_at = new_tat - burst
if allow_at > now then
  return {0, 0, math.ceil((tat - now) / 1000000), math.ceil((allow_at - now) / 1000000)}
end
local ttl_ms = math.ceil((new_tat - now) / 1000)
redis.call('SET', KEYS[1], string.format('%d', new_tat), 'PX', ttl_ms)
return {1, math.floor((burst - (new_tat - now)) / interval), math.ceil(ttl_ms / 1000), 0}
"""


@dataclass(frozen=True, slots=True)
class Verdict:
    allowed: bool
    remaining: int
    #: Seconds until the key's whole allowance is back.
    reset: int
    #: Seconds until one more request fits (refusals only; at least 1).
    retry_after: int


def open_redis(settings: Settings) -> Redis:
    """A client that gives up fast: one try, ``redis_timeout`` to connect and to answer."""
    return Redis.from_url(
        settings.redis_url,
        socket_timeout=settings.redis_timeout,
        socket_connect_timeout=settings.redis_timeout,
        retry=Retry(NoBackoff(), 0),
        health_check_interval=0,
    )


class RateLimiter:
    """GCRA per API key on a shared Redis; ``check`` answers None when Redis cannot say."""

    def __init__(self, prefix: str, *, breaker_seconds: float = BREAKER_SECONDS) -> None:
        self.prefix = f"{prefix}:ratelimit:"
        self.breaker_seconds = breaker_seconds
        self._redis: Redis | None = None
        self._script: AsyncScript | None = None
        #: monotonic time before which Redis is not tried; 0 when Redis is believed up.
        self._skip_until = 0.0
        self._outage = False

    def use(self, client: Redis | None) -> None:
        """Attach the app's client (at startup), or detach it (at cleanup)."""
        self._redis = client
        self._script = None if client is None else client.register_script(GCRA)

    @property
    def available(self) -> bool:
        """False while in an outage (the last try failed)."""
        return self._redis is not None and not self._outage

    def key(self, key_id: UUID | str) -> str:
        return f"{self.prefix}{key_id}"

    async def check(
        self, key_id: UUID | str, limit: int, now_us: int | None = None
    ) -> Verdict | None:
        """Count one request of ``key_id`` against ``limit`` per minute; None: unchecked."""
        script = self._script
        if script is None:
            RATE_LIMIT_UNAVAILABLE.inc()
            return None
        if self._skip_until:
            moment = time.monotonic()
            if moment < self._skip_until:
                RATE_LIMIT_UNAVAILABLE.inc()
                return None
            # This request probes; the others keep skipping until it has an answer.
            self._skip_until = moment + self.breaker_seconds
        try:
            answer = await script(
                keys=[self.key(key_id)], args=[limit, "" if now_us is None else now_us]
            )
        except (TimeoutError, RedisError, OSError) as exc:
            self._failed(exc)
            RATE_LIMIT_UNAVAILABLE.inc()
            return None
        if self._skip_until:
            self._skip_until = 0.0
        if self._outage:
            self._outage = False
            log.info("rate limits checked again: Redis answers")
        allowed, remaining, reset, retry_after = (int(v) for v in answer)
        return Verdict(bool(allowed), max(0, remaining), max(1, reset), max(1, retry_after))

    def _failed(self, exc: BaseException) -> None:
        self._skip_until = time.monotonic() + self.breaker_seconds
        if not self._outage:
            self._outage = True
            log.warning(
                "rate limits unchecked: Redis unreachable, requests go on (fail open)",
                error=type(exc).__name__,
                detail=str(exc)[:200],
            )

    async def ping(self) -> bool:
        """Whether Redis answers now (for /readyz); never raises."""
        if self._redis is None:
            return False
        try:
            return bool(await self._redis.ping())
        except (TimeoutError, RedisError, OSError):
            return False


LIMITER = web.AppKey("rate_limiter", RateLimiter)
