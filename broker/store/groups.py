"""Groups of an account's contacts, and who is in them.

Every query is scoped to one account: another account's id finds nothing. A membership row
carries the caller's account; its foreign keys then refuse a group or a contact of any other
account. Deleting a group deletes its memberships only (ON DELETE CASCADE).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

import asyncpg

from broker.store import Db

#: A group with its member count (an index-only count on group_members' primary key).
_COLUMNS = """g.id, g.name, g.created_at, g.updated_at,
       (SELECT count(*) FROM group_members m WHERE m.group_id = g.id) AS members"""

#: No row: the account has a group of this name. A new group has no members.
INSERT = """
INSERT INTO contact_groups (account_id, name) VALUES ($1, $2)
ON CONFLICT (account_id, name) DO NOTHING
RETURNING id, name, created_at, updated_at, 0::bigint AS members
"""
#: Newest first; ($2, $3) is the (created_at, id) of the last row of the previous page.
PAGE = f"""
SELECT {_COLUMNS} FROM contact_groups g
 WHERE g.account_id = $1
   AND ($2::timestamptz IS NULL OR (g.created_at, g.id) < ($2, $3::uuid))
 ORDER BY g.created_at DESC, g.id DESC
 LIMIT $4
"""
GET = f"SELECT {_COLUMNS} FROM contact_groups g WHERE g.account_id = $1 AND g.id = $2"
#: Raises UniqueViolationError when another group of the account has the name.
RENAME = f"""
UPDATE contact_groups g SET name = $3, updated_at = now()
 WHERE g.account_id = $1 AND g.id = $2
RETURNING {_COLUMNS}
"""
DELETE = "DELETE FROM contact_groups WHERE account_id = $1 AND id = $2 RETURNING id"
#: Which of these ids are groups of the account, each locked against deletion until the
#: transaction ends (memberships to them are written next).
HOLD = """
SELECT id FROM contact_groups WHERE account_id = $1 AND id = ANY($2::uuid[])
   FOR KEY SHARE
"""
#: How many of the contacts became members (those already in stay as they were).
ADD_MEMBERS = """
WITH added AS (
    INSERT INTO group_members (account_id, group_id, contact_id)
    SELECT $1, $2, c FROM unnest($3::uuid[]) AS c
    ON CONFLICT (group_id, contact_id) DO NOTHING
    RETURNING 1
)
SELECT count(*) FROM added
"""
MEMBER_COUNT = "SELECT count(*) FROM group_members WHERE account_id = $1 AND group_id = $2"
REMOVE_MEMBER = """
DELETE FROM group_members WHERE account_id = $1 AND group_id = $2 AND contact_id = $3
RETURNING contact_id
"""


@dataclass(frozen=True, slots=True)
class GroupRow:
    id: UUID
    name: str
    members: int
    created_at: datetime
    updated_at: datetime


def _row(row: asyncpg.Record) -> GroupRow:
    return GroupRow(row["id"], row["name"], row["members"], row["created_at"], row["updated_at"])


async def insert(db: Db, account_id: UUID, name: str) -> GroupRow | None:
    """The new group; None when the account has a group of this name."""
    row = await db.fetchrow(INSERT, account_id, name)
    return None if row is None else _row(row)


async def page(
    db: Db, account_id: UUID, *, after: tuple[datetime, UUID] | None, limit: int
) -> list[GroupRow]:
    at, last_id = after if after is not None else (None, None)
    return [_row(r) for r in await db.fetch(PAGE, account_id, at, last_id, limit)]


async def get(db: Db, account_id: UUID, group_id: UUID) -> GroupRow | None:
    row = await db.fetchrow(GET, account_id, group_id)
    return None if row is None else _row(row)


async def rename(db: Db, account_id: UUID, group_id: UUID, name: str) -> GroupRow | None:
    """The renamed group; None if no such group. UniqueViolationError: the name is taken."""
    row = await db.fetchrow(RENAME, account_id, group_id, name)
    return None if row is None else _row(row)


async def delete(db: Db, account_id: UUID, group_id: UUID) -> bool:
    return await db.fetchval(DELETE, account_id, group_id) is not None


async def hold(db: Db, account_id: UUID, group_ids: Sequence[UUID]) -> set[UUID]:
    """The ids among these that are groups of the account, locked (inside a transaction)."""
    if not group_ids:
        return set()
    return {r["id"] for r in await db.fetch(HOLD, account_id, list(group_ids))}


async def add_members(db: Db, account_id: UUID, group_id: UUID, contact_ids: Sequence[UUID]) -> int:
    """Contacts of the account join the group in one statement; how many were not in it."""
    added: int = await db.fetchval(ADD_MEMBERS, account_id, group_id, list(contact_ids))
    return added


async def member_count(db: Db, account_id: UUID, group_id: UUID) -> int:
    count: int = await db.fetchval(MEMBER_COUNT, account_id, group_id)
    return count


async def remove_member(db: Db, account_id: UUID, group_id: UUID, contact_id: UUID) -> bool:
    """False: the contact was not a member (or no such group in the account)."""
    return await db.fetchval(REMOVE_MEMBER, account_id, group_id, contact_id) is not None
