"""The contacts API: create, list (filters), read, change, delete."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, ClassVar
from uuid import UUID

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationInfo,
    WithJsonSchema,
)
from pydantic_core import PydanticCustomError

from api.schemas.common import OptionalText, Text, blank_as_none, checked
from api.schemas.pages import PageQuery
from broker import contacts
from broker.contacts import (
    MAX_EMAIL,
    MAX_FIELD_KEY,
    MAX_FIELD_VALUE,
    MAX_FIELDS,
    MAX_GROUP_IDS,
    MAX_NAME,
    MAX_PHONE_INPUT,
    ContactChanges,
    ContactRow,
    NewContact,
)


def _phone(value: str, info: ValidationInfo) -> str:
    region = (info.context or {}).get("region", "US")
    return checked(lambda v: contacts.parse_phone(v, region))(value)


def _name(field: str) -> AfterValidator:
    return AfterValidator(checked(lambda v: contacts.parse_name(v, field=field)))


def _fields_or_empty(value: Any) -> dict[str, str]:
    """A PATCH's ``fields: null`` clears them, as ``{}`` does."""
    return {} if value is None else contacts.parse_fields(value)


def _kept_phone(value: Any) -> Any:
    if value is None:
        raise PydanticCustomError(
            "INVALID_PHONE_NUMBER", "`phone` cannot be cleared: a contact has a number"
        )
    return value


Phone = Annotated[
    Text,
    AfterValidator(_phone),
    Field(
        max_length=MAX_PHONE_INPUT,
        description="E.164 (`+14155552671`), or a number local to the account's region;"
        " stored and shown in E.164.",
    ),
]
FirstName = Annotated[OptionalText, _name("first_name")]
LastName = Annotated[OptionalText, _name("last_name")]
Email = Annotated[OptionalText, AfterValidator(checked(contacts.parse_email))]

_FIELDS_SCHEMA: dict[str, Any] = {
    "type": "object",
    "maxProperties": MAX_FIELDS,
    "propertyNames": {"minLength": 1, "maxLength": MAX_FIELD_KEY},
    "additionalProperties": {
        "anyOf": [
            {"type": "string", "maxLength": MAX_FIELD_VALUE},
            {"type": "number"},
            {"type": "boolean"},
        ]
    },
}
Fields = Annotated[
    dict[str, str],
    BeforeValidator(checked(contacts.parse_fields)),
    WithJsonSchema(_FIELDS_SCHEMA),
]
NullableFields = Annotated[
    dict[str, str],
    BeforeValidator(checked(_fields_or_empty)),
    WithJsonSchema({"anyOf": [_FIELDS_SCHEMA, {"type": "null"}]}),
]

_NAME_DOC = f"At most {MAX_NAME} characters, trimmed; blank means none."
_EMAIL_DOC = f"A plausible email address, at most {MAX_EMAIL} characters."
_FIELDS_DOC = (
    f"Custom values by name, filled into a template's `{{{{name}}}}`: at most {MAX_FIELDS}"
    f" names of 1–{MAX_FIELD_KEY} printable characters; each value text, a number or a"
    f" boolean, kept as text of at most {MAX_FIELD_VALUE} characters (`true`, `12.5`)."
)


class ContactCreate(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "phone": "+14155552671",
                    "first_name": "Ada",
                    "last_name": "Lovelace",
                    "email": "ada@example.com",
                    "fields": {"plan": "gold", "visits": 3},
                    "group_ids": [],
                }
            ]
        }
    )

    #: The codes customers know for pydantic's own errors on these fields (see api.contract).
    error_codes: ClassVar[dict[str, str]] = {
        "phone": "INVALID_PHONE_NUMBER",
        "first_name": "INVALID_NAME",
        "last_name": "INVALID_NAME",
        "email": "INVALID_EMAIL",
        "fields": "INVALID_FIELDS",
        "group_ids": "INVALID_GROUP_IDS",
    }

    phone: Phone
    first_name: FirstName = Field(
        None, description=_NAME_DOC, json_schema_extra={"maxLength": MAX_NAME}
    )
    last_name: LastName = Field(
        None, description=_NAME_DOC, json_schema_extra={"maxLength": MAX_NAME}
    )
    email: Email = Field(None, description=_EMAIL_DOC, json_schema_extra={"maxLength": MAX_EMAIL})
    fields: Fields = Field(default_factory=dict, description=_FIELDS_DOC)
    group_ids: list[UUID] = Field(
        default_factory=list,
        max_length=MAX_GROUP_IDS,
        description="Groups of this account the contact joins (an unknown id: 404, and no"
        " contact is created).",
    )

    def contact(self) -> NewContact:
        return NewContact(
            phone=self.phone,
            first_name=self.first_name,
            last_name=self.last_name,
            email=self.email,
            fields=self.fields,
            group_ids=self.group_ids,
        )


class ContactUpdate(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"first_name": "Ada", "email": None, "group_ids": []}]}
    )

    error_codes: ClassVar[dict[str, str]] = ContactCreate.error_codes

    phone: Annotated[
        Phone | None,
        BeforeValidator(_kept_phone),
        WithJsonSchema({"type": "string", "minLength": 1, "maxLength": MAX_PHONE_INPUT}),
    ] = Field(None, description="A new number, normalized as on create (it cannot be cleared).")
    first_name: FirstName = Field(
        None, description=_NAME_DOC, json_schema_extra={"maxLength": MAX_NAME}
    )
    last_name: LastName = Field(
        None, description=_NAME_DOC, json_schema_extra={"maxLength": MAX_NAME}
    )
    email: Email = Field(None, description=_EMAIL_DOC, json_schema_extra={"maxLength": MAX_EMAIL})
    fields: NullableFields = Field(
        default_factory=dict, description=f"Replaces the whole object (null: none). {_FIELDS_DOC}"
    )
    group_ids: Annotated[list[UUID], BeforeValidator(lambda v: [] if v is None else v)] = Field(
        default_factory=list,
        max_length=MAX_GROUP_IDS,
        description="Replaces the contact's memberships (null or `[]`: no group).",
    )

    def changes(self) -> ContactChanges:
        """Only the fields the request named (a null name or email clears it)."""
        return ContactChanges(
            given=frozenset(self.model_fields_set),
            phone=self.phone,
            first_name=self.first_name,
            last_name=self.last_name,
            email=self.email,
            fields=self.fields,
            group_ids=self.group_ids,
        )


class Contact(BaseModel):
    id: UUID
    phone: str = Field(description="E.164.")
    first_name: str | None
    last_name: str | None
    email: str | None
    fields: dict[str, str] = Field(description="Custom values by name, as text.")
    group_ids: list[UUID] = Field(description="The groups it belongs to, oldest membership first.")
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, row: ContactRow) -> Contact:
        return cls.model_validate(row, from_attributes=True)


class ContactPage(BaseModel):
    data: list[Contact]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page.")


class ContactQuery(PageQuery):
    """Filters of the contact list; each alone or combined, newest contact first."""

    error_codes: ClassVar[dict[str, str]] = {"phone": "INVALID_PHONE_NUMBER"}

    group_id: UUID | None = Field(None, description="Only members of this group.")
    phone: Annotated[Phone | None, BeforeValidator(blank_as_none)] = Field(
        None, description="This number: E.164 or local to the account's region."
    )
    q: Annotated[Text | None, BeforeValidator(blank_as_none)] = Field(
        None,
        max_length=MAX_NAME,
        description="A prefix of the first or the last name, any case (`ad` finds Ada).",
    )
