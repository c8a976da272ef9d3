"""Message templates of an account: a name unique in the account and a body with placeholders.

Every query is scoped to one account: another account's id finds nothing. A name another
template of the account has already raises NameTaken (409), from an insert or a rename alike.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

import asyncpg

from broker.errors import Conflict
from broker.store import Db

#: The schema's limit on a body (templates.body CHECK); the API's own limit is lower by default.
MAX_STORED_BODY = 10_000

_COLUMNS = "id, account_id, name, body, created_at, updated_at"

#: No row: the account has a template of this name.
INSERT = f"""
INSERT INTO templates (account_id, name, body) VALUES ($1, $2, $3)
ON CONFLICT (account_id, name) DO NOTHING
RETURNING {_COLUMNS}
"""
#: Newest first; ($2, $3) is the (created_at, id) of the last row of the previous page.
PAGE = f"""
SELECT {_COLUMNS} FROM templates
 WHERE account_id = $1
   AND ($2::timestamptz IS NULL OR (created_at, id) < ($2, $3::uuid))
 ORDER BY created_at DESC, id DESC
 LIMIT $4
"""
GET = f"SELECT {_COLUMNS} FROM templates WHERE account_id = $1 AND id = $2"
#: A null name or body keeps the stored one.
UPDATE = f"""
UPDATE templates
   SET name = coalesce($3, name), body = coalesce($4, body), updated_at = now()
 WHERE account_id = $1 AND id = $2
RETURNING {_COLUMNS}
"""
DELETE = "DELETE FROM templates WHERE account_id = $1 AND id = $2 RETURNING id"
#: Whose template an id is, whatever the caller (only for a dialect that must say "not yours").
OWNER = "SELECT account_id FROM templates WHERE id = $1"


class NameTaken(Conflict):
    """Template names are unique in an account: sends and people pick templates by name."""

    def __init__(self, name: str) -> None:
        super().__init__(
            f"this account already has a template named {name!r}", code="TEMPLATE_EXISTS"
        )


@dataclass(frozen=True, slots=True)
class TemplateRow:
    id: UUID
    account_id: UUID
    name: str
    body: str
    created_at: datetime
    updated_at: datetime


def _row(row: asyncpg.Record) -> TemplateRow:
    return TemplateRow(
        row["id"], row["account_id"], row["name"], row["body"], row["created_at"], row["updated_at"]
    )


async def insert(db: Db, account_id: UUID, name: str, body: str) -> TemplateRow:
    """The new template; NameTaken when the account has one of this name."""
    row = await db.fetchrow(INSERT, account_id, name, body)
    if row is None:
        raise NameTaken(name)
    return _row(row)


async def page(
    db: Db, account_id: UUID, *, after: tuple[datetime, UUID] | None, limit: int
) -> list[TemplateRow]:
    at, last_id = after if after is not None else (None, None)
    return [_row(r) for r in await db.fetch(PAGE, account_id, at, last_id, limit)]


async def get(db: Db, account_id: UUID, template_id: UUID) -> TemplateRow | None:
    row = await db.fetchrow(GET, account_id, template_id)
    return None if row is None else _row(row)


async def update(
    db: Db, account_id: UUID, template_id: UUID, *, name: str | None, body: str | None
) -> TemplateRow | None:
    """The changed template (None: not the account's); NameTaken for a name another template
    of the account has. ``None`` for a field keeps it."""
    try:
        row = await db.fetchrow(UPDATE, account_id, template_id, name, body)
    except asyncpg.UniqueViolationError as exc:
        raise NameTaken(name or "") from exc
    return None if row is None else _row(row)


async def delete(db: Db, account_id: UUID, template_id: UUID) -> bool:
    return await db.fetchval(DELETE, account_id, template_id) is not None


async def owner(db: Db, template_id: UUID) -> UUID | None:
    """The account a template belongs to (None: no such template anywhere)."""
    found: UUID | None = await db.fetchval(OWNER, template_id)
    return found
