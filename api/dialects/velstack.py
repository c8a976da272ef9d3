"""Velstack's API (/compat/velstack): a Velstack customer's code, unchanged but for the base URL,
sends, keeps its groups and contacts, and registers sender IDs through the native services.

What maps to what (``Authorization: Bearer KEY``, the native key check, on every route):

- ``POST /api/quick/sms`` (``sender``, ``recipient``, ``message``) and ``POST /api/group/sms``
  (``sender``, ``group_id``, ``message``): a native SendRequest (``to``, or ``group_ids`` whose
  members the native send merges) sent with api.messages.send_now; the ``summary`` answer has
  the message's id (the batch's for several recipients), the numbers sent to, the estimated
  cost as ``credit_used`` and the balance at authentication minus it as ``credit_left``.
- ``/api/group`` (GET all, POST ``group_name``), ``/api/group/{id}`` (GET, PUT
  ``group_new_name``, DELETE): broker.contacts groups (create_group, rename_group...).
- ``/api/contact`` (GET all, POST ``phone_number``, ``first_name``, ``last_name``,
  ``email_address``, ``group_id``), ``GET /api/contact/{group_id}`` (a group's contacts),
  ``PUT``/``DELETE /api/contact/{id}``: broker.contacts contacts, checked by the native
  ContactCreate / ContactUpdate models (``group_id`` is the contact's group).
- ``POST /api/sender/id`` (``sender_id``, ``purpose``): broker.sender_ids.register, pending
  until the operator approves it.
- Bodies are read as Velstack's document writes them (api.dialects.velstack_body).
- Every failure: ``{"status": false, "message": ..., "code": HTTP status, "error": CODE,
  "field"?}`` with the native status, except that a balance too low is Velstack's 403
  "Insufficient balance to complete this message" and a dependency down its 503 "Service
  unavailable".
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any
from uuid import UUID

from aiohttp import web

from api.context import POOL, Caller, shared
from api.dialects.base import bearer, by_key, dialect_app, validated
from api.dialects.velstack_body import velstack_params
from api.dialects.velstack_schemas import (
    Contact,
    Failure,
    Group,
    GroupContacts,
    GroupList,
    SenderId,
    Sent,
    Summary,
    credit_text,
    laravel_time,
    reply,
    shown_phone,
)
from api.errors import error_response
from api.messages import send_now
from api.schemas.contacts import ContactCreate, ContactUpdate
from api.schemas.messages import SendAccepted, SendRequest
from api.schemas.sender_ids import SenderIdCreate
from broker import contacts, sender_ids
from broker.accounts import parse_uuid
from broker.db import unavailable_as_error
from broker.errors import BrokerError
from broker.resources import number
from broker.store import Db

INSUFFICIENT = "Insufficient balance to complete this message"
UNAVAILABLE = "Service unavailable"
#: Rows read per query when a Velstack list shows everything.
PAGE = 500
#: Native field names as Velstack's customers know them.
_FIELDS = {
    "to": "recipient",
    "body": "message",
    "from": "sender",
    "group_ids": "group_id",
    "phone": "phone_number",
    "email": "email_address",
}
#: Velstack's names of a contact's values → the native ones.
_CONTACT_VALUES = {
    "first_name": "first_name",
    "last_name": "last_name",
    "phone_number": "phone",
    "email_address": "email",
}

routes = web.RouteTableDef()


def render_error(exc: BrokerError) -> web.Response:
    """The native status and headers (Retry-After...) in Velstack's failure body."""
    native = error_response(exc)
    status, message = native.status, exc.message
    if status == 402:
        status, message = 403, INSUFFICIENT
    elif status == 503:
        message = UNAVAILABLE
    field = getattr(exc, "field", None)
    failure = Failure(
        message=message,
        code=status,
        error=exc.code,
        field=_FIELDS.get(field, field) if isinstance(field, str) else None,
    )
    response = web.json_response(failure.model_dump(mode="json", exclude_none=True), status=status)
    response.headers.update({k: v for k, v in native.headers.items() if k != "Content-Type"})
    return response


async def authenticated(request: web.Request) -> Caller:
    return await by_key(request, bearer(request))


def _id(request: web.Request, what: str) -> UUID:
    return parse_uuid(request.match_info["id"], what=what)


def _given(value: Any) -> bool:
    return value is not None and value != ""


# --- Sending --------------------------------------------------------------------------------


def summary(
    who: Caller, send: SendRequest, accepted: SendAccepted, kind: str, sender: Any
) -> Summary:
    used = Decimal(str(accepted.estimated_cost)) if accepted.estimated_cost is not None else None
    left = Decimal(str(who.balance_at_auth)) - (used or 0)
    first = accepted.messages[0].id if accepted.messages else None
    return Summary.model_validate(
        {
            "message_id": accepted.batch_id or first,
            "type": kind,
            "message": send.body or "",
            "sender": sender if isinstance(sender, str) and sender else None,
            "total_contacts": accepted.recipients,
            "recipients": [shown_phone(m.to, who.region) for m in accepted.messages],
            "credit_used": number(used),
            "credit_left": credit_text(left),
        }
    )


@routes.post("/api/quick/sms")
async def quick_sms(request: web.Request) -> web.Response:
    who = await authenticated(request)
    values = await velstack_params(request)
    native = {"to": values.get("recipient"), "body": values.get("message")}
    if _given(values.get("sender")):
        native["from"] = values["sender"]
    send = validated(request, SendRequest, native)
    accepted = await send_now(request, send)
    sent = summary(who, send, accepted, "Quick SMS", values.get("sender"))
    return reply("Message sent Successfully", Sent(summary=sent))


@routes.post("/api/group/sms")
async def group_sms(request: web.Request) -> web.Response:
    who = await authenticated(request)
    values = await velstack_params(request)
    group = values.get("group_id")
    native = {"group_ids": [group] if _given(group) else [], "body": values.get("message")}
    if _given(values.get("sender")):
        native["from"] = values["sender"]
    send = validated(request, SendRequest, native)
    accepted = await send_now(request, send)
    sent = summary(who, send, accepted, "Group SMS", values.get("sender"))
    return reply("Message sent Successfully", Sent(summary=sent))


# --- Groups ---------------------------------------------------------------------------------


async def every_group(db: Db, account_id: UUID) -> list[contacts.GroupRow]:
    """The account's groups, oldest first, as Velstack lists them (all in one answer)."""
    rows: list[contacts.GroupRow] = []
    after = None
    while True:
        page = await contacts.group_page(db, account_id, after=after, limit=PAGE)
        rows.extend(page)
        if len(page) < PAGE:
            return rows[::-1]
        after = (page[-1].created_at, page[-1].id)


@routes.get("/api/group")
async def list_groups(request: web.Request) -> web.Response:
    who = await authenticated(request)
    async with unavailable_as_error():
        rows = await every_group(shared(request)[POOL], who.account_id)
    return reply("Showing all groups", GroupList(summary=[Group.of(r) for r in rows]))


@routes.get("/api/group/{id}")
async def get_group(request: web.Request) -> web.Response:
    who = await authenticated(request)
    group_id = _id(request, "group")
    async with unavailable_as_error():
        row = await contacts.get_group(shared(request)[POOL], who.account_id, group_id)
    return reply("Showing a single group", [Group.of(row)])


@routes.post("/api/group")
async def create_group(request: web.Request) -> web.Response:
    who = await authenticated(request)
    values = await velstack_params(request)
    name = contacts.parse_group_name(values.get("group_name"), field="group_name")
    async with unavailable_as_error():
        row = await contacts.create_group(shared(request)[POOL], who.account_id, name)
    return reply("Group created successfully", Group.of(row))


@routes.put("/api/group/{id}")
async def rename_group(request: web.Request) -> web.Response:
    who = await authenticated(request)
    group_id = _id(request, "group")
    values = await velstack_params(request)
    name = contacts.parse_group_name(values.get("group_new_name"), field="group_new_name")
    async with unavailable_as_error():
        row = await contacts.rename_group(shared(request)[POOL], who.account_id, group_id, name)
    return reply(f"Group updated to {row.name}")


@routes.delete("/api/group/{id}")
async def delete_group(request: web.Request) -> web.Response:
    who = await authenticated(request)
    group_id = _id(request, "group")
    async with unavailable_as_error():
        await contacts.delete_group(shared(request)[POOL], who.account_id, group_id)
    return reply("Group deleted successfully")


# --- Contacts -------------------------------------------------------------------------------


async def every_contact(
    db: Db, account_id: UUID, group_id: UUID | None = None
) -> list[contacts.ContactRow]:
    """The account's (or a group's) contacts, oldest first, all in one answer."""
    rows: list[contacts.ContactRow] = []
    after = None
    while True:
        page = await contacts.contact_page(
            db, account_id, group_id=group_id, after=after, limit=PAGE
        )
        rows.extend(page)
        if len(page) < PAGE:
            return rows[::-1]
        after = (page[-1].created_at, page[-1].id)


async def group_names(db: Db, account_id: UUID) -> dict[UUID, str]:
    return {g.id: g.name for g in await every_group(db, account_id)}


def contact_values(values: dict[str, Any]) -> dict[str, Any]:
    """A Velstack contact's values under the native names (only those given)."""
    native = {_CONTACT_VALUES[k]: v for k, v in values.items() if k in _CONTACT_VALUES}
    if "group_id" in values:
        group = values["group_id"]
        native["group_ids"] = [group] if _given(group) else []
    return native


@routes.post("/api/contact")
async def create_contact(request: web.Request) -> web.Response:
    who = await authenticated(request)
    body = validated(request, ContactCreate, contact_values(await velstack_params(request)))
    pool = shared(request)[POOL]
    async with unavailable_as_error(), pool.acquire() as conn:
        row = await contacts.create_contact(conn, who.account_id, body.contact())
        names = await group_names(conn, who.account_id) if row.group_ids else {}
    return reply("New contact created successfully", Contact.of(row, who.region, names))


@routes.get("/api/contact")
async def list_contacts(request: web.Request) -> web.Response:
    who = await authenticated(request)
    pool = shared(request)[POOL]
    async with unavailable_as_error(), pool.acquire() as conn:
        rows = await every_contact(conn, who.account_id)
        names = await group_names(conn, who.account_id)
    return reply("Showing all contacts", [Contact.of(r, who.region, names) for r in rows])


@routes.get("/api/contact/{id}")
async def group_contacts(request: web.Request) -> web.Response:
    """The id is a group's: its contacts."""
    who = await authenticated(request)
    group_id = _id(request, "group")
    pool = shared(request)[POOL]
    async with unavailable_as_error(), pool.acquire() as conn:
        group = await contacts.get_group(conn, who.account_id, group_id)
        rows = await every_contact(conn, who.account_id, group_id)
        names = await group_names(conn, who.account_id)
    shown = [Contact.of(r, who.region, names) for r in rows]
    return reply(f"Showing contacts of {group.name}", GroupContacts(results=shown))


@routes.put("/api/contact/{id}")
async def update_contact(request: web.Request) -> web.Response:
    who = await authenticated(request)
    contact_id = _id(request, "contact")
    body = validated(request, ContactUpdate, contact_values(await velstack_params(request)))
    pool = shared(request)[POOL]
    async with unavailable_as_error(), pool.acquire() as conn:
        await contacts.update_contact(conn, who.account_id, contact_id, body.changes())
    return reply("Contact updated successfully")


@routes.delete("/api/contact/{id}")
async def delete_contact(request: web.Request) -> web.Response:
    who = await authenticated(request)
    contact_id = _id(request, "contact")
    async with unavailable_as_error():
        await contacts.delete_contact(shared(request)[POOL], who.account_id, contact_id)
    return reply("Contact deleted successfully")


# --- Sender IDs -----------------------------------------------------------------------------


@routes.post("/api/sender/id")
async def register_sender_id(request: web.Request) -> web.Response:
    who = await authenticated(request)
    values = await velstack_params(request)
    body = validated(
        request,
        SenderIdCreate,
        {"sender_id": values.get("sender_id"), "purpose": values.get("purpose")},
    )
    async with unavailable_as_error():
        row = await sender_ids.register(
            shared(request)[POOL], who.account_id, body.sender_id, body.purpose
        )
    registered = SenderId(
        id=row.sender_id, purpose=row.purpose, status=row.status, date=laravel_time(row.created_at)
    )
    return reply("Id registered successfully", [registered])


def create_app() -> web.Application:
    return dialect_app(routes, render_error)
