"""Inbound (MO): the numbers and keywords that give an inbound message to an account, the
inbound messages, and the fragments of a long one until it is whole."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

import asyncpg

from broker.store import Db

INSERT_NUMBER = "INSERT INTO numbers (number, keyword, account_id) VALUES ($1, $2, $3)"


async def add_number(db: Db, number: str, keyword: str, account_id: UUID) -> None:
    """``number`` without its '+', ``keyword`` upper-case (the schema holds both forms).

    Raises asyncpg.UniqueViolationError when the number and keyword belong to an account."""
    await db.execute(INSERT_NUMBER, number, keyword, account_id)


# --- Inbound messages and the fragments of a long one ------------------------------------

ADD_FRAGMENT = """
INSERT INTO inbound_fragments (connector, from_number, to_number, reference, total, seq, body)
VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING
"""

#: Every fragment of the message, taken (deleted) only once all ``total`` of them are in.
TAKE_COMPLETE = """
DELETE FROM inbound_fragments
 WHERE connector = $1 AND from_number = $2 AND to_number = $3 AND reference = $4 AND total = $5
   AND (SELECT count(*) FROM inbound_fragments f WHERE f.connector = $1 AND f.from_number = $2
          AND f.to_number = $3 AND f.reference = $4 AND f.total = $5) = $5
RETURNING seq, body
"""

#: The number's owner for this keyword, else the owner of the whole number (keyword '').
OWNER = """
SELECT account_id, keyword FROM numbers
 WHERE number = $1 AND keyword IN ('', $2) ORDER BY keyword DESC LIMIT 1
"""

INSERT_MESSAGE = """
INSERT INTO inbound_messages (id, account_id, connector, from_number, to_number, body, keyword,
                              received_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (id) DO NOTHING RETURNING id
"""

#: What identifies one long inbound message: connector, from, to, reference, total.
FragmentKey = tuple[str, str, str, int, int]


async def add_fragment(db: Db, key: FragmentKey, seq: int, body: str) -> None:
    """Keep one fragment; a redelivered one is kept once."""
    await db.execute(ADD_FRAGMENT, *key, seq, body)


async def take_complete(db: Db, key: FragmentKey) -> list[tuple[int, str]]:
    """(seq, body) of every fragment once all are in, removing them; [] while some miss."""
    return [(r["seq"], r["body"]) for r in await db.fetch(TAKE_COMPLETE, *key)]


async def owner(db: Db, number: str, first_word: str) -> tuple[UUID, str] | None:
    """(account id, keyword) owning a message to ``number`` (no '+') starting ``first_word``
    (upper-case); None when nobody owns it."""
    row = await db.fetchrow(OWNER, number, first_word)
    return (row["account_id"], row["keyword"]) if row is not None else None


async def insert_message(
    db: Db,
    message_id: UUID,
    account_id: UUID | None,
    connector: str,
    from_number: str,
    to_number: str,
    body: str,
    keyword: str,
    received_at: datetime,
) -> bool:
    """Store an inbound message; False when it was stored already (a redelivery)."""
    stored = await db.fetchval(
        INSERT_MESSAGE,
        message_id,
        account_id,
        connector,
        from_number,
        to_number,
        body,
        keyword,
        received_at,
    )
    return stored is not None


# --- What the API reads, and what a keyword needs ---------------------------------------

_INBOUND_COLUMNS = "id, from_number, to_number, body, keyword, received_at"

#: One inbound message of the account (one with no owner is nobody's).
GET_MESSAGE = f"""
SELECT {_INBOUND_COLUMNS} FROM inbound_messages WHERE account_id = $1 AND id = $2
"""

#: Newest first in the order of the inbound_account_recent index; $2, $3: the last row of the
#: previous page (NULL: the first page); $4, $5, $6: the optional from, to and since filters.
PAGE = f"""
SELECT {_INBOUND_COLUMNS} FROM inbound_messages
 WHERE account_id = $1
   AND ($2::timestamptz IS NULL OR (received_at, id) < ($2, $3::uuid))
   AND ($4::text IS NULL OR from_number = $4)
   AND ($5::text IS NULL OR to_number = $5)
   AND ($6::timestamptz IS NULL OR received_at >= $6)
 ORDER BY received_at DESC, id DESC
 LIMIT $7
"""

#: What a stored inbound message was: read again when its event is redelivered.
STORED = "SELECT account_id, from_number, to_number, body FROM inbound_messages WHERE id = $1"

#: The account's name and its reply to HELP (NULL: the default one).
HELP_TEXT = "SELECT name, help_text FROM accounts WHERE id = $1"


@dataclass(frozen=True, slots=True)
class InboundRow:
    id: UUID
    from_number: str
    to_number: str
    body: str
    keyword: str
    received_at: datetime


def _inbound(row: asyncpg.Record) -> InboundRow:
    return InboundRow(
        row["id"],
        row["from_number"],
        row["to_number"],
        row["body"],
        row["keyword"],
        row["received_at"],
    )


async def get_message(db: Db, account_id: UUID, message_id: UUID) -> InboundRow | None:
    row = await db.fetchrow(GET_MESSAGE, account_id, message_id)
    return None if row is None else _inbound(row)


async def page(
    db: Db,
    account_id: UUID,
    *,
    after: tuple[datetime, UUID] | None,
    from_number: str | None = None,
    to_number: str | None = None,
    since: datetime | None = None,
    limit: int,
) -> list[InboundRow]:
    """Up to ``limit`` of the account's inbound messages, newest first, after ``after``
    (received_at, id)."""
    at, last_id = after if after is not None else (None, None)
    rows = await db.fetch(PAGE, account_id, at, last_id, from_number, to_number, since, limit)
    return [_inbound(r) for r in rows]


@dataclass(frozen=True, slots=True)
class StoredInbound:
    account_id: UUID | None
    from_number: str
    to_number: str
    body: str


async def stored(db: Db, message_id: UUID) -> StoredInbound | None:
    row = await db.fetchrow(STORED, message_id)
    if row is None:
        return None
    return StoredInbound(row["account_id"], row["from_number"], row["to_number"], row["body"])


async def help_text(db: Db, account_id: UUID) -> tuple[str, str | None]:
    """(account name, its help text or None)."""
    row = await db.fetchrow(HELP_TEXT, account_id)
    return ("", None) if row is None else (row["name"], row["help_text"])
