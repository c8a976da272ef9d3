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
#: takes what it gives, and has its fields merged, unless the merged fields would number more
#: than $8: then its row is left as it was (the CHECK contacts_fields_cap backs this, sql/017).
#: With a group ($7), each contact written joins it. (xmax = 0): the row was inserted by this
#: statement rather than updated. ``refused``: each phone left as it was, with how many fields
#: it has and would have had (looked up one by one: refusals are few, an account's contacts
#: many); that lookup sees the contacts as they were before the statement, so a contact
#: another import made meanwhile has NULL counts.
UPSERT = """
WITH given AS (
    SELECT r.phone, r.first_name, r.last_name, r.email, r.fields::jsonb AS fields
      FROM unnest($2::text[], $3::text[], $4::text[], $5::text[], $6::text[])
           AS r (phone, first_name, last_name, email, fields)
), written AS (
    INSERT INTO contacts AS c (account_id, phone, first_name, last_name, email, fields)
    SELECT $1, g.phone, g.first_name, g.last_name, g.email, g.fields FROM given g
    ON CONFLICT (account_id, phone) DO UPDATE
       SET first_name = COALESCE(EXCLUDED.first_name, c.first_name),
           last_name = COALESCE(EXCLUDED.last_name, c.last_name),
           email = COALESCE(EXCLUDED.email, c.email),
           fields = c.fields || EXCLUDED.fields,
           updated_at = now()
     WHERE contact_field_count(c.fields || EXCLUDED.fields) <= $8
    RETURNING c.id, c.phone, (c.xmax = 0) AS created
), joined AS (
    INSERT INTO group_members (account_id, group_id, contact_id)
    SELECT $1, $7::uuid, w.id FROM written w WHERE $7::uuid IS NOT NULL
    ON CONFLICT (group_id, contact_id) DO NOTHING
), refused AS (
    SELECT g.phone, g.fields,
           (SELECT c.fields FROM contacts c WHERE c.account_id = $1 AND c.phone = g.phone)
           AS stored
      FROM given g
     WHERE NOT EXISTS (SELECT FROM written w WHERE w.phone = g.phone)
)
SELECT (SELECT count(*) FILTER (WHERE created) FROM written) AS created,
       (SELECT count(*) FILTER (WHERE NOT created) FROM written) AS updated,
       ARRAY(SELECT phone FROM refused ORDER BY phone) AS refused,
       ARRAY(SELECT contact_field_count(stored) FROM refused ORDER BY phone) AS has,
       ARRAY(SELECT contact_field_count(stored || fields) FROM refused ORDER BY phone)
       AS would_have
"""


@dataclass(frozen=True, slots=True)
class Refused:
    """A known phone whose merged fields would have passed the cap: nothing of it written.
    The counts are None when the contact was made by another transaction meanwhile."""

    phone: str
    has: int | None
    would_have: int | None


@dataclass(frozen=True, slots=True)
class Written:
    created: int
    updated: int
    refused: list[Refused]


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
    max_fields: int,
) -> Written:
    """Create or update one batch of contacts (distinct phones), joining them to the group;
    a known contact whose merged fields would number more than ``max_fields`` is refused."""
    phones, first_names, last_names, emails, fields = columns
    row = await db.fetchrow(
        UPSERT, account_id, phones, first_names, last_names, emails, fields, group_id, max_fields
    )
    assert row is not None
    refused = [Refused(*r) for r in zip(row["refused"], row["has"], row["would_have"], strict=True)]
    return Written(row["created"], row["updated"], refused)
