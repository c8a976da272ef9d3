"""The keys API: a key's settings, the secret shown only when it is made."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, ClassVar, Literal
from uuid import UUID

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from api.schemas.common import Text
from api.schemas.pages import PageQuery

Channel = Literal["sms", "whatsapp"]


def _comma_separated(value: Any) -> Any:
    """A form post sends `channels` as one text: "sms,whatsapp"."""
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


class KeyCreate(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "name": "billing server",
                    "channels": ["sms"],
                    "rate_limit_per_minute": 120,
                    "expires_in_days": 90,
                }
            ]
        }
    )

    error_codes: ClassVar[dict[str, str]] = {"channels": "INVALID_CHANNEL"}

    name: Text = Field("", max_length=100, description="A label of your choice.")
    channels: Annotated[list[Channel] | None, BeforeValidator(_comma_separated)] = Field(
        None,
        min_length=1,
        max_length=10,
        description="Channels the key may send on (default: the calling key's channels).",
    )
    rate_limit_per_minute: int | None = Field(
        None,
        ge=1,
        le=1_000_000,
        description="Requests per minute (default 60, or the calling key's limit if lower).",
    )
    expires_in_days: int | None = Field(
        None,
        ge=1,
        le=365,
        description="Days until the key expires (default: when the calling key expires, or never).",
    )


class ApiKey(BaseModel):
    id: UUID
    name: str
    prefix: str = Field(description="The first characters of the secret, to recognise it.")
    channels: list[Channel]
    rate_limit_per_minute: int
    expires_at: datetime | None
    last_used_at: datetime | None = Field(
        description="When the key was last used (updated at most once a minute)."
    )
    revoked_at: datetime | None
    status: Literal["active", "revoked", "expired"]
    created_at: datetime


class ApiKeyCreated(ApiKey):
    secret: str = Field(description="The key itself: shown only in this answer, stored hashed.")


class ApiKeyList(BaseModel):
    data: list[ApiKey]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page.")


class KeyQuery(PageQuery):
    """The account's keys, newest first."""
