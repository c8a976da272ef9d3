"""Who a send reaches and what each recipient reads: `to`, `group_ids`, `template_id`.

A send of one text to numbers goes straight to api.sending. A template send, or a send to
groups of up to MAX_RECIPIENTS numbers, is made here in the request: each recipient's text is
rendered (a missing variable is a 400 naming it), then it is an ordinary send with personal
texts. A send to groups with more recipients is only checked here (the groups, the template's
variables against every member in one query, the sender, a balance above zero) and stored
with its batch; the expand worker makes its messages (workers.expander) and
GET /v1/batches/{id} shows how far it got.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

from aiohttp import web

from api import sending
from api.context import POOL, SETTINGS, caller, shared
from api.schemas.messages import SendRequest
from broker.audiences import GroupSend, Personalizer, recipients
from broker.db import unavailable_as_error
from broker.errors import InputError, InsufficientCredits, NotFound
from broker.ids import new_id
from broker.store import audiences as store
from broker.store import templates as templates_store
from broker.store.audiences import Member
from broker.templates import MissingVariable, Template, contact_values


@dataclass(frozen=True, slots=True)
class Background:
    """A send to groups too large to make in the request, checked and ready to store."""

    batch_id: uuid.UUID
    account_id: uuid.UUID
    recipients: int
    send: GroupSend
    group_ids: list[uuid.UUID]
    numbers: list[str]


@dataclass(frozen=True, slots=True)
class Audience:
    """What a send names: its text or template, its groups and how many it reaches."""

    personal: Personalizer
    group_ids: list[uuid.UUID]
    numbers: list[str]
    #: Every recipient, counted in PostgreSQL (only when the send names groups).
    total: int


def draft_of(
    send: SendRequest,
    numbers: list[str] | None = None,
    texts: dict[str, str] | None = None,
    opted_out: frozenset[str] | None = None,
) -> sending.Draft:
    """The send as api.sending takes it: to ``numbers`` (default: `to`), ``texts`` each
    recipient's own (a template's), ``opted_out`` those of them who opted out, when known."""
    body = send.body if send.body is not None else next(iter((texts or {}).values()), "")
    return sending.Draft(
        recipients=send.recipients if numbers is None else numbers,
        body=body,
        sender=send.sender,
        channel=send.channel,
        client_ref=send.client_ref,
        callback_url=send.callback_url,
        scheduled_at=send.scheduled_at,
        validity_period=send.validity_period,
        texts=texts or {},
        opted_out=opted_out,
    )


async def audience(request: web.Request, send: SendRequest) -> Audience:
    """The template and groups of the send, each the account's (404 if not), and its reach."""
    who = caller(request)
    pool = shared(request)[POOL]
    template: Template | None = None
    total = len(send.recipients)
    async with unavailable_as_error():
        if send.template_id is not None:
            found = await templates_store.get(pool, who.account_id, send.template_id)
            if found is None:
                raise NotFound(f"template {send.template_id} not found")
            template = Template(found.body)
        if send.group_ids:
            unknown = await store.unknown_groups(pool, who.account_id, send.group_ids)
            if unknown:
                raise NotFound(f"group {unknown[0]} not found")
            total = await store.recipient_count(
                pool, who.account_id, send.group_ids, send.recipients
            )
    if total == 0:
        raise InputError(
            "the groups have no members and `to` names no number",
            code="MISSING_RECIPIENT",
            field="group_ids",
        )
    limit = shared(request)[SETTINGS].max_body_chars
    personal = Personalizer(send.body, template, send.variables, limit)
    return Audience(personal, list(send.group_ids), send.recipients, total)


async def members(request: web.Request, reach: Audience) -> AsyncIterator[Member]:
    """Every recipient once: the send's own numbers, then the groups' members."""
    pool = shared(request)[POOL]
    async with unavailable_as_error():
        async for page in recipients(
            pool, caller(request).account_id, reach.group_ids, reach.numbers
        ):
            for member in page.members:
                yield member


async def resolve(request: web.Request, send: SendRequest) -> sending.Draft | Background:
    """The send made in the request (a Draft), or checked for the expand worker."""
    if send.template_id is None and not send.group_ids:
        return draft_of(send)
    reach = await audience(request, send)
    if reach.group_ids and reach.total > shared(request)[SETTINGS].max_recipients:
        return await background(request, send, reach)
    numbers: list[str] = []
    texts: dict[str, str] = {}
    refused: set[str] = set()
    async for m in members(request, reach):
        numbers.append(m.phone)
        if m.opted_out:
            refused.add(m.phone)
        if reach.personal.template is not None:
            texts[m.phone] = reach.personal.text(m.phone, m.values)
    # The walk read every recipient's opt-out: the send's checks take it, not ask again.
    return draft_of(send, numbers, texts, frozenset(refused))


async def background(request: web.Request, send: SendRequest, reach: Audience) -> Background:
    """Every check a large group send can pass before its messages are made."""
    who = caller(request)
    _, sender = await sending.checked_sender(request, send.channel, send.sender)
    template = reach.personal.template
    if template is not None:
        await check_variables(request, reach, template)
    if who.balance_at_auth <= 0:
        raise InsufficientCredits(f"the balance is {who.balance_at_auth}")
    accepted_at, expires_at = sending.timing(send.scheduled_at, send.validity_period)
    group_send = GroupSend(
        channel=send.channel,
        body=send.body,
        template=template.body if template is not None else None,
        variables=send.variables,
        sender=sender,
        client_ref=send.client_ref,
        callback_url=send.callback_url,
        accepted_at=accepted_at,
        scheduled_at=send.scheduled_at,
        expires_at=expires_at,
        max_body_chars=reach.personal.max_chars,
    )
    return Background(
        new_id(), who.account_id, reach.total, group_send, reach.group_ids, reach.numbers
    )


async def check_variables(request: web.Request, reach: Audience, template: Template) -> None:
    """MissingVariable if a recipient would lack one: members in one query, numbers here."""
    who = caller(request)
    pool = shared(request)[POOL]
    needed = [v for v in template.variables if v not in reach.personal.variables]
    async with unavailable_as_error():
        gaps = await store.lacking(pool, who.account_id, reach.group_ids, needed)
        values = await store.values_by_phone(pool, who.account_id, reach.numbers)
    if gaps:
        raise MissingVariable(gaps[0].name, gaps[0].example, count=gaps[0].count)
    for number in reach.numbers:
        own = values.get(number) or contact_values(number)
        for name in needed:
            if name not in own:
                raise MissingVariable(name, number)


async def start(request: web.Request, work: Background) -> None:
    """Store the batch and its expansion: durable once this returns."""
    async with (
        unavailable_as_error(),
        shared(request)[POOL].acquire() as conn,
        conn.transaction(),
    ):
        await store.start_expansion(
            conn,
            work.batch_id,
            work.account_id,
            work.send.model_dump_json(),
            work.group_ids,
            work.numbers,
            work.recipients,
        )
