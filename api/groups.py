"""/v1/groups: named sets of the account's contacts, and their members."""

from __future__ import annotations

from uuid import UUID

from aiohttp import web

from api.context import POOL, caller, shared
from api.contract import Endpoints, body_of, query_of
from api.schemas.contacts import Contact, ContactPage
from api.schemas.groups import (
    Group,
    GroupCreate,
    GroupPage,
    GroupQuery,
    GroupUpdate,
    MemberQuery,
    MembersAdd,
    MembersAdded,
)
from broker import contacts
from broker.accounts import parse_uuid
from broker.db import unavailable_as_error

endpoints = Endpoints("groups")


def _group_id(request: web.Request) -> UUID:
    return parse_uuid(request.match_info["id"], what="group")


def _resource(row: contacts.GroupRow) -> Group:
    return Group.model_validate(row, from_attributes=True)


@endpoints.post(
    "/v1/groups",
    body=GroupCreate,
    response=Group,
    status=201,
    errors=frozenset({409}),
    summary="Create a group",
    description="A name another group of the account has answers 409 `GROUP_EXISTS`.",
)
async def create_group(request: web.Request) -> Group:
    who = caller(request)
    body = body_of(request, GroupCreate)
    async with unavailable_as_error():
        row = await contacts.create_group(shared(request)[POOL], who.account_id, body.name)
    return _resource(row)


@endpoints.get(
    "/v1/groups",
    query=GroupQuery,
    response=GroupPage,
    summary="The account's groups, newest first (cursor pagination)",
)
async def list_groups(request: web.Request) -> GroupPage:
    who = caller(request)
    query = query_of(request, GroupQuery)
    async with unavailable_as_error():
        rows = await contacts.group_page(
            shared(request)[POOL], who.account_id, after=query.position, limit=query.read_limit
        )
    shown, next_cursor = query.cut(rows, lambda r: (r.created_at, r.id))
    return GroupPage(data=[_resource(r) for r in shown], next_cursor=next_cursor)


@endpoints.get("/v1/groups/{id}", response=Group, summary="One group and its member count")
async def get_group(request: web.Request) -> Group:
    who = caller(request)
    group_id = _group_id(request)
    async with unavailable_as_error():
        row = await contacts.get_group(shared(request)[POOL], who.account_id, group_id)
    return _resource(row)


@endpoints.patch(
    "/v1/groups/{id}",
    body=GroupUpdate,
    response=Group,
    errors=frozenset({409}),
    summary="Rename a group",
    description="A name another group of the account has answers 409 `GROUP_EXISTS`.",
)
async def rename_group(request: web.Request) -> Group:
    who = caller(request)
    group_id = _group_id(request)
    body = body_of(request, GroupUpdate)
    async with unavailable_as_error():
        row = await contacts.rename_group(
            shared(request)[POOL], who.account_id, group_id, body.name
        )
    return _resource(row)


@endpoints.delete(
    "/v1/groups/{id}",
    status=204,
    summary="Delete a group",
    description="Its contacts stay; only their membership in this group goes.",
)
async def delete_group(request: web.Request) -> web.Response:
    who = caller(request)
    group_id = _group_id(request)
    async with unavailable_as_error():
        await contacts.delete_group(shared(request)[POOL], who.account_id, group_id)
    return web.Response(status=204)


@endpoints.get(
    "/v1/groups/{id}/contacts",
    query=MemberQuery,
    response=ContactPage,
    summary="The group's members, newest contact first (cursor pagination)",
    description="Ordered by when each contact was created, not when it joined; the same"
    " list as GET /v1/contacts?group_id=, which also takes `phone` and `q`.",
)
async def list_members(request: web.Request) -> ContactPage:
    who = caller(request)
    group_id = _group_id(request)
    query = query_of(request, MemberQuery)
    async with unavailable_as_error():
        rows = await contacts.contact_page(
            shared(request)[POOL],
            who.account_id,
            group_id=group_id,
            after=query.position,
            limit=query.read_limit,
        )
    shown, next_cursor = query.cut(rows, lambda r: (r.created_at, r.id))
    return ContactPage(data=[Contact.of(r) for r in shown], next_cursor=next_cursor)


@endpoints.post(
    "/v1/groups/{id}/contacts",
    body=MembersAdd,
    response=MembersAdded,
    summary="Add contacts to a group",
    description="Contacts already in the group are fine (not counted in `added`). An id that"
    " is no contact of this account answers 404 naming it, and nobody is added.",
)
async def add_members(request: web.Request) -> MembersAdded:
    who = caller(request)
    group_id = _group_id(request)
    body = body_of(request, MembersAdd)
    async with unavailable_as_error(), shared(request)[POOL].acquire() as conn:
        added, members = await contacts.add_members(
            conn, who.account_id, group_id, body.contact_ids
        )
    return MembersAdded(added=added, members=members)


@endpoints.delete(
    "/v1/groups/{id}/contacts/{contact_id}",
    status=204,
    summary="Remove a contact from a group",
    description="The contact stays; 404 if it is not a member of the group.",
)
async def remove_member(request: web.Request) -> web.Response:
    who = caller(request)
    group_id = _group_id(request)
    contact_id = parse_uuid(request.match_info["contact_id"], what="contact")
    async with unavailable_as_error():
        await contacts.remove_member(shared(request)[POOL], who.account_id, group_id, contact_id)
    return web.Response(status=204)
