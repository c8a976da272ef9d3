"""/v1/opt-outs: numbers that refused the account's messages."""

from __future__ import annotations

from datetime import datetime
from typing import ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator
from pydantic_core import PydanticCustomError

from api.schemas.common import Text
from api.schemas.pages import PageQuery
from broker.opt_outs import normalize_phone
from broker.store.opt_outs import OptOutRow


def invalid_phone() -> PydanticCustomError:
    return PydanticCustomError(
        "INVALID_PHONE_NUMBER",
        "`phone` is not a valid phone number (E.164, or a local number of the account's region)",
    )


class OptOutCreate(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"phone": "+14155552671"}]})

    #: The codes customers know for pydantic's own errors on these fields (see api.contract).
    error_codes: ClassVar[dict[str, str]] = {"phone": "INVALID_PHONE_NUMBER"}

    phone: Text = Field(
        max_length=40,
        description="The number, in E.164 or local to the account's region; stored and "
        "answered in E.164.",
    )

    @field_validator("phone")
    @classmethod
    def _phone(cls, value: str, info: ValidationInfo) -> str:
        found = normalize_phone(value, (info.context or {}).get("region", "US"))
        if found is None:
            raise invalid_phone()
        return found


class OptOut(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "phone": "+14155552671",
                    "source": "keyword",
                    "keyword": "STOP",
                    "created_at": "2026-11-22T13:55:00.123Z",
                }
            ]
        }
    )

    phone: str = Field(description="E.164.")
    source: Literal["api", "keyword"] = Field(
        description="`api`: added with POST /v1/opt-outs; `keyword`: the number texted a "
        "keyword such as STOP to one of the account's numbers."
    )
    keyword: str | None = Field(description="The word texted (e.g. STOP), upper-case, or null.")
    created_at: datetime

    @classmethod
    def of(cls, row: OptOutRow) -> OptOut:
        source: Literal["api", "keyword"] = "keyword" if row.source == "keyword" else "api"
        return cls(phone=row.phone, source=source, keyword=row.keyword, created_at=row.created_at)


class OptOutPage(BaseModel):
    data: list[OptOut]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page.")


class OptOutQuery(PageQuery):
    """Opt-outs, newest first; a cursor's key is the phone number."""

    cursor_key = str
