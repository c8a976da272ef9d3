"""Making webhook events (broker.queue_messages.WebhookEvent) for the queue (see the event format
notes).

Event ids are derived from a key that names what happened (e.g. a message id and its status), so
that a redelivered producer emits the same id and receivers can deduplicate on ``webhook-id``.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any, Final
from uuid import UUID

from broker.errors import InputError
from broker.queue_messages import EVENT_TYPES, MESSAGE_INBOUND, MESSAGE_STATUS, WebhookEvent

__all__ = ["EVENT_TYPES", "MESSAGE_INBOUND", "MESSAGE_STATUS", "event_id_for", "make_event"]

#: Fixed namespace of the gateway's event ids; changing it would change every id.
_EVENT_NAMESPACE: Final = UUID("5d0c1c2e-8a4b-5f3e-9b61-2f7a4c9e0d11")


def event_id_for(key: str) -> str:
    return "evt_" + uuid.uuid5(_EVENT_NAMESPACE, key).hex


def utc_timestamp(moment: datetime | None = None) -> str:
    """ISO 8601 in UTC with milliseconds and a Z, e.g. 2026-11-22T13:55:00.123Z."""
    moment = datetime.now(UTC) if moment is None else moment.astimezone(UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def make_event(
    type: str,  # noqa: A002 - the field's name in the event format
    account_id: UUID | str,
    data: dict[str, Any],
    *,
    event_id: str,
    callback_url: str | None = None,
    timestamp: datetime | None = None,
) -> WebhookEvent:
    if type not in EVENT_TYPES:
        raise InputError(
            f"unknown webhook event type {type!r}", code="INVALID_EVENT_TYPE", field="type"
        )
    # Built by the gateway itself from stored rows: no need to validate it again.
    return WebhookEvent.model_construct(
        id=event_id,
        type=type,
        account_id=account_id if isinstance(account_id, UUID) else UUID(account_id),
        timestamp=utc_timestamp(timestamp),
        data=data,
        callback_url=callback_url,
    )
