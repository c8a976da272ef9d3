"""Contacts of an account and the groups each belongs to.

Every query is scoped to one account: another account's id finds nothing. ``fields`` travels
as JSON text (``$n::jsonb`` in, json.loads out). Memberships are written with the caller's
account, which the foreign keys of group_members match against both the group and the contact.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Final
from uuid import UUID

import asyncpg

from broker.store import Db

#: The unique key an insert or a change of phone can hit (one contact per number).
PHONE_TAKEN: Final = "contacts_account_id_phone_key"
#: The CHECK that a contact has at most 50 custom fields (sql/017); only a contact stored over
#: it before that migration can still hit it, when a change leaves its fields as they are.
FIELDS_CAP: Final = "contacts_fields_cap"

#: A contact with its groups, oldest membership first.
_COLUMNS = """c.id, c.phone, c.first_name, c.last_name, c.email, c.fields, c.created_at,
       c.updated_at,
       ARRAY(SELECT m.group_id FROM group_members m
              WHERE m.contact_id = c.id ORDER BY m.added_at, m.group_id) AS group_ids"""

#: No row: the account has a contact with this phone.
INSERT = """
INSERT INTO contacts (account_id, phone, first_name, last_name, email, fields)
VALUES ($1, $2, $3, $4, $5, $6::jsonb)
ON CONFLICT (account_id, phone) DO NOTHING
RETURNING id
"""
ID_BY_PHONE = "SELECT id FROM contacts WHERE account_id = $1 AND phone = $2"
GET = f"SELECT {_COLUMNS} FROM contacts c WHERE c.account_id = $1 AND c.id = $2"
#: Each value changes only when its flag says it was given ($3, $5, $7, $9, $11); a given
#: null clears a name or the email. Raises UniqueViolationError (PHONE_TAKEN) for a phone
#: another contact of the account has.
UPDATE = """
UPDATE contacts
   SET phone = CASE WHEN $3 THEN $4 ELSE phone END,
       first_name = CASE WHEN $5 THEN $6 ELSE first_name END,
       last_name = CASE WHEN $7 THEN $8 ELSE last_name END,
       email = CASE WHEN $9 THEN $10 ELSE email END,
       fields = CASE WHEN $11 THEN $12::jsonb ELSE fields END,
       updated_at = now()
 WHERE account_id = $1 AND id = $2
RETURNING id
"""
#: Memberships go with the contact (ON DELETE CASCADE).
DELETE = "DELETE FROM contacts WHERE account_id = $1 AND id = $2 RETURNING id"
#: Which of these ids are contacts of the account, each locked against deletion until the
#: transaction ends (memberships to them are written next).
HOLD = """
SELECT id FROM contacts WHERE account_id = $1 AND id = ANY($2::uuid[])
   FOR KEY SHARE
"""
#: Already a member: kept as it was (its added_at too).
JOIN_GROUPS = """
INSERT INTO group_members (account_id, group_id, contact_id)
SELECT $1, g, $2 FROM unnest($3::uuid[]) AS g
ON CONFLICT (group_id, contact_id) DO NOTHING
"""
LEAVE_OTHER_GROUPS = """
DELETE FROM group_members
 WHERE account_id = $1 AND contact_id = $2 AND NOT (group_id = ANY($3::uuid[]))
"""

#: The contact list, newest first. Each filter is a fixed predicate of its own, so that every
#: combination given is a statement whose plan can use that filter's index; ``${0}`` is its
#: parameter, numbered when composed, and ``$1`` the account. ``name_prefix`` is a LIKE
#: pattern whose % _ \ are escaped already (broker.contacts.like_prefix).
PAGE_FILTERS: Final[dict[str, str]] = {
    "group_id": "c.id IN (SELECT m.contact_id FROM group_members m"
    " WHERE m.account_id = $1 AND m.group_id = ${0})",
    "phone": "c.phone = ${0}",
    "name_prefix": "(lower(c.first_name) LIKE lower(${0}) || '%'"
    " OR lower(c.last_name) LIKE lower(${0}) || '%')",
}
#: After the cursor's (created_at, id).
PAGE_AFTER: Final = "(c.created_at, c.id) < (${0}, ${1})"
PAGE = f"SELECT {_COLUMNS} FROM contacts c WHERE c.account_id = $1"
PAGE_ORDER = " ORDER BY c.created_at DESC, c.id DESC LIMIT ${0}"


@dataclass(frozen=True, slots=True)
class ContactRow:
    id: UUID
    phone: str
    first_name: str | None
    last_name: str | None
    email: str | None
    fields: dict[str, str]
    group_ids: list[UUID]
    created_at: datetime
    updated_at: datetime


def _row(row: asyncpg.Record) -> ContactRow:
    return ContactRow(
        row["id"],
        row["phone"],
        row["first_name"],
        row["last_name"],
        row["email"],
        json.loads(row["fields"]),
        list(row["group_ids"]),
        row["created_at"],
        row["updated_at"],
    )


def page_statement(filters: Sequence[str], after: bool) -> str:
    """PAGE with the named filters (keys of PAGE_FILTERS) in that order, then the cursor;
    parameters numbered from $2, the limit last."""
    fragments = [(PAGE_FILTERS[f], 1) for f in filters] + ([(PAGE_AFTER, 2)] if after else [])
    sql, n = PAGE, 2
    for fragment, count in fragments:
        sql += " AND " + fragment.format(*range(n, n + count))
        n += count
    return sql + PAGE_ORDER.format(n)


async def insert(
    db: Db,
    account_id: UUID,
    *,
    phone: str,
    first_name: str | None,
    last_name: str | None,
    email: str | None,
    fields_json: str,
) -> UUID | None:
    """The new contact's id; None when the account has a contact with this phone."""
    contact_id: UUID | None = await db.fetchval(
        INSERT, account_id, phone, first_name, last_name, email, fields_json
    )
    return contact_id


async def id_by_phone(db: Db, account_id: UUID, phone: str) -> UUID | None:
    contact_id: UUID | None = await db.fetchval(ID_BY_PHONE, account_id, phone)
    return contact_id


async def get(db: Db, account_id: UUID, contact_id: UUID) -> ContactRow | None:
    row = await db.fetchrow(GET, account_id, contact_id)
    return None if row is None else _row(row)


async def update(
    db: Db,
    account_id: UUID,
    contact_id: UUID,
    *,
    given: Collection[str],
    phone: str | None,
    first_name: str | None,
    last_name: str | None,
    email: str | None,
    fields_json: str,
) -> bool:
    """Set the values named in ``given`` (and updated_at); False if no such contact."""
    found = await db.fetchval(
        UPDATE,
        account_id,
        contact_id,
        "phone" in given,
        phone,
        "first_name" in given,
        first_name,
        "last_name" in given,
        last_name,
        "email" in given,
        email,
        "fields" in given,
        fields_json,
    )
    return found is not None


async def delete(db: Db, account_id: UUID, contact_id: UUID) -> bool:
    return await db.fetchval(DELETE, account_id, contact_id) is not None


async def hold(db: Db, account_id: UUID, contact_ids: Sequence[UUID]) -> set[UUID]:
    """The ids among these that are contacts of the account, locked (inside a transaction)."""
    if not contact_ids:
        return set()
    return {r["id"] for r in await db.fetch(HOLD, account_id, list(contact_ids))}


async def join_groups(
    db: Db, account_id: UUID, contact_id: UUID, group_ids: Sequence[UUID]
) -> None:
    """The contact joins these groups of the account (one statement for all)."""
    await db.execute(JOIN_GROUPS, account_id, contact_id, list(group_ids))


async def replace_groups(
    db: Db, account_id: UUID, contact_id: UUID, group_ids: Sequence[UUID]
) -> None:
    """Exactly these groups afterwards; memberships kept keep their added_at."""
    await db.execute(LEAVE_OTHER_GROUPS, account_id, contact_id, list(group_ids))
    if group_ids:
        await join_groups(db, account_id, contact_id, group_ids)


async def page(
    db: Db,
    account_id: UUID,
    *,
    group_id: UUID | None,
    phone: str | None,
    name_prefix: str | None,
    after: tuple[datetime, UUID] | None,
    limit: int,
) -> list[ContactRow]:
    """Up to ``limit`` contacts, newest first, older than ``after`` (created_at, id), matching
    every filter given (None: not given)."""
    given = {"group_id": group_id, "phone": phone, "name_prefix": name_prefix}
    names = [name for name, value in given.items() if value is not None]
    args: list[object] = [given[name] for name in names]
    if after is not None:
        args.extend(after)
    sql = page_statement(names, after is not None)
    return [_row(r) for r in await db.fetch(sql, account_id, *args, limit)]
