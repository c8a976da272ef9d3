"""What a webhook endpoint receives, by its ``format``: the gateway's JSON events, or the body a
provider's customers already parse (their notification URL moved to the gateway unchanged).

``vavasms``: one form POST per inbound SMS with ``message_id``, ``from``, ``content`` and
``sms_date``, as VavaSMS posts to its customers' notification URL. That provider notifies
inbound messages only, so such an endpoint is subscribed to ``message.inbound`` alone (the API
refuses others, the schema too). ``message_id`` is the inbound message's id, the same on every
retry: the document asks receivers to deduplicate on it. The document's table spells the
sender's field ``form``; both names are sent so either reading finds it. The Standard Webhooks
headers (``webhook-id``, ``-timestamp``, ``-signature``) sign the form body as they sign JSON.
"""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime
from typing import Final
from urllib.parse import urlencode

from broker.queue_messages import MESSAGE_INBOUND, WebhookEvent

STANDARD: Final = "standard"
VAVASMS: Final = "vavasms"
FORMATS: Final[tuple[str, ...]] = (STANDARD, VAVASMS)

JSON_TYPE: Final = "application/json"
FORM_TYPE: Final = "application/x-www-form-urlencoded"

#: The events a format carries (None: every event).
_CARRIES: Final[dict[str, frozenset[str] | None]] = {
    STANDARD: None,
    VAVASMS: frozenset({MESSAGE_INBOUND}),
}


def carried_events(format_name: str) -> frozenset[str] | None:
    """The event types an endpoint of this format may receive (None: all of them)."""
    return _CARRIES.get(format_name, frozenset())


def carries(format_name: str, event_type: str) -> bool:
    allowed = carried_events(format_name)
    return allowed is None or event_type in allowed


def _sms_date(received_at: object) -> str:
    """``YYYY-MM-DD HH:MM:SS`` in UTC, the way the provider writes dates."""
    moment = datetime.now(UTC)
    if isinstance(received_at, str):
        with contextlib.suppress(ValueError):
            moment = datetime.fromisoformat(received_at.replace("Z", "+00:00"))
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%d %H:%M:%S")


def vavasms_fields(event: WebhookEvent) -> list[tuple[str, str]]:
    """The notification's form fields for one message.inbound event."""
    data = event.data
    sender = str(data.get("from") or "")
    # The provider writes numbers without the plus (22509000001).
    sender = sender[1:] if sender.startswith("+") and sender[1:].isdigit() else sender
    return [
        ("message_id", str(data.get("id") or "")),
        ("from", sender),
        ("form", sender),
        ("content", str(data.get("body") or "")),
        ("sms_date", _sms_date(data.get("received_at"))),
    ]


def render(event: WebhookEvent, format_name: str) -> tuple[bytes, str]:
    """The request body (the bytes that are signed) and its content type."""
    if format_name == VAVASMS and event.type == MESSAGE_INBOUND:
        return urlencode(vavasms_fields(event)).encode(), FORM_TYPE
    return event.body(), JSON_TYPE
