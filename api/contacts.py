"""/v1/contacts: the account's contacts (one per phone number) and the groups each is in."""

from __future__ import annotations

from uuid import UUID

from aiohttp import web

from api.context import POOL, caller, shared
from api.contract import Endpoints, body_of, query_of
from api.schemas.contacts import (
    Contact,
    ContactCreate,
    ContactPage,
    ContactQuery,
    ContactUpdate,
)
from broker import contacts
from broker.accounts import parse_uuid
from broker.contacts import MAX_FIELDS
from broker.db import unavailable_as_error

endpoints = Endpoints("contacts")


def _contact_id(request: web.Request) -> UUID:
    return parse_uuid(request.match_info["id"], what="contact")


@endpoints.post(
    "/v1/contacts",
    body=ContactCreate,
    response=Contact,
    status=201,
    errors=frozenset({404, 409}),
    summary="Add a contact",
    description="`phone` is stored in E.164 (a local number is read in the account's region;"
    " not a valid number: 400 `INVALID_PHONE_NUMBER`). One contact per number: a second one"
    " answers 409 `CONTACT_EXISTS` naming the existing contact. A `group_ids` entry that is"
    " no group of this account answers 404 naming it, and nothing is created.",
)
async def create_contact(request: web.Request) -> Contact:
    who = caller(request)
    body = body_of(request, ContactCreate)
    async with unavailable_as_error(), shared(request)[POOL].acquire() as conn:
        row = await contacts.create_contact(conn, who.account_id, body.contact())
    return Contact.of(row)


@endpoints.get(
    "/v1/contacts",
    query=ContactQuery,
    response=ContactPage,
    errors=frozenset({404}),
    summary="The account's contacts, newest first (cursor pagination)",
    description="Filters combine: `group_id` (members of that group; no such group: 404),"
    " `phone` (one number, E.164 or local), `q` (a prefix of the first or the last name, any"
    " case).",
)
async def list_contacts(request: web.Request) -> ContactPage:
    who = caller(request)
    query = query_of(request, ContactQuery)
    async with unavailable_as_error():
        rows = await contacts.contact_page(
            shared(request)[POOL],
            who.account_id,
            group_id=query.group_id,
            phone=query.phone,
            q=query.q,
            after=query.position,
            limit=query.read_limit,
        )
    shown, next_cursor = query.cut(rows, lambda r: (r.created_at, r.id))
    return ContactPage(data=[Contact.of(r) for r in shown], next_cursor=next_cursor)


@endpoints.get("/v1/contacts/{id}", response=Contact, summary="One contact and its groups")
async def get_contact(request: web.Request) -> Contact:
    who = caller(request)
    contact_id = _contact_id(request)
    async with unavailable_as_error():
        row = await contacts.get_contact(shared(request)[POOL], who.account_id, contact_id)
    return Contact.of(row)


@endpoints.patch(
    "/v1/contacts/{id}",
    body=ContactUpdate,
    response=Contact,
    errors=frozenset({409}),
    summary="Change a contact",
    description="Only the fields given change. `null` clears `first_name`, `last_name` or"
    " `email`; `fields` replaces the whole object; `group_ids` replaces the memberships (an"
    " unknown group: 404, nothing changed); a new `phone` is normalized like on create and"
    " answers 409 `CONTACT_EXISTS` if another contact has it. A contact stored with more than"
    f" {MAX_FIELDS} fields before that limit was enforced changes only with `fields` that"
    " replace them (else 400 `INVALID_FIELDS`, nothing changed).",
)
async def update_contact(request: web.Request) -> Contact:
    who = caller(request)
    contact_id = _contact_id(request)
    changes = body_of(request, ContactUpdate).changes()
    async with unavailable_as_error(), shared(request)[POOL].acquire() as conn:
        row = await contacts.update_contact(conn, who.account_id, contact_id, changes)
    return Contact.of(row)


@endpoints.delete(
    "/v1/contacts/{id}",
    status=204,
    summary="Delete a contact",
    description="It leaves every group it was in.",
)
async def delete_contact(request: web.Request) -> web.Response:
    who = caller(request)
    contact_id = _contact_id(request)
    async with unavailable_as_error():
        await contacts.delete_contact(shared(request)[POOL], who.account_id, contact_id)
    return web.Response(status=204)
