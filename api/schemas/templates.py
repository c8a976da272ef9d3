"""The templates API: create, list, read, change and delete templates, and preview one."""

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
    field_validator,
    model_validator,
)
from pydantic.json_schema import SkipJsonSchema
from pydantic_core import PydanticCustomError

from api.schemas.common import Number, Text, checked
from api.schemas.messages import EncodingName
from api.schemas.pages import PageQuery
from api.schemas.variables import Variables
from broker.phone import parse_recipients
from broker.store.templates import MAX_STORED_BODY, TemplateRow
from broker.templates import check, variables

MAX_NAME = 100
#: What a template's body may hold without a validation context (the gateway's default).
DEFAULT_MAX_BODY = 1600


def body_limit(context: dict[str, Any] | None) -> int:
    """The longest body (and rendered text) the gateway takes: its ``max_body_chars``, and
    never more than the schema stores."""
    return min(int((context or {}).get("max_body_chars", DEFAULT_MAX_BODY)), MAX_STORED_BODY)


def _name(value: str) -> str:
    value = value.strip()
    if not value or len(value) > MAX_NAME:
        raise PydanticCustomError(
            "INVALID_NAME", f"`name` must be 1–{MAX_NAME} characters, not only spaces"
        )
    return value


def _body(value: str, info: ValidationInfo) -> str:
    """A body as sends take it, whose every ``{{`` and ``}}`` is part of a placeholder."""
    limit = body_limit(info.context)
    if not value:
        raise PydanticCustomError("EMPTY_BODY", "the template body is empty")
    if len(value) > limit:
        raise PydanticCustomError(
            "BODY_TOO_LONG",
            f"the template body has {len(value)} characters; the maximum is {limit}",
        )
    checked(check)(value)
    return value


def _given(value: Any, info: ValidationInfo) -> Any:
    """A change names a value; null would clear a field every template needs."""
    if value is None:
        raise PydanticCustomError(
            TemplateCreate.error_codes.get(info.field_name or "", "INVALID_INPUT"),
            f"`{info.field_name}` cannot be null; leave it out to keep it",
        )
    return value


#: For the document: the length once trimmed.
_NAME_SCHEMA: dict[str, Any] = {"minLength": 1, "maxLength": MAX_NAME}
TemplateName = Annotated[Text, AfterValidator(_name)]
TemplateBody = Annotated[Text, AfterValidator(_body)]

_BODY_DESCRIPTION = (
    "The text, with `{{variable}}` placeholders (letters, digits, `_ . -`, starting with a"
    " letter or `_`; spaces inside the braces allowed). A recipient that is a contact fills"
    " `name`, `first_name`, `last_name`, `phone`, `email` and its `fields`; a send's"
    " `variables` fill the rest. A `{{` or `}}` outside a placeholder is refused"
    " (`INVALID_TEMPLATE`). At most the gateway's body limit (1600 characters by default)."
)


class TemplateCreate(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"name": "Order shipped", "body": "Hi {{first_name}}, order {{order}} shipped."}
            ]
        }
    )

    #: The codes customers know for pydantic's own errors on these fields (see api.contract).
    error_codes: ClassVar[dict[str, str]] = {
        "name": "INVALID_NAME",
        "body:missing": "EMPTY_BODY",
        "body": "INVALID_TEMPLATE",
    }

    name: TemplateName = Field(
        json_schema_extra=_NAME_SCHEMA,
        description="Unique in the account (409 `TEMPLATE_EXISTS`); spaces around it are trimmed.",
    )
    body: TemplateBody = Field(json_schema_extra={"minLength": 1}, description=_BODY_DESCRIPTION)


class TemplateUpdate(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"body": "Hi {{name}}, order {{order}} is on its way."}]}
    )

    error_codes: ClassVar[dict[str, str]] = TemplateCreate.error_codes

    name: Annotated[TemplateName | SkipJsonSchema[None], BeforeValidator(_given)] = Field(
        None,
        json_schema_extra=_NAME_SCHEMA,
        description="A new name, unique in the account (409 `TEMPLATE_EXISTS`).",
    )
    body: Annotated[TemplateBody | SkipJsonSchema[None], BeforeValidator(_given)] = Field(
        None, description="A new body. " + _BODY_DESCRIPTION
    )

    @model_validator(mode="after")
    def _something(self) -> TemplateUpdate:
        if self.name is None and self.body is None:
            raise PydanticCustomError("EMPTY_UPDATE", "give `name`, `body` or both to change")
        return self


class Template(BaseModel):
    id: UUID
    name: str
    body: str
    variables: list[str] = Field(
        description="The body's placeholders, each once, in the order they first appear."
    )
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, row: TemplateRow) -> Template:
        return cls(
            id=row.id,
            name=row.name,
            body=row.body,
            variables=variables(row.body),
            created_at=row.created_at,
            updated_at=row.updated_at,
        )


class TemplatePage(BaseModel):
    data: list[Template]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page.")


class TemplateQuery(PageQuery):
    pass


class TemplatePreviewRequest(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"to": "+14155552671", "variables": {"order": "A-17"}}]}
    )

    error_codes: ClassVar[dict[str, str]] = {
        "to:missing": "MISSING_RECIPIENT",
        "to": "INVALID_PHONE_NUMBER",
        "variables": "INVALID_VARIABLES",
    }

    to: Text = Field(
        max_length=40,
        description="One number, E.164 or local to the account's region; answered in E.164.",
    )
    variables: Variables = Field(default_factory=dict)

    @field_validator("to")
    @classmethod
    def _to(cls, value: str, info: ValidationInfo) -> str:
        region = (info.context or {}).get("region", "US")
        return checked(lambda v: parse_recipients(v, region, limit=1)[0])(value)


class TemplatePreview(BaseModel):
    """What a send of this template to this number would carry and cost; nothing was sent."""

    to: str = Field(description="E.164")
    text: str = Field(description="The template rendered for this recipient.")
    encoding: EncodingName
    segments: int = Field(description="Parts on the wire, on the connector this number routes to.")
    cost: Number | None = Field(
        description="Route price × segments; null when no route carries this number."
    )
