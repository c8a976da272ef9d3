"""POST /v1/messages and reading messages and batches back.

The handler validates (the SendRequest model), counts each recipient's parts with the long-message
mode of the connector its number routes to, checks the estimate against the balance read at
authentication, and answers 202 only once RabbitMQ has confirmed the request to the durable
ingest queue: from then on the workers own it. Charging happens exactly once, in the charge
worker, with the same count.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from functools import partial

from aiohttp import web

from api import audience, idempotency, sending
from api.context import POOL, caller, shared
from api.contract import Endpoints, body_of, query_of
from api.schemas.messages import (
    Batch,
    MessageDetail,
    MessagePage,
    MessageQuery,
    SendAccepted,
    SendRequest,
)
from broker.accounts import parse_uuid
from broker.db import unavailable_as_error
from broker.errors import BrokerError, NotFound
from broker.resources import iso, message_resource, number, part_resource
from broker.store import audiences as audiences_store
from broker.store import messages as messages_store

endpoints = Endpoints("messages")


@endpoints.post(
    "/v1/messages",
    body=SendRequest,
    response=SendAccepted,
    status=202,
    errors=frozenset({402, 403, 404, 409}),
    header_params=(
        (
            idempotency.HEADER,
            "Any string of yours; a retry with the same key and body within 24 hours gets the "
            "first answer back and sends nothing twice.",
        ),
    ),
    summary="Send a message to one or many numbers",
    description="Answered 202 once the request is durable. With an `Idempotency-Key` header, "
    "a retry within 24 hours gets the first answer back (`Idempotent-Replayed: true`). "
    "An alphanumeric `from` must be an approved sender ID of the account (without `from`, "
    "the account's default sender is used). A single recipient who opted out gets 403 "
    "`OPTED_OUT`; in a batch that message ends `failed` `OPTED_OUT`, uncharged.\n\n"
    "`group_ids` adds the groups' members (each number once); `template_id` renders the "
    "template for each recipient (its contact's values first, then `variables`; a missing one "
    "is a 400 `MISSING_VARIABLE` naming it). A send to groups reaching more numbers than "
    "`MAX_RECIPIENTS` is answered at once with its `batch_id` and no `messages`: they are made "
    "in the background and charged one by one (once the balance runs out, the rest end "
    "`failed` `INSUFFICIENT_CREDITS`, uncharged).",
)
async def send_messages(request: web.Request) -> SendAccepted | web.Response:
    who = caller(request)
    send = body_of(request, SendRequest)
    answer, commit = await prepare_send(request, send)
    pool = shared(request)[POOL]
    key = idempotency.check_key(request.headers.get(idempotency.HEADER))
    if key is not None:
        digest = idempotency.request_hash(send.model_dump(mode="json", by_alias=True))
        earlier = await idempotency.claim(pool, who.account_id, key, digest)
        if earlier is not None:
            return web.json_response(
                earlier[1], status=earlier[0], headers={"Idempotent-Replayed": "true"}
            )
    try:
        await commit()
    except BrokerError:
        if key is not None:
            await idempotency.release(pool, who.account_id, key)
        raise
    if key is not None:
        await idempotency.store(
            pool, who.account_id, key, 202, answer.model_dump(mode="json", by_alias=True)
        )
    return answer


async def prepare_send(
    request: web.Request, send: SendRequest
) -> tuple[SendAccepted, Callable[[], Awaitable[None]]]:
    """Every check of a send (which raise the customer's errors), its answer, and what makes it
    durable. POST /v1/messages puts its Idempotency-Key claim between the two; the provider
    dialects send through here too."""
    resolved = await audience.resolve(request, send)
    if isinstance(resolved, audience.Background):
        answer = SendAccepted(
            batch_id=resolved.batch_id,
            recipients=resolved.recipients,
            estimated_cost=None,
            messages=[],
        )
        return answer, partial(audience.start, request, resolved)
    prepared = await sending.prepare(request, resolved)
    answer = SendAccepted(
        batch_id=prepared.batch_id,
        recipients=len(prepared.messages),
        estimated_cost=number(prepared.estimated_cost) or 0,
        messages=prepared.messages,
    )
    return answer, partial(sending.publish, request, prepared)


async def send_now(request: web.Request, send: SendRequest) -> SendAccepted:
    """A send without an Idempotency-Key: checked, made durable, answered."""
    answer, commit = await prepare_send(request, send)
    await commit()
    return answer


@endpoints.get(
    "/v1/messages/{id}",
    response=MessageDetail,
    summary="A message: status, parts with carrier ids, error, timestamps, history",
)
async def get_message(request: web.Request) -> MessageDetail:
    who = caller(request)
    message_id = parse_uuid(request.match_info["id"], what="message")
    async with unavailable_as_error():
        view = await messages_store.find(shared(request)[POOL], who.account_id, message_id)
    if view is None:
        raise NotFound(f"message {message_id} not found")
    resource = message_resource(view.message)
    resource["parts"] = [part_resource(p) for p in view.parts]
    resource["history"] = [
        {"status": h["status"], "detail": h["detail"], "at": iso(h["at"])} for h in view.history
    ]
    return MessageDetail.model_validate(resource)


@endpoints.get(
    "/v1/messages",
    query=MessageQuery,
    response=MessagePage,
    summary="Search the account's messages, newest first (cursor pagination)",
    description="Filters combine: `status`, `batch_id`, `to`, `client_ref`, `created_after`, "
    "`created_before`; `next_cursor` gives the next page of the same search.",
)
async def list_messages(request: web.Request) -> MessagePage:
    who = caller(request)
    query = query_of(request, MessageQuery)
    async with unavailable_as_error():
        rows = await messages_store.page(
            shared(request)[POOL],
            who.account_id,
            query.filters,
            after=query.position,
            limit=query.read_limit,
        )
    shown, next_cursor = query.cut(rows, lambda r: (r["created_at"], r["id"]))
    return MessagePage.model_validate(
        {"data": [message_resource(r) for r in shown], "next_cursor": next_cursor}
    )


@endpoints.get(
    "/v1/batches/{id}",
    response=Batch,
    summary="Counts by status and the cost of a multi-recipient send",
)
async def get_batch(request: web.Request) -> Batch:
    who = caller(request)
    batch_id = parse_uuid(request.match_info["id"], what="batch")
    async with unavailable_as_error():
        summary = await messages_store.batch(shared(request)[POOL], who.account_id, batch_id)
        progress = await audiences_store.progress(shared(request)[POOL], batch_id)
    if summary is None:
        raise NotFound(f"batch {batch_id} not found")
    expanded, done = progress if progress is not None else (summary.total, True)
    return Batch(
        id=batch_id,
        total=summary.total,
        statuses=summary.statuses,
        cost=number(summary.cost) or 0,
        expanded=expanded,
        expanding=not done,
    )
