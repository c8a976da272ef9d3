"""The sender-ids API: registration (pending until the operator decides), list, read, withdraw."""

from __future__ import annotations

import base64
import binascii
from datetime import UTC, datetime
from typing import Annotated, ClassVar
from uuid import UUID

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator
from pydantic_core import PydanticCustomError

from api.schemas.common import Text, checked
from broker.sender_ids import MAX_PURPOSE, parse_sender_id
from broker.status import SenderIdStatus

#: The rule of broker.sender_ids.parse_sender_id (which also refuses one made only of spaces),
#: for the document.
SENDER_ID_PATTERN = r"^([A-Za-z0-9 ._&-]{3,11}|\+?[0-9]{3,15})$"


def _purpose(value: str) -> str:
    value = value.strip()
    if not value:
        raise PydanticCustomError("INVALID_PURPOSE", "`purpose` must not be blank")
    return value


class SenderIdCreate(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"sender_id": "CompanyName", "purpose": "Order and delivery updates"}]
        }
    )

    #: The codes customers know for pydantic's own errors on these fields (see api.contract).
    error_codes: ClassVar[dict[str, str]] = {
        "sender_id": "INVALID_SENDER_ID",
        "purpose": "INVALID_PURPOSE",
    }

    sender_id: Annotated[str, AfterValidator(checked(parse_sender_id))] = Field(
        description="3–11 letters, digits, spaces or `. _ & -` (not only spaces), e.g."
        " `CompanyName`, or a number of 3–15 digits (optional `+`). Exactly what recipients"
        " will see, case included.",
        json_schema_extra={"pattern": SENDER_ID_PATTERN},
    )
    purpose: Annotated[Text, AfterValidator(_purpose)] = Field(
        min_length=1,
        max_length=MAX_PURPOSE,
        description="What the account sends from it, for the operator who approves it.",
    )


class SenderId(BaseModel):
    id: UUID
    sender_id: str
    purpose: str
    status: SenderIdStatus = Field(
        description="`pending` until the operator approves or rejects it; only an approved"
        " sender ID can be a send's `from`."
    )
    reason: str | None = Field(description="Why the operator rejected it, if they said.")
    created_at: datetime
    decided_at: datetime | None = Field(description="When the operator decided it.")


class SenderIdPage(BaseModel):
    data: list[SenderId]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page.")


#: Cursor timestamps outside these years were never written by this API.
_CURSOR_YEARS = range(2000, 10000)


def encode_cursor(created_at: datetime, row_id: UUID) -> str:
    return base64.urlsafe_b64encode(f"{created_at.isoformat()}|{row_id}".encode()).decode()


def _decode_cursor(raw: str) -> tuple[datetime, UUID]:
    try:
        stamp, _, rid = base64.urlsafe_b64decode(raw.encode()).decode().partition("|")
        created_at = datetime.fromisoformat(stamp)
        if created_at.tzinfo is None or created_at.year not in _CURSOR_YEARS:
            raise ValueError("out of range")
        return created_at.astimezone(UTC), UUID(rid)
    except (ValueError, OverflowError, binascii.Error, UnicodeError) as exc:
        raise PydanticCustomError(
            "INVALID_CURSOR", "`cursor` is not a cursor this API gave"
        ) from exc


class SenderIdQuery(BaseModel):
    error_codes: ClassVar[dict[str, str]] = {"status": "INVALID_STATUS"}

    status: SenderIdStatus | None = Field(None, description="Only sender IDs in this status.")
    limit: int = Field(50, ge=1, le=200)
    cursor: Text | None = Field(None, max_length=200)

    @field_validator("cursor")
    @classmethod
    def _cursor(cls, value: str | None) -> str | None:
        if value is not None:
            _decode_cursor(value)
        return value

    @property
    def position(self) -> tuple[datetime, UUID] | None:
        return _decode_cursor(self.cursor) if self.cursor is not None else None
