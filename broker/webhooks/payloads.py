"""What travels on the webhook queues, parsed defensively: a bad item is dropped, never fatal.

Two payloads arrive on ``.webhooks`` (both a broker.queue_messages.WebhookBatch):

* ``{"v": 1, "events": [event, ...]}`` from the gateway's workers (see the event format notes);
* ``{"v": 1, "retries": [{"event": event, "target": {"webhook_id": uuid | null, "url": str},
  "attempt": n}, ...]}``, published by the sender itself to a retry tier and dead-lettered back.
  ``attempt`` is the number of the attempt still to be made. No secret travels on the queue: it is
  looked up again when the retry runs, so a deleted endpoint stops receiving retries.

One validation per AMQP message on the hot path; only a payload that fails it is taken apart
item by item, so that a bad item (or a bad callback_url) costs only itself.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from broker.errors import BrokerError
from broker.queue_messages import (
    MAX_EVENT_ID,
    MAX_URL,
    NotDecodable,
    Rejected,
    WebhookBatch,
    WebhookEvent,
    WebhookRetry,
    check,
    loads_slow,
)

__all__ = ["MAX_EVENT_ID", "MAX_URL", "Event", "Parsed", "PayloadError", "Retry"]

#: The names the sender and its tests know these by.
Event = WebhookEvent
Retry = WebhookRetry


class PayloadError(BrokerError):
    """A queue payload (or part of one) that does not have the documented shape."""

    code = "INVALID_PAYLOAD"

    def __init__(self, message: str, *, version: object = None) -> None:
        super().__init__(message)
        self.version = version


@dataclass(slots=True)
class Parsed:
    events: list[Event]
    retries: list[Retry]
    problems: list[str]
    #: Items that could not be used at all (kept for the dead-letter queue).
    rejected: list[Rejected] = field(default_factory=list)


def _only_callback_is_bad(exc: ValidationError) -> bool:
    return all(tuple(e["loc"])[:1] == ("callback_url",) for e in exc.errors(include_url=False))


def parse_event(obj: Any, problems: list[str] | None = None) -> Event:
    """Raise PayloadError for an unusable event; a bad callback_url raises too unless
    ``problems`` is given, which then receives the complaint instead (the event is kept)."""
    try:
        return Event.model_validate(obj)
    except ValidationError as exc:
        if problems is None or not isinstance(obj, dict) or not _only_callback_is_bad(exc):
            raise PayloadError(f"bad event: {_first(exc)}") from exc
    problems.append("event callback_url is not an http(s) URL")
    return Event.model_validate({**obj, "callback_url": None})


def parse_retry(obj: Any) -> Retry:
    try:
        return Retry.model_validate(obj)
    except ValidationError as exc:
        raise PayloadError(f"bad retry: {_first(exc)}") from exc


def _first(exc: ValidationError) -> str:
    error = exc.errors(include_url=False)[0]
    return f"{'.'.join(str(p) for p in error['loc']) or 'item'}: {error['msg']}"


def parse_payload(body: bytes) -> Parsed:
    """Parse one AMQP message body; PayloadError only if nothing in it is usable as a whole."""
    try:
        batch = WebhookBatch.model_validate_json(body)
    except ValidationError:
        return _parse_slowly(body)
    if not {"events", "retries"} & batch.model_fields_set:
        raise PayloadError("payload has neither events nor retries")
    return Parsed(list(batch.events), list(batch.retries), [])


def _parse_slowly(body: bytes) -> Parsed:
    try:
        doc = loads_slow(body)
    except NotDecodable as exc:
        raise PayloadError("payload is not JSON") from exc
    if not isinstance(doc, dict) or not ("events" in doc or "retries" in doc):
        raise PayloadError("payload has neither events nor retries")
    version = doc.get("v", 1)
    if version != 1:
        raise PayloadError(f"unknown version {version!r}", version=version)
    parsed = Parsed([], [], [])
    for raw in _items(doc, "events"):
        try:
            parsed.events.append(parse_event(raw, parsed.problems))
        except PayloadError as exc:
            parsed.problems.append(exc.message)
            parsed.rejected.append(_rejected(Event, raw))
    for raw in _items(doc, "retries"):
        try:
            parsed.retries.append(parse_retry(raw))
        except PayloadError as exc:
            parsed.problems.append(exc.message)
            parsed.rejected.append(_rejected(Retry, raw))
    return parsed


def _rejected(model: type[Event] | type[Retry], raw: Any) -> Rejected:
    found = check(model, raw)
    return found if isinstance(found, Rejected) else Rejected(raw, "unusable")


def _items(doc: dict[str, Any], key: str) -> list[Any]:
    items = doc.get(key, [])
    if not isinstance(items, list):
        raise PayloadError(f"{key} is not a list")
    return items


def retries_payload(retries: Sequence[Retry]) -> WebhookBatch:
    return WebhookBatch(retries=list(retries))
