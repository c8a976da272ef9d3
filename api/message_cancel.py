"""POST /v1/messages/{id}/cancel: a scheduled message canceled before it is due, and refunded.

The API answers a send 202 before the charge worker has stored its rows, so a cancel right
after a send may find nothing yet: an id this API gave in the last minute that is not found
is looked up again for a short while before the answer is 404.
"""

from __future__ import annotations

import asyncio
import time
from uuid import UUID

import asyncpg
import structlog
from aiohttp import web

from api.context import AMQP, POOL, caller, shared
from api.contract import Endpoints
from api.schemas.messages import Message
from broker.accounts import parse_uuid
from broker.db import unavailable_as_error
from broker.errors import Conflict, DependencyUnavailable, NotFound
from broker.ids import issued_at
from broker.notify import publish_events, status_events
from broker.resources import message_resource
from broker.status import MessageStatus
from broker.store import schedule

endpoints = Endpoints("messages")
log = structlog.get_logger(__name__)

#: How long a cancel waits for a just-accepted message to be stored, and how often it looks.
STORE_WAIT = 2.0
STORE_POLL = 0.1
#: Only an id this API gave (a UUIDv7, broker.ids) this recently may not be stored yet; any
#: other unknown id is answered 404 at once.
RECENT = 60.0


def _may_be_on_its_way(message_id: UUID) -> bool:
    made = issued_at(message_id)
    return made is not None and -RECENT < time.time() - made < RECENT


@endpoints.post(
    "/v1/messages/{id}/cancel",
    response=Message,
    errors=frozenset({409}),
    summary="Cancel a scheduled message before it is due (refunded)",
    description="Only a `scheduled` message can be canceled: it becomes `canceled`, its cost "
    "is refunded and its `message.status` webhook is sent. Once it is queued or later the "
    "answer is 409 `NOT_CANCELABLE` and nothing changes.",
)
async def cancel_message(request: web.Request) -> Message:
    who = caller(request)
    message_id = parse_uuid(request.match_info["id"], what="message")
    pool = shared(request)[POOL]
    loop = asyncio.get_running_loop()
    deadline = loop.time() + STORE_WAIT
    while True:
        async with unavailable_as_error():
            row = await schedule.cancel(pool, who.account_id, message_id)
            if row is not None:
                break
            status = await schedule.status_of(pool, who.account_id, message_id)
        if status is MessageStatus.SCHEDULED:
            continue  # stored just now, between the two statements: cancel it
        if status is not None:
            raise Conflict(
                f"message {message_id} is {status}: only a scheduled message can be canceled",
                code="NOT_CANCELABLE",
            )
        if loop.time() >= deadline or not _may_be_on_its_way(message_id):
            raise NotFound(f"message {message_id} not found")
        await asyncio.sleep(STORE_POLL)
    await _notify(request, message_id, row)
    return Message.model_validate(message_resource(row))


async def _notify(request: web.Request, message_id: UUID, row: asyncpg.Record) -> None:
    """The cancel's message.status webhook. The cancel is committed by now: a broker that is
    away costs the webhook (logged), not a 503 that would make the customer think it failed."""
    try:
        await publish_events(shared(request)[AMQP], status_events([row]))
    except DependencyUnavailable as exc:
        log.warning("cancel webhook not published", message_id=str(message_id), error=exc.message)
