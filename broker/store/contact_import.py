"""Contacts written a batch at a time by an import: one statement per batch of rows.

A batch holds each phone once (broker.contacts_csv.Batch merges repeats): ON CONFLICT may
not touch a row twice in one statement.
"""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID

from broker.store import Db

#: FOR SHARE: inside the import's transaction the group cannot be deleted under it.
LOCK_GROUP = """
SELECT true FROM contact_groups WHERE account_id = $1 AND id = $2 FOR SHARE
"""
ACCOUNT_REGION = "SELECT region FROM accounts WHERE id = $1"

#: New phones become contacts; a known phone keeps what a row leaves empty (NULL here),
#: takes what it gives, and has its fields merged. With a group ($7), each one joins it.
#: (xmax = 0): the row was inserted by this statement rather than updated.
UPSERT = """
WITH written AS (
    INSERT INTO contacts AS c (account_id, phone, first_name, last_name, email, fields)
    SELECT $1, r.phone, r.first_name, r.last_name, r.email, r.fields::jsonb
      FROM unnest($2::text[], $3::text[], $4::text[], $5::text[], $6::text[])
           AS r (phone, first_name, last_name, email, fields)
    ON CONFLICT (account_id, phone) DO UPDATE
       SET first_name = COALESCE(EXCLUDED.first_name, c.first_name),
           last_name = COALESCE(EXCLUDED.last_name, c.last_name),
           email = COALESCE(EXCLUDED.email, c.email),
           fields = c.fields || EXCLUDED.fields,
           updated_at = now()
    RETURNING c.id, (c.xmax = 0) AS created
), joined AS (
    INSERT INTO group_members (account_id, group_id, contact_id)
    SELECT $1, $7::uuid, w.id FROM written w WHERE $7::uuid IS NOT NULL
    ON CONFLICT (group_id, contact_id) DO NOTHING
)
SELECT count(*) FILTER (WHERE created) AS created,
       count(*) FILTER (WHERE NOT created) AS updated
  FROM written
"""


@dataclass(frozen=True, slots=True)
class Written:
    created: int
    updated: int


async def lock_group(db: Db, account_id: UUID, group_id: UUID) -> bool:
    """Whether the account has this group (kept from deletion until the transaction ends)."""
    return bool(await db.fetchval(LOCK_GROUP, account_id, group_id))


async def account_region(db: Db, account_id: UUID) -> str | None:
    region: str | None = await db.fetchval(ACCOUNT_REGION, account_id)
    return region


async def upsert(
    db: Db,
    account_id: UUID,
    columns: tuple[list[str], list[str | None], list[str | None], list[str | None], list[str]],
    group_id: UUID | None,
) -> Written:
    """Create or update one batch of contacts (distinct phones), joining them to the group."""
    phones, first_names, last_names, emails, fields = columns
    row = await db.fetchrow(
        UPSERT, account_id, phones, first_names, last_names, emails, fields, group_id
    )
    assert row is not None
    return Written(row["created"], row["updated"])
