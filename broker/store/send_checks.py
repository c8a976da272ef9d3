"""What a send must know of its account before it is accepted, in one round trip: the sender
it goes out with (its own ``from`` or the account's default), whether that sender is an
approved sender ID of the account, and which of its recipients opted out of the account."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from uuid import UUID

from broker.store import Db

SEND_CHECKS = """
SELECT s.sender,
       EXISTS (SELECT 1 FROM sender_ids i
                WHERE i.account_id = $1 AND i.sender_id = s.sender AND i.status = 'approved')
           AS sender_approved,
       ARRAY(SELECT o.phone FROM opt_outs o
              WHERE o.account_id = $1 AND o.phone = ANY($3::text[])) AS opted_out
  FROM (SELECT coalesce($2::text, a.default_sender) AS sender FROM accounts a WHERE a.id = $1) s
"""


@dataclass(frozen=True, slots=True)
class SendChecks:
    #: The sender the messages go out with (None: the connector's own).
    sender: str | None
    sender_approved: bool
    opted_out: frozenset[str]


async def send_checks(
    db: Db, account_id: UUID, sender: str | None, recipients: Sequence[str]
) -> SendChecks:
    row = await db.fetchrow(SEND_CHECKS, account_id, sender, list(recipients))
    if row is None:  # the key's account exists (joined at authentication); deleted since?
        return SendChecks(sender, False, frozenset())
    return SendChecks(row["sender"], row["sender_approved"], frozenset(row["opted_out"]))
