"""What a send must know of its account before it is accepted: the default sender, the
approved sender IDs and the numbers that opted out, read in one round trip.

The API keeps this per account for a second (api.send_rules), so a busy account costs one query
a second per API process, not one per request. An account with more opt-outs than the snapshot
holds is asked about a request's recipients instead (one query per request, never per number).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from uuid import UUID

from broker.store import Db

#: Opt-outs kept in a snapshot; an account with more is asked per request (OPTED_OUT_AMONG).
SNAPSHOT_OPT_OUTS = 10_000

SEND_RULES = """
SELECT a.default_sender,
       ARRAY(SELECT s.sender_id FROM sender_ids s
              WHERE s.account_id = a.id AND s.status = 'approved') AS approved,
       ARRAY(SELECT o.phone FROM opt_outs o WHERE o.account_id = a.id LIMIT $2 + 1)
           AS opted_out
  FROM accounts a
 WHERE a.id = $1
"""

OPTED_OUT_AMONG = """
SELECT coalesce(array_agg(phone), '{}') FROM opt_outs
 WHERE account_id = $1 AND phone = ANY($2::text[])
"""


@dataclass(frozen=True, slots=True)
class SendRules:
    default_sender: str | None
    approved_senders: frozenset[str]
    #: Every opted-out number of the account; None when there are more than a snapshot holds.
    opted_out: frozenset[str] | None


async def send_rules(db: Db, account_id: UUID) -> SendRules:
    row = await db.fetchrow(SEND_RULES, account_id, SNAPSHOT_OPT_OUTS)
    if row is None:  # the key's account exists (joined at authentication); deleted since?
        return SendRules(None, frozenset(), frozenset())
    opted_out = row["opted_out"]
    return SendRules(
        row["default_sender"],
        frozenset(row["approved"]),
        frozenset(opted_out) if len(opted_out) <= SNAPSHOT_OPT_OUTS else None,
    )


async def opted_out_among(db: Db, account_id: UUID, phones: Sequence[str]) -> frozenset[str]:
    """Which of ``phones`` opted out of the account: one query whatever their number."""
    found: list[str] = await db.fetchval(OPTED_OUT_AMONG, account_id, list(phones))
    return frozenset(found)
