"""Inbound (MO): the numbers and keywords that give an inbound message to an account, the
inbound messages, and the fragments of a long one until it is whole."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

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
