"""/v1/templates: message bodies with ``{{variable}}`` placeholders, and their preview.

A template is stored as written; its ``variables`` are read from the body each time it is
shown, so they can never disagree with it. A preview renders the body for one number the way a
send would (the number's contact first, then the request's ``variables``) and prices it on the
route that number takes, sending nothing.
"""

from __future__ import annotations

from uuid import UUID

from aiohttp import web

from api.context import POOL, ROUTES, caller, shared, validation_context
from api.contract import Endpoints, body_of, query_of
from api.schemas.templates import (
    Template,
    TemplateCreate,
    TemplatePage,
    TemplatePreview,
    TemplatePreviewRequest,
    TemplateQuery,
    TemplateUpdate,
    body_limit,
)
from api.sending import price
from broker.accounts import parse_uuid
from broker.db import unavailable_as_error
from broker.errors import InputError, NotFound
from broker.resources import number
from broker.store import audiences
from broker.store import templates as store
from broker.templates import Template as Renderer

endpoints = Endpoints("templates")


def _template_id(request: web.Request) -> UUID:
    return parse_uuid(request.match_info["id"], what="template")


def _not_found(template_id: UUID) -> NotFound:
    return NotFound(f"template {template_id} not found")


async def _stored(request: web.Request, template_id: UUID) -> store.TemplateRow:
    async with unavailable_as_error():
        row = await store.get(shared(request)[POOL], caller(request).account_id, template_id)
    if row is None:
        raise _not_found(template_id)
    return row


@endpoints.post(
    "/v1/templates",
    body=TemplateCreate,
    response=Template,
    status=201,
    errors=frozenset({409}),
    summary="Create a template",
    description="`variables` in the answer lists the body's placeholders. A name the account"
    " has already answers 409 `TEMPLATE_EXISTS`; a `{{` or `}}` that is not part of a"
    " placeholder answers 400 `INVALID_TEMPLATE`.",
)
async def create_template(request: web.Request) -> Template:
    who = caller(request)
    body = body_of(request, TemplateCreate)
    async with unavailable_as_error():
        row = await store.insert(shared(request)[POOL], who.account_id, body.name, body.body)
    return Template.of(row)


@endpoints.get(
    "/v1/templates",
    query=TemplateQuery,
    response=TemplatePage,
    summary="The account's templates, newest first (cursor pagination)",
)
async def list_templates(request: web.Request) -> TemplatePage:
    who = caller(request)
    query = query_of(request, TemplateQuery)
    async with unavailable_as_error():
        rows = await store.page(
            shared(request)[POOL], who.account_id, after=query.position, limit=query.read_limit
        )
    shown, next_cursor = query.cut(rows, lambda r: (r.created_at, r.id))
    return TemplatePage(data=[Template.of(r) for r in shown], next_cursor=next_cursor)


@endpoints.get("/v1/templates/{id}", response=Template, summary="One template")
async def get_template(request: web.Request) -> Template:
    return Template.of(await _stored(request, _template_id(request)))


@endpoints.patch(
    "/v1/templates/{id}",
    body=TemplateUpdate,
    response=Template,
    errors=frozenset({409}),
    summary="Rename a template or change its body",
    description="Only the fields given change (at least one; null is refused). Sends already"
    " accepted keep the text they were rendered with.",
)
async def update_template(request: web.Request) -> Template:
    who = caller(request)
    template_id = _template_id(request)
    change = body_of(request, TemplateUpdate)
    async with unavailable_as_error():
        row = await store.update(
            shared(request)[POOL],
            who.account_id,
            template_id,
            name=change.name,
            body=change.body,
        )
    if row is None:
        raise _not_found(template_id)
    return Template.of(row)


@endpoints.delete("/v1/templates/{id}", status=204, summary="Delete a template")
async def delete_template(request: web.Request) -> web.Response:
    who = caller(request)
    template_id = _template_id(request)
    async with unavailable_as_error():
        deleted = await store.delete(shared(request)[POOL], who.account_id, template_id)
    if not deleted:
        raise _not_found(template_id)
    return web.Response(status=204)


@endpoints.post(
    "/v1/templates/{id}/preview",
    body=TemplatePreviewRequest,
    response=TemplatePreview,
    summary="The template rendered for one number, with its encoding, parts and cost",
    description="Renders as a send would: when `to` is a contact of the account its own values"
    " (`name`, `first_name`, `last_name`, `email`, `fields`) fill the placeholders first, then"
    " `variables`; `{{phone}}` is always the number. Nothing is sent or charged. A placeholder"
    " with no value answers 400 `MISSING_VARIABLE` naming it; a rendered text over the body"
    " limit answers 400 `BODY_TOO_LONG`. `cost` is null when no route carries the number.",
)
async def preview_template(request: web.Request) -> TemplatePreview:
    who = caller(request)
    template_id = _template_id(request)
    ask = body_of(request, TemplatePreviewRequest)
    pool = shared(request)[POOL]
    routes = shared(request)[ROUTES]
    async with unavailable_as_error():
        row = await store.get(pool, who.account_id, template_id)
        if row is None:
            raise _not_found(template_id)
        await routes.refresh(pool)
        contacts = await audiences.values_by_phone(pool, who.account_id, [ask.to])
    own = {**contacts.get(ask.to, {}), "phone": ask.to}
    text = Renderer(row.body).render(own, ask.variables, phone=ask.to)
    limit = body_limit(validation_context(request))
    if not text:
        raise InputError(
            "the template renders to an empty text for this recipient",
            code="EMPTY_BODY",
            field="variables",
        )
    if len(text) > limit:
        raise InputError(
            f"the rendered text has {len(text)} characters; the maximum is {limit}",
            code="BODY_TOO_LONG",
            field="variables",
        )
    priced = price(routes, ask.to, text)
    return TemplatePreview(
        to=ask.to,
        text=text,
        encoding=priced.encoding,
        segments=priced.segments,
        cost=number(priced.cost),
    )
