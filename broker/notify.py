"""Hand status changes and inbound messages to the webhook sender, packed per AMQP message.

The rows given to status_events are those of broker.store.messages.STATUS_RETURNING."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping
from typing import Any

import structlog

from broker.queue_messages import WebhookEvent, pack, to_json
from broker.queues import Amqp
from broker.resources import message_resource
from broker.status import MessageStatus
from broker.webhooks.events import MESSAGE_STATUS, event_id_for, make_event

#: Customers are told about the outcome of a message; intermediate states are in its history.
NOTIFIED_STATUSES: frozenset[MessageStatus] = frozenset(
    {
        MessageStatus.DELIVERED,
        MessageStatus.UNDELIVERED,
        MessageStatus.FAILED,
        MessageStatus.CANCELED,
    }
)
#: Outcomes worth a log line of their own.
_LOGGED_STATUSES: frozenset[MessageStatus] = frozenset(
    {MessageStatus.FAILED, MessageStatus.UNDELIVERED}
)

#: Events per AMQP message: small enough that the webhook sender's byte budget holds a few
#: messages' worth (a few hundred events, for 200 POSTs at once) rather than thousands.
_CHUNK = 100

log = structlog.get_logger(__name__)


def status_events(rows: Iterable[Mapping[str, Any]]) -> list[WebhookEvent]:
    """The webhook events of messages that reached an outcome; failures are logged too."""
    rows = list(rows)
    for row in rows:
        if row["status"] in _LOGGED_STATUSES:
            log.info(
                "message " + row["status"],
                message_id=str(row["id"]),
                account_id=str(row["account_id"]),
                connector=row["connector"],
                error_code=row["error_code"],
            )
    return [
        make_event(
            MESSAGE_STATUS,
            row["account_id"],
            message_resource(row),
            event_id=event_id_for(f"{row['id']}:{row['status']}"),
            callback_url=row["callback_url"],
        )
        for row in rows
        if row["status"] in NOTIFIED_STATUSES
    ]


async def publish_events(amqp: Amqp, events: list[WebhookEvent]) -> None:
    """As WebhookBatch messages of up to _CHUNK events each, published at once, all confirmed."""
    chunks = (
        pack("events", [to_json(e) for e in events[start : start + _CHUNK]])
        for start in range(0, len(events), _CHUNK)
    )
    await asyncio.gather(*(amqp.publish(amqp.names.webhooks, body) for body in chunks))
