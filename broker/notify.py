"""Hand status changes and inbound messages to the webhook sender, packed per AMQP message."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from broker.queues import Amqp
from broker.resources import MESSAGE_COLUMNS, message_resource
from broker.webhooks.events import MESSAGE_STATUS, event_id_for, make_event

#: Columns a status-changing statement returns so its rows can become webhook events.
STATUS_RETURNING = MESSAGE_COLUMNS + ", callback_url"

#: Customers are told about the outcome of a message; intermediate states are in its history.
NOTIFIED_STATUSES = frozenset({"delivered", "undelivered", "failed"})

_CHUNK = 500


def status_events(rows: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
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


async def publish_events(amqp: Amqp, events: list[dict[str, Any]]) -> None:
    for start in range(0, len(events), _CHUNK):
        await amqp.publish(amqp.names.webhooks, {"events": events[start : start + _CHUNK]})
