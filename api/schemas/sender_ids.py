"""The sender-ids API: registration (pending until the operator decides), list, read, withdraw."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, ClassVar
from uuid import UUID

from pydantic import AfterValidator, BaseModel, ConfigDict, Field
from pydantic_core import PydanticCustomError

from api.schemas.common import Text, checked
from api.schemas.pages import PageQuery
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


class SenderIdQuery(PageQuery):
    error_codes: ClassVar[dict[str, str]] = {"status": "INVALID_STATUS"}

    status: SenderIdStatus | None = Field(None, description="Only sender IDs in this status.")
