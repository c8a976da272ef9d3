"""POST /v1/messages and reading messages and batches back.

The handler validates (the SendRequest model), counts each recipient's parts with the long-message
mode of the connector its number routes to, checks the estimate against the balance read at
authentication, and answers 202 only once RabbitMQ has confirmed the request to the durable
ingest queue: from then on the workers own it. Charging happens exactly once, in the charge
worker, with the same count.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from decimal import Decimal

from aiohttp import web

from api import idempotency
from api.context import INGEST, POOL, ROUTES, Caller, caller
from api.contract import Endpoints, body_of, query_of
from api.errors import ApiError
from api.metrics import MESSAGES_ACCEPTED
from api.schemas.messages import (
    AcceptedMessage,
    Batch,
    EncodingName,
    MessageDetail,
    MessagePage,
    MessageQuery,
    SendAccepted,
    SendRequest,
    encode_cursor,
)
from broker.accounts import parse_uuid
from broker.db import unavailable_as_error
from broker.errors import BrokerError, InputError, InsufficientCredits, NotFound
from broker.long_mode import LongMode, PartCounter
from broker.queue_messages import IngestRequest
from broker.resources import iso, message_resource, number, part_resource
from broker.routing import RouteTable
from broker.segmentation import Encoding
from broker.status import MessageStatus
from broker.store import messages as messages_store

endpoints = Endpoints("messages")


def _check_channel(send: SendRequest, who: Caller) -> None:
    if send.channel not in who.channels:
        raise ApiError(
            403, "CHANNEL_NOT_ALLOWED", f"this API key may not use the {send.channel} channel"
        )
    if send.channel != "sms":
        raise InputError(
            "no WhatsApp connector is configured on this gateway",
            code="CHANNEL_UNAVAILABLE",
            field="channel",
        )


def plan(send: SendRequest, routes: RouteTable) -> tuple[list[AcceptedMessage], Decimal]:
    """Each recipient's message as the charge worker will count it, and the estimated cost."""
    count = PartCounter()
    messages: list[AcceptedMessage] = []
    estimate = Decimal(0)
    for to in send.recipients:
        route = routes.match(to)
        mode = route.mode if route is not None else LongMode()
        seg = count(send.body, mode)
        encoding: EncodingName = "GSM7" if seg.encoding is Encoding.GSM7 else "UCS2"
        segments = seg.segments
        if route is not None:
            estimate += route.price * segments
        messages.append(
            AcceptedMessage(
                id=uuid.uuid4(),
                to=to,
                status=MessageStatus.QUEUED,
                encoding=encoding,
                segments=segments,
            )
        )
    return messages, estimate


@endpoints.post(
    "/v1/messages",
    body=SendRequest,
    response=SendAccepted,
    status=202,
    errors=frozenset({402, 409}),
    header_params=(
        (
            idempotency.HEADER,
            "Any string of yours; a retry with the same key and body within 24 hours gets the "
            "first answer back and sends nothing twice.",
        ),
    ),
    summary="Send a message to one or many numbers",
    description="Answered 202 once the request is durable. With an `Idempotency-Key` header, "
    "a retry within 24 hours gets the first answer back (`Idempotent-Replayed: true`).",
)
async def send_messages(request: web.Request) -> SendAccepted | web.Response:
    who = caller(request)
    send = body_of(request, SendRequest)
    _check_channel(send, who)
    routes = request.app[ROUTES]
    async with unavailable_as_error():
        await routes.refresh(request.app[POOL])
    messages, estimate = plan(send, routes)
    if Decimal(str(who.balance_at_auth)) < estimate:
        raise InsufficientCredits(
            f"this send costs {estimate} credits and the balance is {who.balance_at_auth}"
        )
    pool = request.app[POOL]
    key = idempotency.check_key(request.headers.get(idempotency.HEADER))
    if key is not None:
        digest = idempotency.request_hash(send.model_dump(mode="json", by_alias=True))
        earlier = await idempotency.claim(pool, who.account_id, key, digest)
        if earlier is not None:
            return web.json_response(
                earlier[1], status=earlier[0], headers={"Idempotent-Replayed": "true"}
            )
    batch_id = uuid.uuid4() if len(messages) > 1 else None
    try:
        await request.app[INGEST].publish(_ingest_request(who, send, batch_id, messages))
    except BrokerError:
        if key is not None:
            await idempotency.release(pool, who.account_id, key)
        raise
    MESSAGES_ACCEPTED.inc(len(messages))
    answer = SendAccepted(
        batch_id=batch_id, estimated_cost=number(estimate) or 0, messages=messages
    )
    if key is not None:
        await idempotency.store(
            pool, who.account_id, key, 202, answer.model_dump(mode="json", by_alias=True)
        )
    return answer


def _ingest_request(
    who: Caller, send: SendRequest, batch_id: uuid.UUID | None, messages: list[AcceptedMessage]
) -> IngestRequest:
    return IngestRequest(
        account_id=who.account_id,
        batch_id=batch_id,
        body=send.body,
        sender=send.sender,
        client_ref=send.client_ref,
        callback_url=send.callback_url,
        accepted_at=datetime.now(UTC),
        recipients=[(m.id, m.to) for m in messages],
    )


@endpoints.get(
    "/v1/messages/{id}",
    response=MessageDetail,
    summary="A message: status, parts with carrier ids, error, timestamps, history",
)
async def get_message(request: web.Request) -> MessageDetail:
    who = caller(request)
    message_id = parse_uuid(request.match_info["id"], what="message")
    async with unavailable_as_error():
        view = await messages_store.find(request.app[POOL], who.account_id, message_id)
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
    summary="Messages of the account, newest first (cursor pagination)",
)
async def list_messages(request: web.Request) -> MessagePage:
    who = caller(request)
    query = query_of(request, MessageQuery)
    async with unavailable_as_error():
        rows = await messages_store.page(
            request.app[POOL],
            who.account_id,
            status=query.status,
            batch_id=query.batch_id,
            after=query.position,
            limit=query.limit + 1,
        )
    more = len(rows) > query.limit
    rows = rows[: query.limit]
    next_cursor = encode_cursor(rows[-1]["created_at"], rows[-1]["id"]) if more else None
    return MessagePage.model_validate(
        {"data": [message_resource(r) for r in rows], "next_cursor": next_cursor}
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
        summary = await messages_store.batch(request.app[POOL], who.account_id, batch_id)
    if summary is None:
        raise NotFound(f"batch {batch_id} not found")
    return Batch(
        id=batch_id,
        total=summary.total,
        statuses=summary.statuses,
        cost=number(summary.cost) or 0,
    )
