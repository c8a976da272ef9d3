"""Who a send to contacts and groups reaches, and what each recipient's contact fills in.

The send path reads here: the contacts behind a request's numbers (for a template's
``{{name}}``), the members of its groups a page at a time in phone order, and the background
expansions of sends too large to make in the request (batch_expansions).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from uuid import UUID

import asyncpg

from broker.store import Db
from broker.templates import contact_values

CONTACTS_BY_PHONE = """
SELECT phone, first_name, last_name, email, fields FROM contacts
 WHERE account_id = $1 AND phone = ANY($2::text[])
"""


async def values_by_phone(
    db: Db, account_id: UUID, phones: Sequence[str]
) -> dict[str, dict[str, str]]:
    """Per number that is a contact of the account, the values it fills a template with."""
    if not phones:
        return {}
    rows = await db.fetch(CONTACTS_BY_PHONE, account_id, list(phones))
    return {
        r["phone"]: contact_values(
            r["phone"], r["first_name"], r["last_name"], r["email"], json.loads(r["fields"])
        )
        for r in rows
    }


# --- the recipients of a send to groups ---------------------------------------------------

GROUPS_OWNED = "SELECT id FROM contact_groups WHERE account_id = $1 AND id = ANY($2::uuid[])"

#: Members of any of the groups ($2), once each however many of the groups they are in.
_MEMBER = """
EXISTS (SELECT 1 FROM group_members gm
         WHERE gm.contact_id = c.id AND gm.group_id = ANY($2::uuid[]))
"""

#: How many numbers a send reaches: the groups' members and the send's own numbers ($3).
RECIPIENT_COUNT = f"""
SELECT count(*) FROM (
    SELECT c.phone FROM contacts c WHERE c.account_id = $1 AND {_MEMBER}
    UNION
    SELECT unnest($3::text[])
) r
"""

#: The next members in phone order after $3, leaving out the send's own numbers ($4), with
#: what a template needs of them and whether they opted out of the account's messages.
MEMBERS_AFTER = f"""
SELECT c.phone, c.first_name, c.last_name, c.email, c.fields,
       EXISTS (SELECT 1 FROM opt_outs o WHERE o.account_id = $1 AND o.phone = c.phone)
           AS opted_out
  FROM contacts c
 WHERE c.account_id = $1 AND c.phone > $3 AND c.phone <> ALL($4::text[]) AND {_MEMBER}
 ORDER BY c.phone
 LIMIT $5
"""

#: Per template variable ($3) a member has no value of its own for: how many lack it, and one.
LACKING = f"""
SELECT v.name, count(*) AS lacking, min(c.phone) AS example
  FROM unnest($3::text[]) AS v(name)
  JOIN contacts c ON c.account_id = $1 AND {_MEMBER}
 WHERE NOT CASE v.name
           WHEN 'name' THEN coalesce(c.first_name, c.last_name) IS NOT NULL
           WHEN 'first_name' THEN c.first_name IS NOT NULL
           WHEN 'last_name' THEN c.last_name IS NOT NULL
           WHEN 'email' THEN c.email IS NOT NULL
           WHEN 'phone' THEN true
           ELSE coalesce(c.fields ->> v.name, '') <> ''
       END
 GROUP BY v.name
 ORDER BY v.name
"""


@dataclass(frozen=True, slots=True)
class Member:
    phone: str
    #: What the member's contact fills a template with.
    values: dict[str, str]
    opted_out: bool


async def unknown_groups(db: Db, account_id: UUID, group_ids: Sequence[UUID]) -> list[UUID]:
    """The ids among ``group_ids`` that are not groups of the account."""
    owned = {r["id"] for r in await db.fetch(GROUPS_OWNED, account_id, list(group_ids))}
    return [g for g in group_ids if g not in owned]


async def recipient_count(
    db: Db, account_id: UUID, group_ids: Sequence[UUID], numbers: Sequence[str]
) -> int:
    count: int = await db.fetchval(RECIPIENT_COUNT, account_id, list(group_ids), list(numbers))
    return count


async def members_after(
    db: Db,
    account_id: UUID,
    group_ids: Sequence[UUID],
    after: str,
    *,
    exclude: Sequence[str] = (),
    limit: int,
) -> list[Member]:
    """Up to ``limit`` members with a phone after ``after`` ('' for the first), in phone order."""
    rows = await db.fetch(MEMBERS_AFTER, account_id, list(group_ids), after, list(exclude), limit)
    return [
        Member(
            r["phone"],
            contact_values(
                r["phone"], r["first_name"], r["last_name"], r["email"], json.loads(r["fields"])
            ),
            r["opted_out"],
        )
        for r in rows
    ]


@dataclass(frozen=True, slots=True)
class Lacking:
    name: str
    count: int
    example: str


async def lacking(
    db: Db, account_id: UUID, group_ids: Sequence[UUID], names: Sequence[str]
) -> list[Lacking]:
    """The variables among ``names`` some member of the groups has no value for."""
    if not names:
        return []
    rows = await db.fetch(LACKING, account_id, list(group_ids), list(names))
    return [Lacking(r["name"], r["lacking"], r["example"]) for r in rows]


# --- background expansions ----------------------------------------------------------------

NEW_BATCH = "INSERT INTO batches (id, account_id, total) VALUES ($1, $2, $3)"
NEW_EXPANSION = """
INSERT INTO batch_expansions (batch_id, account_id, send, group_ids, numbers)
VALUES ($1, $2, $3::jsonb, $4::uuid[], $5::text[])
"""

#: The oldest expansion nobody holds, leased to $1 for $2 seconds.
CLAIM = """
UPDATE batch_expansions e
   SET lease_owner = $1, lease_until = now() + make_interval(secs => $2)
 WHERE e.batch_id = (
        SELECT batch_id FROM batch_expansions
         WHERE done_at IS NULL AND lease_until < now()
         ORDER BY created_at
         LIMIT 1
           FOR UPDATE SKIP LOCKED)
RETURNING e.batch_id, e.account_id, e.send, e.group_ids, e.numbers, e.position, e.expanded
"""

#: A chunk published: move on (and renew the lease), only while $2 still holds it.
ADVANCE = """
UPDATE batch_expansions
   SET position = $3, expanded = expanded + $4,
       lease_until = now() + make_interval(secs => $5),
       done_at = CASE WHEN $6 THEN now() END
 WHERE batch_id = $1 AND lease_owner = $2 AND done_at IS NULL
RETURNING expanded
"""

#: What the batch will hold once expanded: as many messages as were made.
SETTLE_TOTAL = "UPDATE batches SET total = $2 WHERE id = $1 AND $2 > 0"

PROGRESS = "SELECT expanded, done_at IS NOT NULL AS done FROM batch_expansions WHERE batch_id = $1"


async def start_expansion(
    conn: asyncpg.Connection,
    batch_id: UUID,
    account_id: UUID,
    send: str,
    group_ids: Sequence[UUID],
    numbers: Sequence[str],
    total: int,
) -> None:
    """The batch (``total`` recipients expected) and its expansion; run in a transaction."""
    await conn.execute(NEW_BATCH, batch_id, account_id, total)
    await conn.execute(NEW_EXPANSION, batch_id, account_id, send, list(group_ids), list(numbers))


@dataclass(frozen=True, slots=True)
class Expansion:
    batch_id: UUID
    account_id: UUID
    #: The send as accepted (JSON of broker.audiences.GroupSend).
    send: str
    group_ids: list[UUID]
    numbers: list[str]
    #: None: the send's own numbers are still to be made; else the last member's phone made.
    position: str | None
    expanded: int


async def claim(db: Db, owner: UUID, lease: float) -> Expansion | None:
    row = await db.fetchrow(CLAIM, owner, lease)
    if row is None:
        return None
    return Expansion(
        row["batch_id"],
        row["account_id"],
        row["send"],
        list(row["group_ids"]),
        list(row["numbers"]),
        row["position"],
        row["expanded"],
    )


async def advance(
    conn: asyncpg.Connection,
    batch_id: UUID,
    owner: UUID,
    position: str,
    made: int,
    lease: float,
    *,
    done: bool,
) -> bool:
    """Record a published chunk; False if the lease was lost (another worker took over)."""
    expanded = await conn.fetchval(ADVANCE, batch_id, owner, position, made, lease, done)
    if expanded is None:
        return False
    if done:
        await conn.execute(SETTLE_TOTAL, batch_id, expanded)
    return True


async def progress(db: Db, batch_id: UUID) -> tuple[int, bool] | None:
    """(messages made so far, whether done) of a batch expanded in the background."""
    row = await db.fetchrow(PROGRESS, batch_id)
    return None if row is None else (row["expanded"], row["done"])
