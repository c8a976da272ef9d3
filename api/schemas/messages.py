"""POST /v1/messages and the message, batch and list resources."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, ClassVar, Literal
from uuid import UUID

from pydantic import (
    AfterValidator,
    AliasChoices,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from api.schemas.common import (
    Number,
    OptionalText,
    Text,
    blank_as_none,
    checked,
    destination_url,
    field_error,
    storable,
)
from api.schemas.pages import CURSOR_YEARS, PageQuery
from api.schemas.variables import Variables
from broker.phone import check_sender, parse_recipients
from broker.status import MessageStatus, PartStatus
from broker.text import MAX_CALLBACK_URL, MAX_CLIENT_REF

Status = MessageStatus
MAX_SCHEDULE_AHEAD = timedelta(days=366)
MIN_VALIDITY, MAX_VALIDITY = 10, 7 * 24 * 3600
EncodingName = Literal["GSM7", "UCS2"]
ClientRef = Annotated[
    Annotated[str, Field(max_length=MAX_CLIENT_REF), AfterValidator(storable)] | None,
    BeforeValidator(blank_as_none),
]
CallbackUrl = Annotated[
    Annotated[str, Field(max_length=MAX_CALLBACK_URL), AfterValidator(storable)] | None,
    BeforeValidator(blank_as_none),
]


class SendRequest(BaseModel):
    """A send to one or many numbers (JSON, or form-urlencoded with the same names)."""

    model_config = ConfigDict(
        populate_by_name=True,
        json_schema_extra={
            "examples": [
                {
                    "to": ["+14155552671", "(415) 555-2672"],
                    "body": "Your code is 1234",
                    "from": "Acme",
                    "client_ref": "order-17",
                    "callback_url": "https://example.com/sms-status",
                }
            ]
        },
    )

    #: The codes customers know for pydantic's own errors on these fields (see api.contract).
    error_codes: ClassVar[dict[str, str]] = {
        "to:missing": "MISSING_RECIPIENT",
        "to": "INVALID_PHONE_NUMBER",
        "body:missing": "EMPTY_BODY",
        "body": "INVALID_BODY",
        "from": "INVALID_SENDER_ID",
        "callback_url": "INVALID_URL",
        "scheduled_at": "INVALID_SCHEDULE",
        "validity_period": "INVALID_VALIDITY_PERIOD",
    }

    to: str | list[Text] | None = Field(
        None,
        description="One number, a list, or a comma-separated string; local numbers are read "
        "with the account's region and answered in E.164. Optional with `group_ids`.",
    )
    body: Text | None = Field(
        None,
        validation_alias=AliasChoices("body", "message"),
        description="The text (GSM 03.38 or UCS-2 is chosen for you). `message` is accepted too. "
        "Give `body` or `template_id`.",
    )
    group_ids: list[UUID] = Field(
        default_factory=list,
        max_length=100,
        description="Groups whose members are sent to as well; a number in several groups or "
        "also in `to` gets one message.",
    )
    template_id: UUID | None = Field(
        None,
        description="A template of the account, rendered for each recipient: its contact's "
        "values (name, first_name, last_name, phone, email, fields) first, then `variables`.",
    )
    variables: Variables = Field(default_factory=dict)
    sender: OptionalText = Field(
        None,
        alias="from",
        description="Sender id: 3–11 letters/digits, or a number of up to 15 digits.",
    )
    channel: Literal["sms", "whatsapp"] = "sms"
    client_ref: ClientRef = Field(
        None, description="Your reference, returned with the message and its webhooks."
    )
    callback_url: CallbackUrl = Field(
        None,
        description="Where this message's status is posted, signed with the account's secret.",
    )
    scheduled_at: Annotated[AwareDatetime | None, BeforeValidator(blank_as_none)] = Field(
        None,
        description="RFC 3339 with a time zone, in the future and at most a year ahead: the "
        "messages are `scheduled` (charged now) until then and can be canceled.",
    )
    validity_period: Annotated[int | None, BeforeValidator(blank_as_none)] = Field(
        None,
        ge=MIN_VALIDITY,
        le=MAX_VALIDITY,
        description="Seconds after it is due within which it must reach the carrier; if not, "
        "it ends `failed` `EXPIRED` and is refunded. Passed to the carrier too.",
    )

    @field_validator("to")
    @classmethod
    def _recipients(cls, value: str | list[str] | None, info: ValidationInfo) -> list[str]:
        context = info.context or {}
        if value is None or value == [] or value == "":
            return []  # whether a send has a recipient at all is _needs below
        return checked(
            lambda v: parse_recipients(
                v, context.get("region", "US"), limit=context.get("max_recipients", 1000)
            )
        )(value)

    @model_validator(mode="after")
    def _needs(self) -> SendRequest:
        name = type(self).__name__
        if not self.to and not self.group_ids:
            raise field_error(
                name, "to", "MISSING_RECIPIENT", "`to` needs at least one phone number"
            )
        if self.body is None and self.template_id is None:
            raise field_error(
                name, "body", "EMPTY_BODY", "the message body is empty (or give a `template_id`)"
            )
        if self.body is not None and self.template_id is not None:
            raise field_error(
                name, "template_id", "INVALID_TEMPLATE", "give `body` or `template_id`, not both"
            )
        return self

    @field_validator("body")
    @classmethod
    def _body(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None:
            return None
        limit = (info.context or {}).get("max_body_chars", 1600)
        if not value:
            raise PydanticCustomError("EMPTY_BODY", "the message body is empty")
        if len(value) > limit:
            raise PydanticCustomError(
                "BODY_TOO_LONG",
                f"the message body has {len(value)} characters; the maximum is {limit}",
            )
        return value

    @field_validator("sender")
    @classmethod
    def _sender(cls, value: str | None) -> str | None:
        return checked(check_sender)(value)

    @field_validator("callback_url")
    @classmethod
    def _callback_url(cls, value: str | None, info: ValidationInfo) -> str | None:
        return None if value is None else destination_url(value, info)

    @field_validator("scheduled_at")
    @classmethod
    def _scheduled_at(cls, value: datetime | None) -> datetime | None:
        if value is None:
            return None
        now = datetime.now(UTC)
        if value <= now:
            raise PydanticCustomError("INVALID_SCHEDULE", "`scheduled_at` must be in the future")
        if value > now + MAX_SCHEDULE_AHEAD:
            raise PydanticCustomError(
                "INVALID_SCHEDULE", "`scheduled_at` must be at most a year ahead"
            )
        return value.astimezone(UTC)

    @property
    def recipients(self) -> list[str]:
        """The numbers of ``to``, normalized (none if only groups are sent to)."""
        if self.to is None:
            return []
        assert isinstance(self.to, list)
        return self.to


class AcceptedMessage(BaseModel):
    id: UUID
    to: str = Field(description="E.164")
    status: Status
    encoding: EncodingName
    segments: int = Field(description="Parts on the wire, on the connector this number routes to.")


class SendAccepted(BaseModel):
    """Durably queued: from this answer on, every message reaches a final state."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "batch_id": "6f1c1b9e-3a52-4d3e-9a43-0b7e52a1c2d4",
                    "recipients": 2,
                    "estimated_cost": 2,
                    "messages": [
                        {
                            "id": "0b5d7f0e-8a1e-4f43-bb3f-5f4e8f1f9a10",
                            "to": "+14155552671",
                            "status": "queued",
                            "encoding": "GSM7",
                            "segments": 1,
                        },
                        {
                            "id": "9d2e4c1a-77b0-4a55-a3f2-1c0d8e6b5f21",
                            "to": "+14155552672",
                            "status": "queued",
                            "encoding": "GSM7",
                            "segments": 1,
                        },
                    ],
                }
            ]
        }
    )

    batch_id: UUID | None = Field(description="Set when the send has more than one recipient.")
    recipients: int = Field(description="How many numbers the send reaches.")
    estimated_cost: Number | None = Field(
        description="The sum of the messages' prices; null for a send to groups made in the "
        "background, whose messages are charged one by one as they are made."
    )
    messages: list[AcceptedMessage] = Field(
        description="Every message; empty for a send to groups with more recipients than a "
        "request may name: its messages are made in the background, followed with "
        "GET /v1/batches/{batch_id}."
    )


class MessageError(BaseModel):
    code: str
    text: str | None


class Message(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    id: UUID
    batch_id: UUID | None
    to: str
    sender: str | None = Field(alias="from")
    channel: Literal["sms", "whatsapp"] = "sms"
    status: Status
    encoding: EncodingName
    segments: int
    cost: Number | None
    client_ref: str | None
    error: MessageError | None
    created_at: datetime
    updated_at: datetime
    sent_at: datetime | None
    done_at: datetime | None
    scheduled_at: datetime | None = None
    expires_at: datetime | None = None


class Part(BaseModel):
    seq: int
    connector: str
    carrier_id: str | None
    status: PartStatus
    command_status: int | None
    error_code: str | None
    submitted_at: datetime
    done_at: datetime | None


class HistoryEntry(BaseModel):
    status: str
    detail: str | None
    at: datetime


class MessageDetail(Message):
    parts: list[Part]
    history: list[HistoryEntry]


class MessagePage(BaseModel):
    data: list[Message]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page.")


class MessageQuery(PageQuery):
    """Filters of the message list; each one alone or combined, newest first."""

    model_config = ConfigDict(populate_by_name=True)

    error_codes: ClassVar[dict[str, str]] = {"to": "INVALID_PHONE_NUMBER"}

    status: Status | None = None
    batch_id: UUID | None = None
    to: Text | None = Field(
        None, max_length=40, description="A number, E.164 or local to the account's region."
    )
    client_ref: ClientRef = Field(None, description="Exactly the `client_ref` of the send.")
    created_after: AwareDatetime | None = Field(None, description="RFC 3339, exclusive.")
    created_before: AwareDatetime | None = Field(None, description="RFC 3339, exclusive.")

    @field_validator("to")
    @classmethod
    def _to(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None:
            return None
        region = (info.context or {}).get("region", "US")
        return checked(lambda v: parse_recipients(v, region, limit=1)[0])(value)

    @property
    def filters(self) -> dict[str, object]:
        """The filters by the names of broker.store.messages.PAGE_FILTERS (None: not given)."""
        return {
            "status": self.status,
            "batch_id": self.batch_id,
            "to_number": self.to,
            "client_ref": self.client_ref,
            "created_after": self.created_after,
            "created_before": self.created_before,
        }

    @field_validator("created_after", "created_before")
    @classmethod
    def _in_range(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.year not in CURSOR_YEARS:
            raise PydanticCustomError("INVALID_INPUT", "the date is out of range")
        return value


class Batch(BaseModel):
    id: UUID
    total: int = Field(description="Recipients of the send.")
    statuses: dict[str, int] = Field(description="Messages by status, as charged so far.")
    cost: Number
    expanded: int = Field(
        description="Messages made so far; below `total` while a send to groups is still being "
        "made in the background."
    )
    expanding: bool = Field(description="The background expansion is still going on.")


def message_model(resource: dict[str, Any]) -> Message:
    return Message.model_validate(resource)
