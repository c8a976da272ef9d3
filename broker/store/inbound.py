"""Inbound (MO): the numbers and keywords that give an inbound message to an account."""

from __future__ import annotations

from uuid import UUID

from broker.store import Db

INSERT_NUMBER = "INSERT INTO numbers (number, keyword, account_id) VALUES ($1, $2, $3)"


async def add_number(db: Db, number: str, keyword: str, account_id: UUID) -> None:
    """``number`` without its '+', ``keyword`` upper-case (the schema holds both forms).

    Raises asyncpg.UniqueViolationError when the number and keyword belong to an account."""
    await db.execute(INSERT_NUMBER, number, keyword, account_id)
