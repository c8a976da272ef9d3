"""The webhooks API: endpoints (the secret shown once) and their delivery log."""

from __future__ import annotations

from datetime import datetime
from typing import ClassVar, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from api.schemas.common import Text, destination_url, field_error
from broker.errors import InputError
from broker.webhooks.endpoints import EndpointSpec, events_for
from broker.webhooks.events import EVENT_TYPES

EventType = Literal["message.status", "message.inbound"]
#: broker.webhooks.formats.FORMATS
WebhookFormat = Literal["standard", "vavasms"]


def _all_events() -> list[EventType]:
    return ["message.status", "message.inbound"]


class WebhookCreate(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"url": "https://example.com/hooks/sms", "events": ["message.status"]}]
        }
    )

    #: The codes customers know for pydantic's own errors on these fields (see api.contract).
    error_codes: ClassVar[dict[str, str]] = {
        "url": "INVALID_URL",
        "events": "INVALID_EVENTS",
        "format": "INVALID_FORMAT",
    }

    url: Text = Field(max_length=2000, description="http(s) URL that receives signed events.")
    events: list[EventType] = Field(
        default_factory=_all_events,
        min_length=1,
        description="Event types to receive (default: all the format carries).",
    )
    format: WebhookFormat = Field(
        "standard",
        description="The body posted: `standard` (JSON events, Standard Webhooks signatures) or "
        "`vavasms` (VavaSMS's inbound SMS notification: a form POST with `message_id`, `from`, "
        "`content`, `sms_date`, same signature headers; `message.inbound` events only).",
    )

    @field_validator("url")
    @classmethod
    def _url(cls, value: str, info: ValidationInfo) -> str:
        return destination_url(value, info)

    @model_validator(mode="after")
    def _events_of_format(self) -> WebhookCreate:
        asked = self._asked_events()
        try:
            chosen = events_for(self.format, asked)
        except InputError as exc:
            raise field_error(type(self).__name__, "events", exc.code, exc.message) from None
        self.events = [e for e in _all_events() if e in chosen]
        return self

    def _asked_events(self) -> tuple[str, ...] | None:
        if "events" not in self.model_fields_set:
            return None
        return tuple(t for t in EVENT_TYPES if t in self.events)

    @property
    def spec(self) -> EndpointSpec:
        return EndpointSpec(
            self.url, tuple(t for t in EVENT_TYPES if t in self.events), self.format
        )


class Webhook(BaseModel):
    id: UUID
    url: str
    events: list[EventType]
    format: WebhookFormat = "standard"
    created_at: datetime


class WebhookCreated(Webhook):
    secret: str = Field(description="Signing secret (Standard Webhooks), shown only once.")


class WebhookList(BaseModel):
    data: list[Webhook]
    next_cursor: str | None = None


class DeliveryQuery(BaseModel):
    limit: int = Field(50, ge=1, le=200)
    before: int | None = Field(
        None, ge=1, le=2**63 - 1, description="`next_before` of the previous page."
    )


class Delivery(BaseModel):
    id: int
    event_id: str
    event_type: str
    url: str
    attempt: int
    status_code: int | None
    success: bool
    error: str | None
    duration_ms: int
    final: bool
    created_at: datetime


class DeliveryPage(BaseModel):
    data: list[Delivery]
    next_before: int | None
