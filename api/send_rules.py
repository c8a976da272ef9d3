"""Each account's send rules (default sender, approved sender IDs, opt-outs), remembered by this
API process for ``ttl`` seconds.

A send needs them on every request; reading them per request would put a PostgreSQL round trip
on the accept path. Like the key cache (AUTH_CACHE_SECONDS, the same setting), the price is that
a change (an approval, an opt-out) takes up to ``ttl`` to be seen by a send. The process that
made an opt-out or an approval change over the API forgets the account at once.
"""

from __future__ import annotations

from collections.abc import Sequence
from uuid import UUID

import asyncpg

from api.ttl_cache import TtlCache
from broker.store.send_checks import SendRules, opted_out_among, send_rules


class SendRulesCache:
    def __init__(self, ttl: float, max_entries: int = 10_000) -> None:
        self._cache: TtlCache[UUID, SendRules] = TtlCache(ttl, max_entries)

    async def rules(self, pool: asyncpg.Pool, account_id: UUID) -> SendRules:
        return await self._cache.get_or_load(account_id, lambda: send_rules(pool, account_id))

    async def opted_out(
        self, pool: asyncpg.Pool, account_id: UUID, rules: SendRules, recipients: Sequence[str]
    ) -> frozenset[str]:
        if rules.opted_out is not None:
            return rules.opted_out.intersection(recipients)
        return await opted_out_among(pool, account_id, recipients)

    def forget(self, account_id: UUID) -> None:
        """The account's rules changed here: the next send reads them again."""
        self._cache.forget(account_id)
