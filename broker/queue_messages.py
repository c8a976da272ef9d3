"""Every message that travels on the gateway's queues: one versioned class each, shared by the
producer and the consumer (as arq keeps its jobs in one module).

Each class carries ``v``; a consumer that meets a version it does not know dead-letters the
message instead of guessing. Extra fields are ignored, so a message written by the previous
version (e.g. an ingest request that still carries ``segments``) still decodes.

Decoding is one ``model_validate_json`` per AMQP message on the hot path; only a message that
fails it is looked at item by item (``unpack``), so one bad item does not take the rest down.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Annotated, Any, Final, Generic, Literal, TypeVar
from uuid import UUID

from pydantic import (
    AfterValidator,
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    StrictInt,
    TypeAdapter,
    ValidationError,
)

VERSION: Final = 1

MESSAGE_STATUS: Final = "message.status"
MESSAGE_INBOUND: Final = "message.inbound"
EVENT_TYPES: Final[tuple[str, ...]] = (MESSAGE_STATUS, MESSAGE_INBOUND)

MAX_EVENT_ID = 200
MAX_URL = 2000


class QueueMessage(BaseModel):
    """Base of every queue message: versioned, immutable, tolerant of fields it does not know."""

    model_config = ConfigDict(
        extra="ignore", frozen=True, populate_by_name=True, serialize_by_alias=True
    )

    v: Literal[1] = 1


# --- ingest: API → charge worker ---------------------------------------------------------


class IngestRequest(QueueMessage):
    """One accepted API request: the same text to one or many recipients.

    It carries no encoding or part count: the charge worker counts parts once, with the
    long-message mode of the connector each number routes to.
    """

    account_id: UUID
    batch_id: UUID | None = None
    body: str
    sender: str | None = None
    client_ref: str | None = None
    callback_url: str | None = None
    accepted_at: datetime
    #: (message id, E.164 number) per recipient.
    recipients: list[tuple[UUID, str]]
    #: Stored as ``scheduled`` (charged now) and handed on by the scheduler at this time.
    scheduled_at: datetime | None = None
    #: Not submitted by then: failed EXPIRED and refunded (also the submit_sm validity_period).
    expires_at: datetime | None = None
    #: Recipients (message ids) that opted out of the account: failed OPTED_OUT, uncharged.
    opted_out: list[UUID] = []
    #: The text the carrier gets when it must differ from the stored ``body`` (an OTP's code,
    #: which no table may hold: ``body`` has it masked). Never in a repr or a log.
    plain_body: str | None = Field(default=None, repr=False)
    #: Per message id, its own text instead of ``body`` (a template rendered per recipient).
    bodies: dict[UUID, str] = {}
    #: Recipients (message ids) that fail at once, uncharged, with the code why (a template
    #: variable their contact lost between acceptance and expansion: MISSING_VARIABLE).
    refused: dict[UUID, str] = {}
    #: The channel's routes carry it: 'sms' (carriers, priced per part) or 'whatsapp' (the
    #: WhatsApp Cloud API, priced per message).
    channel: Literal["sms", "whatsapp"] = "sms"


class IngestBatch(QueueMessage):
    """What one AMQP message on the ingest queue holds: requests packed by PackedPublisher."""

    requests: list[IngestRequest]


# --- submit: charge worker → submit worker (per connector) ---------------------------------


class SubmitJob(QueueMessage):
    """Charged messages for one connector; ``retry`` lets a claim take back 'sending' rows."""

    ids: list[UUID]
    retry: bool = False
    #: Per message, the text to send instead of its stored (masked) body: see
    #: IngestRequest.plain_body. Never in a repr or a log.
    plain_bodies: dict[UUID, str] = Field(default_factory=dict, repr=False)


# --- carrier events: submit worker's binds → events worker ---------------------------------


class ReceiptEvent(QueueMessage):
    kind: Literal["receipt"] = "receipt"
    connector: str
    #: The carrier account (connectors.scope) within which the receipt is matched.
    scope: str | None = None
    carrier_id: str
    state: str
    error: str | None = None


class InboundEvent(QueueMessage):
    """An inbound message (MO) or one fragment of a concatenated one."""

    kind: Literal["mo"] = "mo"
    id: UUID
    connector: str
    from_number: str = Field(
        validation_alias=AliasChoices("from", "from_number"), serialization_alias="from"
    )
    to_number: str = Field(
        validation_alias=AliasChoices("to", "to_number"), serialization_alias="to"
    )
    text: str
    #: (reference, total, seq) of a fragment; None for a whole message.
    concat: tuple[int, int, int] | None = None
    received_at: datetime


CarrierEvent = Annotated[ReceiptEvent | InboundEvent, Field(discriminator="kind")]


class CarrierEvents(QueueMessage):
    events: list[CarrierEvent]


# --- webhook events: workers → webhook sender ----------------------------------------------


def _event_id(value: str) -> str:
    if not (0 < len(value) <= MAX_EVENT_ID and value.isascii() and value.isprintable()):
        raise ValueError("event id is empty, too long or not printable ASCII")
    return value


def _http_url(value: str) -> str:
    """No control characters (PostgreSQL text refuses NUL, logs should not carry others)."""
    if (
        len(value) > MAX_URL
        or not value[:8].lower().startswith(("http://", "https://"))
        or not value.isprintable()
        or " " in value
    ):
        raise ValueError("not an http(s) URL")
    return value


HttpUrl = Annotated[str, AfterValidator(_http_url)]


class WebhookEvent(QueueMessage):
    id: Annotated[str, AfterValidator(_event_id)]
    type: Literal["message.status", "message.inbound"]
    account_id: UUID
    timestamp: str
    data: dict[str, Any]
    callback_url: HttpUrl | None = None

    def body(self) -> bytes:
        """The request body customers receive (and whose bytes are signed)."""
        doc = {"type": self.type, "timestamp": self.timestamp, "data": self.data}
        return json.dumps(doc, separators=(",", ":"), ensure_ascii=False, default=str).encode()

    @property
    def message_id(self) -> str | None:
        found = self.data.get("id")
        return found if isinstance(found, str) else None


class WebhookTarget(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    webhook_id: UUID | None = None  # None: the event's per-message callback_url
    url: HttpUrl


class WebhookRetry(QueueMessage):
    """An attempt still to be made (``attempt`` ≥ 2); the secret is looked up again then."""

    event: WebhookEvent
    target: WebhookTarget
    attempt: Annotated[StrictInt, Field(ge=2)]

    @property
    def webhook_id(self) -> UUID | None:
        return self.target.webhook_id

    @property
    def url(self) -> str:
        return self.target.url

    @classmethod
    def to(
        cls, event: WebhookEvent, webhook_id: UUID | None, url: str, attempt: int
    ) -> WebhookRetry:
        target = WebhookTarget(webhook_id=webhook_id, url=url)
        return cls(event=event, target=target, attempt=attempt)


class WebhookBatch(QueueMessage):
    events: list[WebhookEvent] = []
    retries: list[WebhookRetry] = []


# --- decoding -----------------------------------------------------------------------------

ItemT = TypeVar("ItemT", bound=BaseModel)


@dataclass(frozen=True, slots=True)
class Rejected:
    """Something on a queue that cannot be used: the raw item, why, and its version if that
    was the reason."""

    item: Any
    reason: str
    version: object = None

    @property
    def unknown_version(self) -> bool:
        return self.version is not None


@dataclass(slots=True)
class Unpacked(Generic[ItemT]):
    items: list[ItemT] = field(default_factory=list)
    rejected: list[Rejected] = field(default_factory=list)


def _version_of(exc: ValidationError, raw: Any) -> object:
    """The offending version, if the failure is an unknown ``v`` at the top of ``raw`` (of the
    item, or of the member of a tagged union it was read as)."""
    if isinstance(raw, dict) and raw.get("v", VERSION) != VERSION:
        return raw["v"]
    for error in exc.errors(include_url=False):
        loc = tuple(error["loc"])
        if loc[-1:] == ("v",) and len(loc) <= 2 and error["type"] == "literal_error":
            return raw.get("v") if isinstance(raw, dict) else error.get("input")
    return None


def _reason(exc: ValidationError) -> str:
    first = exc.errors(include_url=False)[0]
    where = ".".join(str(p) for p in first["loc"]) or "message"
    return f"{where}: {first['msg']} ({exc.error_count()} error(s))"


#: What an item is read as: a model, or an adapter (a tagged union of models).
ItemType = type[ItemT] | TypeAdapter[ItemT]


def check(model: ItemType[ItemT], raw: Any) -> ItemT | Rejected:
    """``raw`` as ``model``, or why not."""
    try:
        if isinstance(model, TypeAdapter):
            return model.validate_python(raw)
        return model.model_validate(raw)
    except ValidationError as exc:
        version = _version_of(exc, raw)
        if version is not None:
            return Rejected(raw, f"unknown version {version!r}", version)
        return Rejected(raw, _reason(exc))


def loads_slow(body: bytes) -> Any:
    """Python's JSON parser: unlike the fast one it accepts lone surrogates (\\ud800)."""
    try:
        return json.loads(body)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError, bad UTF-8: ValueError
        raise NotDecodable("not JSON") from exc


class NotDecodable(ValueError):
    """A whole AMQP message that cannot be used; ``version`` set if that is the reason."""

    def __init__(self, reason: str, version: object = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.version = version


def decode(model: type[ItemT], body: bytes) -> ItemT:
    """One AMQP message as ``model``; NotDecodable (with the version, if unknown) if not."""
    try:
        return model.model_validate_json(body)
    except ValidationError:
        pass
    found = check(model, loads_slow(body))
    if isinstance(found, Rejected):
        raise NotDecodable(found.reason, found.version)
    return found


def unpack(
    envelope: type[BaseModel], key: str, item: ItemType[ItemT], body: bytes, *, bare: bool = False
) -> Unpacked[ItemT]:
    """The items of a packed AMQP message: one validation on the hot path; item by item only
    if that fails, so each bad item is rejected alone. NotDecodable if the envelope is unusable.
    With ``bare``, an object without ``key`` is taken as one unpacked item (as published by
    hand, or by a producer that does not pack).
    """
    try:
        return Unpacked(list(getattr(envelope.model_validate_json(body), key)))
    except ValidationError:
        pass
    doc = loads_slow(body)
    if not isinstance(doc, dict):
        raise NotDecodable("not a JSON object")
    version = doc.get("v", VERSION)
    if version != VERSION:
        raise NotDecodable(f"unknown version {version!r}", version)
    raws = [doc] if bare and key not in doc else doc.get(key)
    if not isinstance(raws, list):
        raise NotDecodable(f"{key} is not a list")
    out: Unpacked[ItemT] = Unpacked()
    for raw in raws:
        found = check(item, raw)
        if isinstance(found, Rejected):
            out.rejected.append(found)
        else:
            out.items.append(found)
    return out


_CARRIER_EVENT: TypeAdapter[ReceiptEvent | InboundEvent] = TypeAdapter(CarrierEvent)


def unpack_carrier_events(body: bytes) -> Unpacked[ReceiptEvent | InboundEvent]:
    return unpack(CarrierEvents, "events", _CARRIER_EVENT, body)


def pack(key: str, items: Sequence[bytes]) -> bytes:
    """Items already serialized (``model_dump_json``) packed as ``{"v":1,key:[...]}`` without
    decoding and re-encoding them."""
    return b'{"v":1,"' + key.encode() + b'":[' + b",".join(items) + b"]}"


def to_json(item: Any) -> bytes:
    """A model (or a plain JSON value) as compact JSON bytes.

    A string holding a lone surrogate cannot be written as UTF-8; those go through the stdlib
    encoder, which escapes them, so that such a message still reaches its consumer.
    """
    if isinstance(item, BaseModel):
        try:
            return item.model_dump_json().encode()
        except ValueError:  # PydanticSerializationError is a ValueError
            item = item.model_dump(mode="json")
    return json.dumps(item, separators=(",", ":"), default=_plain).encode()


def _plain(value: Any) -> Any:
    """json.dumps' fallback: models nested in a plain payload, then UUIDs, datetimes etc."""
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    return str(value)


def identify(raw: Any) -> tuple[list[str], list[str]]:
    """Account ids and message ids found in a queue message (for logs of what was set aside)."""
    accounts: list[str] = []
    messages: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, list):
            for child in node:
                walk(child)
            return
        if not isinstance(node, dict):
            return
        if isinstance(node.get("account_id"), str):
            accounts.append(node["account_id"])
        for mid, *_ in (r for r in node.get("recipients") or [] if isinstance(r, list | tuple)):
            messages.append(str(mid))
        if isinstance(node.get("ids"), list):
            messages.extend(str(i) for i in node["ids"])
        data = node.get("data")
        if isinstance(data, dict) and isinstance(data.get("id"), str):
            messages.append(data["id"])
        for key in ("requests", "events", "retries", "event", "item"):
            if key in node:
                walk(node[key])

    walk(raw)
    return sorted(set(accounts)), list(dict.fromkeys(messages))
