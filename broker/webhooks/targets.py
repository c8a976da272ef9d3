"""Where an account's events go, cached for a moment so a burst of events costs one query.

A webhook deleted (or added) during the cache's lifetime may still get (or miss) one event;
that is the price of not querying PostgreSQL for every AMQP message. Likewise a rotated callback
secret signs from the next load on (within ``DEFAULT_TTL``); the previous one is cached with it
and its 24-hour grace is judged at signing time, so an old cache entry never outlives it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

import asyncpg

from broker.store import webhooks as webhooks_db
from broker.webhooks.formats import STANDARD, carries
from broker.webhooks.signing import previous_secret_expiry

DEFAULT_TTL = 2.0
_PRUNE_ABOVE = 10_000


@dataclass(frozen=True, slots=True)
class Endpoint:
    id: UUID
    url: str
    events: frozenset[str]
    secret: str
    #: What the endpoint's body looks like (broker.webhooks.formats).
    format: str = STANDARD


@dataclass(frozen=True, slots=True)
class AccountTargets:
    endpoints: tuple[Endpoint, ...]
    #: accounts.webhook_secret, which signs per-message callback_url deliveries; None if the
    #: account does not exist.
    callback_secret: str | None
    #: The callback secret before the last rotation, and when it stops signing.
    previous_callback_secret: str | None = None
    previous_expires_at: datetime | None = None

    def callback_secrets(self, now: datetime) -> tuple[str, ...]:
        """The secrets that sign a callback_url delivery at ``now``: the current one, and the
        previous one during its grace period (empty: the account does not exist)."""
        if self.callback_secret is None:
            return ()
        if (
            self.previous_callback_secret is not None
            and self.previous_expires_at is not None
            and now < self.previous_expires_at
        ):
            return (self.callback_secret, self.previous_callback_secret)
        return (self.callback_secret,)

    def subscribed(self, event_type: str) -> list[Endpoint]:
        return [
            e for e in self.endpoints if event_type in e.events and carries(e.format, event_type)
        ]

    def endpoint(self, webhook_id: UUID) -> Endpoint | None:
        return next((e for e in self.endpoints if e.id == webhook_id), None)


NO_TARGETS = AccountTargets((), None)


class TargetCache:
    def __init__(
        self,
        pool: asyncpg.Pool,
        *,
        ttl: float = DEFAULT_TTL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._pool = pool
        self._ttl = ttl
        self._clock = clock
        self._entries: dict[UUID, tuple[float, AccountTargets]] = {}

    async def get(self, account_ids: Iterable[UUID]) -> dict[UUID, AccountTargets]:
        now = self._clock()
        found: dict[UUID, AccountTargets] = {}
        missing: list[UUID] = []
        for account_id in set(account_ids):
            entry = self._entries.get(account_id)
            if entry is not None and entry[0] > now:
                found[account_id] = entry[1]
            else:
                missing.append(account_id)
        if missing:
            loaded = await self._load(missing)
            self._prune(now)
            expires = now + self._ttl
            for account_id in missing:
                targets = loaded.get(account_id, NO_TARGETS)
                self._entries[account_id] = (expires, targets)
                found[account_id] = targets
        return found

    async def _load(self, account_ids: list[UUID]) -> dict[UUID, AccountTargets]:
        secrets: dict[UUID, tuple[str, str | None, datetime | None]] = {}
        endpoints: dict[UUID, list[Endpoint]] = {}
        for row in await webhooks_db.targets(self._pool, account_ids):
            secrets[row.account_id] = (
                row.webhook_secret,
                row.previous_webhook_secret,
                previous_secret_expiry(row.webhook_secret_rotated_at),
            )
            bucket = endpoints.setdefault(row.account_id, [])
            if row.webhook_id is not None and row.url is not None and row.secret is not None:
                bucket.append(
                    Endpoint(row.webhook_id, row.url, frozenset(row.events), row.secret, row.format)
                )
        return {a: AccountTargets(tuple(endpoints[a]), *secrets[a]) for a in secrets}

    def _prune(self, now: float) -> None:
        if len(self._entries) > _PRUNE_ABOVE:
            self._entries = {k: v for k, v in self._entries.items() if v[0] > now}
