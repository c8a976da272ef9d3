"""What travels on the webhook queues, parsed defensively: a bad item is dropped, never fatal.

Two payloads arrive on ``.webhooks``:

* ``{"events": [event, ...]}`` from the gateway's workers (see the event format notes);
* ``{"retries": [{"event": event, "target": {"webhook_id": uuid | null, "url": str},
  "attempt": n}, ...]}``, published by the sender itself to a retry tier and dead-lettered back.
  ``attempt`` is the number of the attempt still to be made. No secret travels on the queue: it is
  looked up again when the retry runs, so a deleted endpoint stops receiving retries.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from broker.errors import BrokerError
from broker.webhooks.events import EVENT_TYPES

MAX_EVENT_ID = 200
MAX_URL = 2000


class PayloadError(BrokerError):
    """A queue payload (or part of one) that does not have the documented shape."""

    code = "INVALID_PAYLOAD"


@dataclass(frozen=True, slots=True)
class Event:
    id: str
    type: str
    account_id: UUID
    timestamp: str
    data: dict[str, Any]
    callback_url: str | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "type": self.type,
            "account_id": str(self.account_id),
            "timestamp": self.timestamp,
            "data": self.data,
            "callback_url": self.callback_url,
        }

    def body(self) -> bytes:
        """The request body customers receive (and whose bytes are signed)."""
        doc = {"type": self.type, "timestamp": self.timestamp, "data": self.data}
        return json.dumps(doc, separators=(",", ":"), ensure_ascii=False, default=str).encode()

    @property
    def message_id(self) -> str | None:
        found = self.data.get("id")
        return found if isinstance(found, str) else None


@dataclass(frozen=True, slots=True)
class Retry:
    event: Event
    webhook_id: UUID | None
    url: str
    attempt: int

    def to_dict(self) -> dict[str, Any]:
        webhook_id = None if self.webhook_id is None else str(self.webhook_id)
        return {
            "event": self.event.to_dict(),
            "target": {"webhook_id": webhook_id, "url": self.url},
            "attempt": self.attempt,
        }


@dataclass(frozen=True, slots=True)
class Parsed:
    events: list[Event]
    retries: list[Retry]
    problems: list[str]


def _uuid(value: Any, what: str) -> UUID:
    if not isinstance(value, str):
        raise PayloadError(f"{what} is not a string")
    try:
        return UUID(value)
    except ValueError as exc:
        raise PayloadError(f"{what} is not a UUID") from exc


def _printable(value: str) -> bool:
    """No control characters: PostgreSQL text refuses NUL, and logs should not carry others."""
    return value.isprintable()


def _url(value: Any, what: str) -> str:
    if (
        not isinstance(value, str)
        or len(value) > MAX_URL
        or not value[:8].lower().startswith(("http://", "https://"))
        or not _printable(value)
        or " " in value
    ):
        raise PayloadError(f"{what} is not an http(s) URL")
    return value


def _callback(value: Any, problems: list[str] | None) -> str | None:
    """A bad callback_url loses the callback only, not the event's other deliveries."""
    if value is None:
        return None
    try:
        return _url(value, "event callback_url")
    except PayloadError as exc:
        if problems is None:
            raise
        problems.append(exc.message)
        return None


def parse_event(obj: Any, problems: list[str] | None = None) -> Event:
    """Raise PayloadError for an unusable event; a bad callback_url raises too unless
    ``problems`` is given, which then receives the complaint instead."""
    if not isinstance(obj, dict):
        raise PayloadError("event is not an object")
    event_id = obj.get("id")
    if (
        not isinstance(event_id, str)
        or not 0 < len(event_id) <= MAX_EVENT_ID
        or not event_id.isascii()
        or not _printable(event_id)
    ):
        raise PayloadError("event id is missing, too long or not printable")
    kind = obj.get("type")
    if kind not in EVENT_TYPES:
        raise PayloadError(f"event type {kind!r} is unknown")
    timestamp = obj.get("timestamp")
    if not isinstance(timestamp, str):
        raise PayloadError("event timestamp is not a string")
    data = obj.get("data")
    if not isinstance(data, dict):
        raise PayloadError("event data is not an object")
    return Event(
        id=event_id,
        type=str(kind),
        account_id=_uuid(obj.get("account_id"), "event account_id"),
        timestamp=timestamp,
        data=data,
        callback_url=_callback(obj.get("callback_url"), problems),
    )


def parse_retry(obj: Any) -> Retry:
    if not isinstance(obj, dict):
        raise PayloadError("retry is not an object")
    target = obj.get("target")
    if not isinstance(target, dict):
        raise PayloadError("retry target is not an object")
    attempt = obj.get("attempt")
    if isinstance(attempt, bool) or not isinstance(attempt, int) or attempt < 2:
        raise PayloadError("retry attempt is not an integer above 1")
    raw_id = target.get("webhook_id")
    return Retry(
        event=parse_event(obj.get("event")),
        webhook_id=None if raw_id is None else _uuid(raw_id, "retry webhook_id"),
        url=_url(target.get("url"), "retry url"),
        attempt=attempt,
    )


def _items(doc: dict[str, Any], key: str) -> list[Any]:
    items = doc.get(key, [])
    if not isinstance(items, list):
        raise PayloadError(f"{key} is not a list")
    return items


def parse_payload(body: bytes) -> Parsed:
    """Parse one AMQP message body; PayloadError only if nothing in it is usable as a whole."""
    try:
        doc = json.loads(body)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError and bad UTF-8 are ValueErrors
        raise PayloadError("payload is not JSON") from exc
    if not isinstance(doc, dict) or not ("events" in doc or "retries" in doc):
        raise PayloadError("payload has neither events nor retries")
    parsed = Parsed([], [], [])
    for raw in _items(doc, "events"):
        try:
            parsed.events.append(parse_event(raw, parsed.problems))
        except PayloadError as exc:
            parsed.problems.append(exc.message)
    for raw in _items(doc, "retries"):
        try:
            parsed.retries.append(parse_retry(raw))
        except PayloadError as exc:
            parsed.problems.append(exc.message)
    return parsed


def retries_payload(retries: Sequence[Retry]) -> dict[str, Any]:
    return {"retries": [r.to_dict() for r in retries]}
