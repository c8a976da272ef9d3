"""Messages, their parts and their history."""

from __future__ import annotations

from uuid import UUID

from broker.status import MessageStatus
from broker.store import Db

COUNT_BY_STATUS = "SELECT status, count(*) AS n FROM messages WHERE account_id = $1 GROUP BY status"


async def count_by_status(db: Db, account_id: UUID) -> dict[MessageStatus, int]:
    """How many of the account's messages are in each status (absent: none)."""
    rows = await db.fetch(COUNT_BY_STATUS, account_id)
    return {MessageStatus(r["status"]): r["n"] for r in rows}
