"""GET /v1/inbound: the account's inbound messages (MO), newest first."""

from __future__ import annotations

from datetime import datetime
from typing import Literal
from uuid import UUID

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, field_validator
from pydantic_core import PydanticCustomError

from api.schemas.common import Text
from api.schemas.pages import PageQuery
from broker.inbound import address
from broker.opt_outs import command_of, sender_phone
from broker.store.inbound import InboundRow

#: A `since` PostgreSQL and Python both hold in any time zone.
_SINCE_YEARS = range(1970, 9999)


Action = Literal["opt_out", "opt_in", "help"]


class InboundMessage(BaseModel):
    model_config = ConfigDict(
        populate_by_name=True,
        json_schema_extra={
            "examples": [
                {
                    "id": "0b5d4f9e-7f1a-4c55-9d0e-1f2a3b4c5d6e",
                    "from": "+233205550368",
                    "to": "+14155550100",
                    "body": "STOP",
                    "keyword": None,
                    "action": "opt_out",
                    "action_keyword": "STOP",
                    "received_at": "2026-11-22T13:55:00.123Z",
                }
            ]
        },
    )

    id: UUID
    from_number: str = Field(alias="from", description="The sender.")
    to_number: str = Field(alias="to", description="The account's number it was sent to.")
    body: str
    keyword: str | None = Field(
        description="The keyword of the account's number that routed it here (see "
        "`smsbroker number add --keyword`), or null."
    )
    action: Action | None = Field(
        description="What the whole text did: `opt_out` (STOP, STOPALL, UNSUBSCRIBE, CANCEL, "
        "END, QUIT), `opt_in` (START, UNSTOP), `help` (HELP: the account's help text was sent "
        "back), or null for an ordinary message."
    )
    action_keyword: str | None = Field(description="The word that did it, upper-case.")
    received_at: datetime

    @classmethod
    def of(cls, row: InboundRow) -> InboundMessage:
        command = command_of(row.body)
        can_act = command is not None and sender_phone(row.from_number) is not None
        return cls.model_validate(
            {
                "id": row.id,
                "from": row.from_number,
                "to": row.to_number,
                "body": row.body,
                "keyword": row.keyword or None,
                "action": command.action.value if can_act and command is not None else None,
                "action_keyword": command.keyword if can_act and command is not None else None,
                "received_at": row.received_at,
            }
        )


class InboundPage(BaseModel):
    data: list[InboundMessage]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page.")


def _address(value: str | None) -> str | None:
    return None if value is None else address(value.strip())


class InboundQuery(PageQuery):
    model_config = ConfigDict(populate_by_name=True)

    from_number: Text | None = Field(
        None,
        max_length=40,
        validation_alias=AliasChoices("from", "from_number"),
        description="Only messages from this number (with or without '+').",
    )
    to_number: Text | None = Field(
        None,
        max_length=40,
        validation_alias=AliasChoices("to", "to_number"),
        description="Only messages to this number of the account (with or without '+').",
    )
    since: datetime | None = Field(
        None, description="Only messages received at or after this time (RFC 3339)."
    )

    @field_validator("from_number", "to_number")
    @classmethod
    def _addresses(cls, value: str | None) -> str | None:
        return _address(value)

    @field_validator("since")
    @classmethod
    def _since(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise PydanticCustomError(
                "INVALID_TIMESTAMP", "`since` needs a time zone (RFC 3339, e.g. ...Z)"
            )
        if value is not None and value.year not in _SINCE_YEARS:
            raise PydanticCustomError("INVALID_TIMESTAMP", "`since` is out of range")
        return value
