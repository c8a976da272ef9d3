"""Inbound messages (MO): reassembled, attributed to the account owning the number, stored,
and their opt-out keywords acted on (broker.opt_outs)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal
from uuid import UUID

import asyncpg

from broker.opt_outs import Action, command_of, default_help_text, help_reply_id, sender_phone
from broker.queue_messages import InboundEvent, IngestRequest, WebhookEvent
from broker.resources import iso
from broker.store import connectors, opt_outs
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


def address(raw: str) -> str:
    """How an inbound address is stored and shown: '+digits' for a number longer than 8
    digits, else as the carrier gave it (a short code, an alphanumeric sender)."""
    digits = raw.lstrip("+")
    return f"+{digits}" if digits.isdigit() and len(digits) > 8 else raw


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


@dataclass(frozen=True, slots=True)
class Stored:
    """What storing one MO leads to once its transaction commits."""

    #: The message.inbound webhook event (None: a fragment, a redelivery, or no owner).
    event: WebhookEvent | None = None
    #: The reply to a HELP, for the ingest queue (the same message id on every delivery).
    reply: IngestRequest | None = None


async def store_inbound(conn: asyncpg.Connection, mo: Inbound) -> Stored:
    """Store one MO (or fragment) and act on its keyword, inside the caller's transaction.

    A keyword (broker.opt_outs) sent to one of an account's numbers opts the sender out of
    that account or back in, or asks for the account's help text. A redelivered MO changes
    nothing again and gets no second webhook event; the reply to its HELP is made again with
    the same message id, which the charge worker stores only once.
    """
    text = mo.text
    if mo.concat is not None and mo.concat[1] > 1:
        assembled = await _assemble(conn, mo)
        if assembled is None:
            return Stored()
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
        address(mo.from_number),
        address(mo.to_number),
        text,
        keyword,
        mo.received_at,
    )
    if not stored:
        return Stored(reply=await _reply_again(conn, mo))
    if account_id is None:
        return Stored()
    data: dict[str, Any] = {
        "id": str(mo.id),
        "from": address(mo.from_number),
        "to": address(mo.to_number),
        "body": text,
        "keyword": keyword or None,
        "received_at": iso(mo.received_at),
        "action": None,
        "action_keyword": None,
    }
    reply = None
    command = command_of(text)
    phone = sender_phone(mo.from_number)
    if command is not None and phone is not None:
        data["action"], data["action_keyword"] = command.action.value, command.keyword
        if command.action is Action.OPT_OUT:
            await opt_outs.add(
                conn, account_id, phone, source="keyword", keyword=command.keyword, inbound_id=mo.id
            )
        elif command.action is Action.OPT_IN:
            await opt_outs.remove(conn, account_id, phone)
        else:
            reply = await _help_reply(conn, account_id, mo, phone)
    event = make_event(MESSAGE_INBOUND, account_id, data, event_id=event_id_for(f"inbound:{mo.id}"))
    return Stored(event=event, reply=reply)


async def _help_reply(
    conn: asyncpg.Connection, account_id: UUID, mo: Inbound, phone: str
) -> IngestRequest:
    """An ordinary message from the number the HELP was sent to, back to its sender, on the
    channel the HELP came on: a WhatsApp user is answered on WhatsApp, never by SMS.

    It goes like any send on that channel: routed by the channel's routes, charged at their
    price, posted by the whatsapp role. A WhatsApp HELP whose sender no WhatsApp route covers
    (or whose connector is disabled) is not answered at all: the reply ends ``failed``
    ``NO_ROUTE``, uncharged, with its status webhook, so the account sees why. Falling back to
    SMS would text a number that asked on WhatsApp, from a number it never texted, at SMS
    prices.
    """
    name, text = await store.help_text(conn, account_id)
    number = mo.to_number
    return IngestRequest(
        account_id=account_id,
        body=text or default_help_text(name),
        sender=number.lstrip("+") if number.lstrip("+").isdigit() else number,
        accepted_at=datetime.now(UTC),
        recipients=[(help_reply_id(mo.id), phone)],
        channel=await _channel_of(conn, mo.connector),
    )


async def _channel_of(conn: asyncpg.Connection, connector: str) -> Literal["sms", "whatsapp"]:
    """The channel a connector's inbound messages came on (a connector no longer known: SMS,
    as the carriers' events always were)."""
    return "whatsapp" if await connectors.kind(conn, connector) == "whatsapp" else "sms"


async def _reply_again(conn: asyncpg.Connection, mo: Inbound) -> IngestRequest | None:
    """The reply of a redelivered HELP (its first publish may have been lost after commit)."""
    found = await store.stored(conn, mo.id)
    if found is None or found.account_id is None:
        return None
    command = command_of(found.body)
    phone = sender_phone(mo.from_number)
    if command is None or command.action is not Action.HELP or phone is None:
        return None
    return await _help_reply(conn, found.account_id, mo, phone)
