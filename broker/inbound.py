"""Inbound messages (MO): reassembled, attributed to the account owning the number, stored."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

import asyncpg

from broker.queue_messages import InboundEvent, WebhookEvent
from broker.resources import iso
from broker.webhooks.events import MESSAGE_INBOUND, event_id_for, make_event


@dataclass(frozen=True, slots=True)
class Inbound:
    id: UUID
    connector: str
    from_number: str
    to_number: str
    text: str
    received_at: datetime
    concat: tuple[int, int, int] | None = None  # reference, total, seq

    @classmethod
    def from_event(cls, event: InboundEvent) -> Inbound:
        return cls(
            id=event.id,
            connector=event.connector,
            from_number=event.from_number,
            to_number=event.to_number,
            text=event.text,
            received_at=event.received_at,
            concat=event.concat,
        )


_FRAGMENT = """
INSERT INTO inbound_fragments (connector, from_number, to_number, reference, total, seq, body)
VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING
"""

_COMPLETE = """
DELETE FROM inbound_fragments
 WHERE connector = $1 AND from_number = $2 AND to_number = $3 AND reference = $4 AND total = $5
   AND (SELECT count(*) FROM inbound_fragments f WHERE f.connector = $1 AND f.from_number = $2
          AND f.to_number = $3 AND f.reference = $4 AND f.total = $5) = $5
RETURNING seq, body
"""

_OWNER = """
SELECT account_id, keyword FROM numbers
 WHERE number = $1 AND keyword IN ('', $2) ORDER BY keyword DESC LIMIT 1
"""

_STORE = """
INSERT INTO inbound_messages (id, account_id, connector, from_number, to_number, body, keyword,
                              received_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (id) DO NOTHING RETURNING id
"""


def _e164ish(address: str) -> str:
    digits = address.lstrip("+")
    return f"+{digits}" if digits.isdigit() and len(digits) > 8 else address


async def _assemble(conn: asyncpg.Connection, mo: Inbound) -> str | None:
    """The whole text once the last fragment is in; None while fragments are missing."""
    assert mo.concat is not None
    reference, total, seq = mo.concat
    key = (mo.connector, mo.from_number, mo.to_number, reference, total)
    await conn.execute(_FRAGMENT, *key, seq, mo.text)
    rows = await conn.fetch(_COMPLETE, *key)
    if not rows:
        return None
    return "".join(r["body"] for r in sorted(rows, key=lambda r: r["seq"]))


async def store_inbound(conn: asyncpg.Connection, mo: Inbound) -> WebhookEvent | None:
    """Store one MO (or fragment); return its message.inbound event when it has an owner."""
    text = mo.text
    if mo.concat is not None and mo.concat[1] > 1:
        assembled = await _assemble(conn, mo)
        if assembled is None:
            return None
        text = assembled
    words = text.strip().split(maxsplit=1)
    first_word = words[0].upper() if words else ""
    owner = await conn.fetchrow(_OWNER, mo.to_number.lstrip("+"), first_word)
    account_id = owner["account_id"] if owner else None
    keyword = owner["keyword"] if owner else ""
    stored = await conn.fetchval(
        _STORE,
        mo.id,
        account_id,
        mo.connector,
        _e164ish(mo.from_number),
        _e164ish(mo.to_number),
        text,
        keyword,
        mo.received_at,
    )
    if stored is None or account_id is None:
        return None
    data = {
        "id": str(mo.id),
        "from": _e164ish(mo.from_number),
        "to": _e164ish(mo.to_number),
        "body": text,
        "keyword": keyword or None,
        "received_at": iso(mo.received_at),
    }
    return make_event(MESSAGE_INBOUND, account_id, data, event_id=event_id_for(f"inbound:{mo.id}"))
