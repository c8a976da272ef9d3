"""The ledger: every credit movement (top-up, adjustment, charge, refund) is written here.

Nothing else writes the ledger table or accounts.balance (tests/test_store.py greps the tree).
A top-up, adjustment or refund moves a balance and writes its ledger rows in one statement;
a charge does it in two or three, inside the charge worker's transaction, so balance = sum of
the ledger holds at every commit.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum
from functools import partial
from typing import Protocol
from uuid import UUID

import asyncpg

from broker import metrics
from broker.db import after_commit
from broker.store import Db


class LedgerReason(StrEnum):
    """ledger.reason (the schema's check constraint): why a balance moved."""

    TOPUP = "topup"
    CHARGE = "charge"
    REFUND = "refund"
    ADJUSTMENT = "adjustment"


#: An operator's top-up (positive) or adjustment (negative); no row when the balance would go
#: below zero or the account does not exist.
CREDIT = """
WITH moved AS (
    UPDATE accounts SET balance = balance + $2
     WHERE id = $1 AND balance + $2 >= 0
    RETURNING id, balance
), entry AS (
    INSERT INTO ledger (account_id, amount, reason) SELECT id, $2, $3 FROM moved
)
SELECT balance FROM moved
"""

# The ledger's unique index on (message_id) for refunds makes this safe to run twice: only
# refunds actually written move a balance. A failed message and a canceled one (scheduled,
# canceled before it was due) get their cost back alike. Returns each account's refund, so
# the refunded credits are counted exactly.
REFUND_FAILED = """
WITH r AS (
    INSERT INTO ledger (account_id, amount, reason, message_id)
    SELECT account_id, cost, 'refund', id FROM messages
     WHERE id = ANY($1::uuid[]) AND cost > 0 AND status IN ('failed', 'canceled')
    ON CONFLICT (message_id) WHERE reason = 'refund' DO NOTHING
    RETURNING account_id, amount
)
UPDATE accounts a SET balance = a.balance + s.total
  FROM (SELECT account_id, sum(amount) AS total FROM r GROUP BY account_id) s
 WHERE a.id = s.account_id
RETURNING s.total
"""

#: Each account's batch total in one statement; an account whose balance cannot cover it is
#: not returned (and not touched).
CHARGE_ACCOUNTS = """
UPDATE accounts a SET balance = a.balance - t.total
  FROM unnest($1::uuid[], $2::numeric[]) AS t(id, total)
 WHERE a.id = t.id AND a.balance >= t.total
RETURNING a.id
"""

#: The balances of accounts that cannot cover their batch, locked until the transaction ends
#: (in id order, so two charge workers never deadlock on them).
LOCK_BALANCES = """
SELECT id, balance FROM accounts WHERE id = ANY($1::uuid[]) ORDER BY id FOR UPDATE
"""

#: What was taken of each locked balance, worked out against the locked value.
TAKE = """
UPDATE accounts a SET balance = a.balance - t.total
  FROM unnest($1::uuid[], $2::numeric[]) AS t(id, total)
 WHERE a.id = t.id AND a.balance >= t.total
"""

CHARGE_ENTRIES = """
INSERT INTO ledger (account_id, amount, reason, message_id)
SELECT a, -c, 'charge', m FROM unnest($1::uuid[], $2::numeric[], $3::uuid[]) AS t(a, c, m)
 WHERE c > 0
"""

BOOKS = """
SELECT a.id, a.name, a.region, a.status, a.balance,
       (SELECT coalesce(sum(amount), 0) FROM ledger l WHERE l.account_id = a.id) AS ledger_sum
  FROM accounts a
 WHERE a.id = $1
"""


async def credit(conn: asyncpg.Connection, account_id: UUID, amount: Decimal) -> Decimal | None:
    """Add ``amount`` (a top-up; negative: an adjustment) and return the new balance.

    None when nothing moved: the account does not exist or its balance would go below zero.
    """
    if amount == 0:
        raise ValueError("a ledger movement cannot be zero")
    reason = LedgerReason.TOPUP if amount > 0 else LedgerReason.ADJUSTMENT
    balance: Decimal | None = await conn.fetchval(CREDIT, account_id, amount, reason)
    return balance


async def refund_failed(db: Db, message_ids: list[UUID]) -> Decimal:
    """Give a failed (or canceled) message's cost back, once however often this runs for it;
    the credits given back by this call. In a transaction, open it with broker.db.transaction:
    the refund is counted once it commits."""
    if not message_ids:
        return Decimal(0)
    rows = await db.fetch(REFUND_FAILED, message_ids)
    total = sum((r["total"] for r in rows), Decimal(0))
    after_commit(db, partial(metrics.count_credits, metrics.CREDITS_REFUNDED, total))
    return total


class Chargeable(Protocol):
    """A message to charge: its account and its cost (zero: nothing to take)."""

    @property
    def id(self) -> UUID: ...

    @property
    def account_id(self) -> UUID: ...

    @property
    def cost(self) -> Decimal: ...


async def charge(conn: asyncpg.Connection, messages: Sequence[Chargeable]) -> list[UUID]:
    """Take every message's cost and write its charge row; return the ids the balance could
    not cover (nothing taken for them). Run it inside broker.db.transaction(), whose commit
    counts the credits taken.

    Each account is charged its batch total in one statement. An account whose balance cannot
    cover the whole batch has its balance locked and pays message by message, in arrival
    order, for as long as it lasts (then one statement takes that sum): a send larger than
    the balance charges what it can and the rest fails, at two round trips whatever its size.
    """
    totals: dict[UUID, Decimal] = defaultdict(Decimal)
    for m in messages:
        totals[m.account_id] += m.cost
    covered = {
        r["id"] for r in await conn.fetch(CHARGE_ACCOUNTS, list(totals), list(totals.values()))
    }
    charged = [m for m in messages if m.account_id in covered]
    unfunded: list[UUID] = []
    short = [a for a in totals if a not in covered]
    if short:
        left = {r["id"]: r["balance"] for r in await conn.fetch(LOCK_BALANCES, short)}
        taken: dict[UUID, Decimal] = defaultdict(Decimal)
        for m in messages:
            if m.account_id in covered:
                continue
            have = left.get(m.account_id, Decimal(0))
            if m.cost <= have:
                left[m.account_id] = have - m.cost
                taken[m.account_id] += m.cost
                charged.append(m)
            else:
                unfunded.append(m.id)
        paying = [a for a, total in taken.items() if total > 0]
        await conn.execute(TAKE, paying, [taken[a] for a in paying])
    await conn.execute(
        CHARGE_ENTRIES,
        [m.account_id for m in charged],
        [m.cost for m in charged],
        [m.id for m in charged],
    )
    taken_total = sum((m.cost for m in charged), Decimal(0))
    after_commit(conn, partial(metrics.count_credits, metrics.CREDITS_CHARGED, taken_total))
    return unfunded


@dataclass(frozen=True, slots=True)
class Books:
    """An account's balance beside the sum of its ledger: they must always be equal."""

    id: UUID
    name: str
    region: str
    status: str
    balance: Decimal
    ledger_sum: Decimal

    @property
    def balanced(self) -> bool:
        return self.balance == self.ledger_sum


async def books(db: Db, account_id: UUID) -> Books | None:
    row = await db.fetchrow(BOOKS, account_id)
    if row is None:
        return None
    return Books(
        row["id"], row["name"], row["region"], row["status"], row["balance"], row["ledger_sum"]
    )
