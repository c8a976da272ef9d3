"""Sender IDs an account registered, and the operator's decision on each.

Every customer query is scoped to one account: another account's id finds nothing. Statuses
travel as parameters (broker.status.SenderIdStatus).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

import asyncpg

from broker.status import SenderIdStatus
from broker.store import Db

#: The status a send's alphanumeric `from` needs.
APPROVED = SenderIdStatus.APPROVED.value
#: The status of a registration awaiting the operator.
PENDING = SenderIdStatus.PENDING.value
#: The one status a registration may be renewed from.
REJECTED = SenderIdStatus.REJECTED.value

_COLUMNS = "id, account_id, sender_id, purpose, status, reason, created_at, decided_at"

#: A new registration, or a rejected one registered again (back to pending, as if new).
#: No row: the account already has this sender ID pending or approved.
REGISTER = f"""
INSERT INTO sender_ids (account_id, sender_id, purpose, status) VALUES ($1, $2, $3, $4)
ON CONFLICT (account_id, sender_id) DO UPDATE
   SET purpose = EXCLUDED.purpose, status = EXCLUDED.status, reason = NULL,
       decided_at = NULL, created_at = now()
 WHERE sender_ids.status = $5
RETURNING {_COLUMNS}
"""
STATUS_OF = "SELECT status FROM sender_ids WHERE account_id = $1 AND sender_id = $2"

#: Newest first; ($3, $4) is the (created_at, id) of the last row of the previous page.
PAGE = f"""
SELECT {_COLUMNS} FROM sender_ids
 WHERE account_id = $1
   AND ($2::text IS NULL OR status = $2)
   AND ($3::timestamptz IS NULL OR (created_at, id) < ($3, $4::uuid))
 ORDER BY created_at DESC, id DESC
 LIMIT $5
"""
GET = f"SELECT {_COLUMNS} FROM sender_ids WHERE account_id = $1 AND id = $2"
DELETE = "DELETE FROM sender_ids WHERE account_id = $1 AND id = $2 RETURNING id"
#: The row is share-locked: inside a transaction it cannot be rejected or withdrawn before
#: that transaction ends (a default sender set on it stays approved when it commits).
IS_APPROVED = """
SELECT true FROM sender_ids
 WHERE account_id = $1 AND sender_id = $2 AND status = $3
   FOR SHARE
"""

#: The operator's view: every account, oldest first (the order they were asked in).
ALL = f"""
SELECT {_COLUMNS} FROM sender_ids
 WHERE ($1::text IS NULL OR status = $1)
   AND ($2::uuid IS NULL OR account_id = $2)
 ORDER BY created_at, id
 LIMIT $3
"""
GET_ANY = f"SELECT {_COLUMNS} FROM sender_ids WHERE id = $1"
#: A decision that changes the status; no row: unknown id, or already in that status.
DECIDE = f"""
UPDATE sender_ids SET status = $2, reason = $3, decided_at = now()
 WHERE id = $1 AND status <> $2
RETURNING {_COLUMNS}
"""


@dataclass(frozen=True, slots=True)
class SenderIdRow:
    id: UUID
    account_id: UUID
    sender_id: str
    purpose: str
    status: str
    reason: str | None
    created_at: datetime
    decided_at: datetime | None


def _row(row: asyncpg.Record) -> SenderIdRow:
    return SenderIdRow(
        row["id"],
        row["account_id"],
        row["sender_id"],
        row["purpose"],
        row["status"],
        row["reason"],
        row["created_at"],
        row["decided_at"],
    )


async def register(db: Db, account_id: UUID, sender_id: str, purpose: str) -> SenderIdRow | None:
    """The pending registration; None when the account has it pending or approved already."""
    row = await db.fetchrow(REGISTER, account_id, sender_id, purpose, PENDING, REJECTED)
    return None if row is None else _row(row)


async def status_of(db: Db, account_id: UUID, sender_id: str) -> str | None:
    status: str | None = await db.fetchval(STATUS_OF, account_id, sender_id)
    return status


async def page(
    db: Db,
    account_id: UUID,
    *,
    status: str | None,
    after: tuple[datetime, UUID] | None,
    limit: int,
) -> list[SenderIdRow]:
    at, last_id = after if after is not None else (None, None)
    rows = await db.fetch(PAGE, account_id, status, at, last_id, limit)
    return [_row(r) for r in rows]


async def get(db: Db, account_id: UUID, sender_id_id: UUID) -> SenderIdRow | None:
    row = await db.fetchrow(GET, account_id, sender_id_id)
    return None if row is None else _row(row)


async def delete(db: Db, account_id: UUID, sender_id_id: UUID) -> bool:
    return await db.fetchval(DELETE, account_id, sender_id_id) is not None


async def is_approved(db: Db, account_id: UUID, sender_id: str) -> bool:
    """Whether the account may send from this sender ID (exact, case-sensitive match)."""
    return bool(await db.fetchval(IS_APPROVED, account_id, sender_id, APPROVED))


async def all_accounts(
    db: Db, *, status: str | None, account_id: UUID | None, limit: int
) -> list[SenderIdRow]:
    return [_row(r) for r in await db.fetch(ALL, status, account_id, limit)]


async def get_any(db: Db, sender_id_id: UUID) -> SenderIdRow | None:
    row = await db.fetchrow(GET_ANY, sender_id_id)
    return None if row is None else _row(row)


async def decide(db: Db, sender_id_id: UUID, status: str, reason: str | None) -> SenderIdRow | None:
    """Set the status (and decided_at); None when the id is unknown or already in ``status``."""
    row = await db.fetchrow(DECIDE, sender_id_id, status, reason)
    return None if row is None else _row(row)
