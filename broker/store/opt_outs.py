"""Opt-outs: numbers that refused an account's messages, by API or by texting a keyword.

Every query is scoped to one account: another account's opt-out is never read or touched.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

import asyncpg

from broker.store import Db

_COLUMNS = "phone, source, keyword, inbound_id, created_at"

#: Adds the opt-out unless the number has one already; RETURNING is empty then.
INSERT = f"""
INSERT INTO opt_outs (account_id, phone, source, keyword, inbound_id)
VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (account_id, phone) DO NOTHING
RETURNING {_COLUMNS}
"""
GET = f"SELECT {_COLUMNS} FROM opt_outs WHERE account_id = $1 AND phone = $2"
DELETE = f"DELETE FROM opt_outs WHERE account_id = $1 AND phone = $2 RETURNING {_COLUMNS}"

#: Newest first in the order of the opt_outs_recent index (created_at DESC, phone); $2, $3:
#: the last row of the previous page (NULL: the first page).
PAGE = f"""
SELECT {_COLUMNS} FROM opt_outs
 WHERE account_id = $1
   AND ($2::timestamptz IS NULL OR created_at < $2 OR (created_at = $2 AND phone > $3))
 ORDER BY created_at DESC, phone
 LIMIT $4
"""

#: One lookup for a whole send: which of these numbers opted out of the account.
OPTED_OUT = "SELECT phone FROM opt_outs WHERE account_id = $1 AND phone = ANY($2::text[])"


@dataclass(frozen=True, slots=True)
class OptOutRow:
    phone: str
    source: str
    keyword: str | None
    inbound_id: UUID | None
    created_at: datetime


def _row(row: asyncpg.Record) -> OptOutRow:
    return OptOutRow(
        row["phone"], row["source"], row["keyword"], row["inbound_id"], row["created_at"]
    )


async def add(
    db: Db,
    account_id: UUID,
    phone: str,
    *,
    source: str,
    keyword: str | None = None,
    inbound_id: UUID | None = None,
) -> tuple[OptOutRow, bool]:
    """The opt-out of ``phone`` (E.164) and whether it is new; an existing one is kept as it
    was (its source, keyword and time)."""
    row = await db.fetchrow(INSERT, account_id, phone, source, keyword, inbound_id)
    if row is not None:
        return _row(row), True
    existing = await db.fetchrow(GET, account_id, phone)
    if existing is None:  # removed between the two statements: add it again
        return await add(
            db, account_id, phone, source=source, keyword=keyword, inbound_id=inbound_id
        )
    return _row(existing), False


async def get(db: Db, account_id: UUID, phone: str) -> OptOutRow | None:
    row = await db.fetchrow(GET, account_id, phone)
    return None if row is None else _row(row)


async def remove(db: Db, account_id: UUID, phone: str) -> OptOutRow | None:
    """Remove the opt-out; the removed row, or None when the number had none."""
    row = await db.fetchrow(DELETE, account_id, phone)
    return None if row is None else _row(row)


async def page(
    db: Db, account_id: UUID, *, after: tuple[datetime, str] | None, limit: int
) -> list[OptOutRow]:
    """Up to ``limit`` opt-outs, newest first, after ``after`` (created_at, phone)."""
    at, phone = after if after is not None else (None, None)
    return [_row(r) for r in await db.fetch(PAGE, account_id, at, phone, limit)]


async def opted_out(db: Db, account_id: UUID, phones: Sequence[str]) -> set[str]:
    """Which of ``phones`` (E.164) opted out of the account: one query whatever their number."""
    if not phones:
        return set()
    rows = await db.fetch(OPTED_OUT, account_id, list(phones))
    return {r["phone"] for r in rows}
