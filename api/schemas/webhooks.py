"""The webhooks API: endpoints (the secret shown once) and their delivery log."""

from __future__ import annotations

from datetime import datetime
from typing import ClassVar, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from api.schemas.common import Text, destination_url
from broker.webhooks.endpoints import EndpointSpec
from broker.webhooks.events import EVENT_TYPES

EventType = Literal["message.status", "message.inbound"]


def _all_events() -> list[EventType]:
    return ["message.status", "message.inbound"]


class WebhookCreate(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"url": "https://example.com/hooks/sms", "events": ["message.status"]}]
        }
    )

    #: The codes customers know for pydantic's own errors on these fields (see api.contract).
    error_codes: ClassVar[dict[str, str]] = {"url": "INVALID_URL", "events": "INVALID_EVENTS"}

    url: Text = Field(max_length=2000, description="http(s) URL that receives signed events.")
    events: list[EventType] = Field(
        default_factory=_all_events,
        min_length=1,
        description="Event types to receive (default: all).",
    )

    @field_validator("url")
    @classmethod
    def _url(cls, value: str, info: ValidationInfo) -> str:
        return destination_url(value, info)

    @property
    def spec(self) -> EndpointSpec:
        return EndpointSpec(self.url, tuple(t for t in EVENT_TYPES if t in self.events))


class Webhook(BaseModel):
    id: UUID
    url: str
    events: list[EventType]
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
