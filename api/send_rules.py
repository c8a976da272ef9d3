"""Each account's send rules (default sender, approved sender IDs, opt-outs), remembered by this
API process for ``ttl`` seconds.

A send needs them on every request; reading them per request would put a PostgreSQL round trip
on the accept path. Like the key cache (AUTH_CACHE_SECONDS, the same setting), the price is that
a change (an approval, an opt-out) takes up to ``ttl`` to be seen by a send. The process that
made an opt-out or an approval change over the API forgets the account at once.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from uuid import UUID

import asyncpg

from broker.store.send_checks import SendRules, opted_out_among, send_rules


class SendRulesCache:
    def __init__(self, ttl: float, max_entries: int = 10_000) -> None:
        self.ttl = ttl
        self._max = max_entries
        self._entries: dict[UUID, tuple[float, SendRules]] = {}

    async def rules(self, pool: asyncpg.Pool, account_id: UUID) -> SendRules:
        now = time.monotonic()
        hit = self._entries.get(account_id)
        if hit is not None and now - hit[0] < self.ttl:
            return hit[1]
        found = await send_rules(pool, account_id)
        if self.ttl > 0:
            if len(self._entries) >= self._max:
                self._entries = {k: v for k, v in self._entries.items() if now - v[0] < self.ttl}
                if len(self._entries) >= self._max:
                    self._entries.clear()
            self._entries[account_id] = (now, found)
        return found

    async def opted_out(
        self, pool: asyncpg.Pool, account_id: UUID, rules: SendRules, recipients: Sequence[str]
    ) -> frozenset[str]:
        if rules.opted_out is not None:
            return rules.opted_out.intersection(recipients)
        return await opted_out_among(pool, account_id, recipients)

    def forget(self, account_id: UUID) -> None:
        """The account's rules changed here: the next send reads them again."""
        self._entries.pop(account_id, None)
