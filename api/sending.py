"""Accepting a send: the checks every send passes, then one confirmed publish to ingest.

POST /v1/messages and POST /v1/otp both send through here. ``prepare`` does every check that
can refuse the request (channel, sender ID, opt-outs, balance) and gives each recipient its
message id, encoding and parts as the charge worker will count them; ``publish`` makes it
durable. Between the two a caller may record what it needs under the message ids (an
idempotency claim, an OTP row). What the account knows about the send (default sender,
approved sender IDs, opt-outs) is read in one round trip and remembered for a second
(api.send_rules): never a query per number, and for a busy account not one per request. A
template or group send's draft comes with its recipients' opt-outs already read by the walk that
made it (Draft.opted_out), so they are not asked about twice.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from aiohttp import web

from api.context import INGEST, POOL, ROUTES, SEND_RULES, Caller, caller, shared
from api.errors import ApiError
from api.metrics import MESSAGES_ACCEPTED
from api.schemas.messages import AcceptedMessage, EncodingName
from broker.db import unavailable_as_error
from broker.errors import InputError, InsufficientCredits
from broker.ids import new_id
from broker.long_mode import LongMode, PartCounter
from broker.phone import is_numeric_sender
from broker.queue_messages import IngestRequest
from broker.routing import RouteTable
from broker.segmentation import Encoding
from broker.status import MessageStatus
from broker.store.send_checks import SendRules


@dataclass(frozen=True, slots=True)
class Draft:
    """A send as the customer asked for it, validated and normalized."""

    recipients: list[str]
    #: The text stored and shown in the API and webhooks.
    body: str
    #: ``from``; None: the account's default sender.
    sender: str | None = None
    channel: str = "sms"
    client_ref: str | None = None
    callback_url: str | None = None
    scheduled_at: datetime | None = None
    #: Seconds after it is due (now, or scheduled_at) after which it is not submitted.
    validity_period: int | None = None
    #: What the carrier gets instead of ``body`` (an OTP's text; ``body`` has the code masked).
    plain_body: str | None = field(default=None, repr=False)
    #: Per recipient, its own text instead of ``body`` (a template rendered for it).
    texts: dict[str, str] = field(default_factory=dict)
    #: The recipients who opted out, when making the draft already read them (a template or
    #: group send's audience walk); None: ``prepare`` reads them. Either way once per send.
    opted_out: frozenset[str] | None = None

    def text_for(self, to: str) -> str:
        return self.texts.get(to, self.body)


@dataclass(frozen=True, slots=True)
class Prepared:
    """A send that passed every check, not yet published."""

    request: IngestRequest
    messages: list[AcceptedMessage]
    estimated_cost: Decimal

    @property
    def batch_id(self) -> uuid.UUID | None:
        return self.request.batch_id


def check_channel(channel: str, who: Caller, routes: RouteTable | None = None) -> None:
    """The key may use the channel, and (WhatsApp) the gateway has a route for it.

    ``routes`` refreshed by the caller; None: the WhatsApp route is not looked for.
    """
    if channel not in who.channels:
        raise ApiError(
            403, "CHANNEL_NOT_ALLOWED", f"this API key may not use the {channel} channel"
        )
    if channel != "sms" and (routes is None or not routes.has_channel(channel)):
        raise InputError(
            "no WhatsApp connector is configured on this gateway",
            code="CHANNEL_UNAVAILABLE",
            field="channel",
        )


def _sender(rules: SendRules, asked: str | None) -> str | None:
    """The sender the send goes out with: ``from``, else the account's default; an
    alphanumeric one must be an approved sender ID of the account."""
    sender = asked if asked is not None else rules.default_sender
    if sender is None or sender in rules.approved_senders or is_numeric_sender(sender):
        return sender
    whose = "`from`" if asked is not None else "the account's default sender"
    raise InputError(
        f"{whose} {sender!r} is not an approved sender ID of this account "
        "(register it with POST /v1/sender-ids)",
        code="INVALID_SENDER_ID",
        field="from",
    )


@dataclass(frozen=True, slots=True)
class Priced:
    """One text to one number as the charge worker will count and price it."""

    encoding: EncodingName
    segments: int
    #: Route price × segments; None when no route carries the number (it would fail NO_ROUTE).
    cost: Decimal | None


def price(
    routes: RouteTable,
    to: str,
    text: str,
    count: PartCounter | None = None,
    channel: str = "sms",
) -> Priced:
    """Parts with the long-message mode of the connector ``to`` routes to, and their price;
    a WhatsApp message is one part whatever its length."""
    route = routes.match(to, channel)
    seg = (count or PartCounter())(text, route.mode if route is not None else LongMode())
    encoding: EncodingName = "GSM7" if seg.encoding is Encoding.GSM7 else "UCS2"
    segments = seg.segments if channel == "sms" else 1
    cost = route.price * segments if route is not None else None
    return Priced(encoding, segments, cost)


def plan(
    draft: Draft, routes: RouteTable, opted_out: frozenset[str]
) -> tuple[list[AcceptedMessage], Decimal]:
    """Each recipient's message as the charge worker will count it, and the estimated cost
    (nothing for a recipient who opted out: that message fails, uncharged)."""
    count = PartCounter()
    status = MessageStatus.SCHEDULED if draft.scheduled_at is not None else MessageStatus.QUEUED
    messages: list[AcceptedMessage] = []
    estimate = Decimal(0)
    for to in draft.recipients:
        priced = price(routes, to, draft.text_for(to), count, draft.channel)
        refused = to in opted_out
        if priced.cost is not None and not refused:
            estimate += priced.cost
        messages.append(
            AcceptedMessage(
                id=new_id(),
                to=to,
                status=MessageStatus.FAILED if refused else status,
                encoding=priced.encoding,
                segments=priced.segments,
            )
        )
    return messages, estimate


async def checked_sender(
    request: web.Request, channel: str, asked: str | None
) -> tuple[SendRules, str | None]:
    """The channel is the key's and the sender one the account may use: the account's send
    rules, and the sender to send with."""
    who = caller(request)
    routes = shared(request)[ROUTES]
    if channel != "sms":
        async with unavailable_as_error():
            await routes.refresh(shared(request)[POOL])
    check_channel(channel, who, routes)
    async with unavailable_as_error():
        rules = await shared(request)[SEND_RULES].rules(shared(request)[POOL], who.account_id)
    return rules, _sender(rules, asked)


def timing(
    scheduled_at: datetime | None, validity_period: int | None
) -> tuple[datetime, datetime | None]:
    """(accepted at: now, expires at: validity_period seconds after it is due, if given)."""
    accepted_at = datetime.now(UTC)
    due = scheduled_at or accepted_at
    return accepted_at, due + timedelta(seconds=validity_period) if validity_period else None


async def prepare(request: web.Request, draft: Draft) -> Prepared:
    """Every check that may refuse the send; raises the customer's error if one does."""
    who = caller(request)
    rules, sender = await checked_sender(request, draft.channel, draft.sender)
    pool = shared(request)[POOL]
    routes = shared(request)[ROUTES]
    cache = shared(request)[SEND_RULES]
    async with unavailable_as_error():
        await routes.refresh(pool)
        opted_out = draft.opted_out
        if opted_out is None:
            opted_out = await cache.opted_out(pool, who.account_id, rules, draft.recipients)
    if len(draft.recipients) == 1 and draft.recipients[0] in opted_out:
        raise ApiError(
            403, "OPTED_OUT", f"{draft.recipients[0]} opted out of this account's messages"
        )
    messages, estimate = plan(draft, routes, opted_out)
    if Decimal(str(who.balance_at_auth)) < estimate:
        raise InsufficientCredits(
            f"this send costs {estimate} credits and the balance is {who.balance_at_auth}"
        )
    accepted_at, expires_at = timing(draft.scheduled_at, draft.validity_period)
    ingest = IngestRequest(
        account_id=who.account_id,
        batch_id=new_id() if len(messages) > 1 else None,
        body=draft.body,
        sender=sender,
        client_ref=draft.client_ref,
        callback_url=draft.callback_url,
        accepted_at=accepted_at,
        recipients=[(m.id, m.to) for m in messages],
        scheduled_at=draft.scheduled_at,
        expires_at=expires_at,
        opted_out=[m.id for m in messages if m.to in opted_out],
        plain_body=draft.plain_body,
        bodies={m.id: draft.texts[m.to] for m in messages if m.to in draft.texts},
        channel="whatsapp" if draft.channel == "whatsapp" else "sms",
    )
    return Prepared(ingest, messages, estimate)


async def publish(request: web.Request, prepared: Prepared) -> None:
    """Durable once this returns (RabbitMQ confirmed it): the workers own it from here."""
    await shared(request)[INGEST].publish(prepared.request)
    MESSAGES_ACCEPTED.inc(len(prepared.messages))


async def accept(request: web.Request, draft: Draft) -> Prepared:
    """prepare, then publish."""
    prepared = await prepare(request, draft)
    await publish(request, prepared)
    return prepared
