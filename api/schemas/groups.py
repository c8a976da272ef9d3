"""The groups API: create, list, read, rename, delete; list, add and remove members."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, ClassVar
from uuid import UUID

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from api.schemas.common import Text, checked
from api.schemas.pages import PageQuery
from broker.contacts import MAX_CONTACT_IDS, MAX_GROUP_NAME, parse_group_name

GroupName = Annotated[
    Text,
    AfterValidator(checked(parse_group_name)),
    Field(
        description=f"1–{MAX_GROUP_NAME} characters, trimmed; unique in the account.",
        json_schema_extra={"minLength": 1, "maxLength": MAX_GROUP_NAME},
    ),
]


class GroupCreate(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"name": "VIP customers"}]})

    #: The codes customers know for pydantic's own errors on these fields (see api.contract).
    error_codes: ClassVar[dict[str, str]] = {"name": "INVALID_NAME"}

    name: GroupName


class GroupUpdate(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"name": "Gold customers"}]})

    error_codes: ClassVar[dict[str, str]] = {"name": "INVALID_NAME"}

    name: GroupName


class Group(BaseModel):
    id: UUID
    name: str
    members: int = Field(description="How many contacts are in the group.")
    created_at: datetime
    updated_at: datetime


class GroupPage(BaseModel):
    data: list[Group]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page.")


class GroupQuery(PageQuery):
    """The group list, newest first."""


class MemberQuery(PageQuery):
    """A group's members, newest contact first (GET /v1/contacts?group_id= also filters)."""


class MembersAdd(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"contact_ids": ["0b5d6f1e-8c1a-4a55-9a3e-2f6c1d9e7b10"]}]}
    )

    error_codes: ClassVar[dict[str, str]] = {"contact_ids": "INVALID_CONTACT_IDS"}

    contact_ids: list[UUID] = Field(
        min_length=1,
        max_length=MAX_CONTACT_IDS,
        description=f"1–{MAX_CONTACT_IDS} contacts of this account; contacts already in the"
        " group are fine. An id that is no contact of the account: 404, nobody is added.",
    )


class MembersAdded(BaseModel):
    added: int = Field(description="Contacts that were not members before.")
    members: int = Field(description="Members of the group now.")
