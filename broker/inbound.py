"""Inbound messages (MO): reassembled, attributed to the account owning the number, stored."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

import asyncpg

from broker.queue_messages import InboundEvent, WebhookEvent
from broker.resources import iso
from broker.store import inbound as store
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


def _e164ish(address: str) -> str:
    digits = address.lstrip("+")
    return f"+{digits}" if digits.isdigit() and len(digits) > 8 else address


async def _assemble(conn: asyncpg.Connection, mo: Inbound) -> str | None:
    """The whole text once the last fragment is in; None while fragments are missing."""
    assert mo.concat is not None
    reference, total, seq = mo.concat
    key = (mo.connector, mo.from_number, mo.to_number, reference, total)
    await store.add_fragment(conn, key, seq, mo.text)
    fragments = await store.take_complete(conn, key)
    if not fragments:
        return None
    return "".join(body for _, body in sorted(fragments))


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
    owner = await store.owner(conn, mo.to_number.lstrip("+"), first_word)
    account_id, keyword = owner if owner is not None else (None, "")
    stored = await store.insert_message(
        conn,
        mo.id,
        account_id,
        mo.connector,
        _e164ish(mo.from_number),
        _e164ish(mo.to_number),
        text,
        keyword,
        mo.received_at,
    )
    if not stored or account_id is None:
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
