"""The contacts import API: a CSV body in, counts and row-numbered errors out."""

from __future__ import annotations

from typing import ClassVar
from uuid import UUID

from pydantic import BaseModel, Field


class ContactImportQuery(BaseModel):
    error_codes: ClassVar[dict[str, str]] = {"group_id": "INVALID_GROUP_ID"}

    group_id: UUID | None = Field(
        None, description="A group of the account every imported contact joins."
    )


class ImportRowError(BaseModel):
    row: int = Field(
        description="The row as a spreadsheet shows the file: the header is row 1, a record"
        " whose quoted cells span lines is one row, blank lines count."
    )
    field: str | None = Field(
        description="The column: phone, first_name, last_name, email, or a custom column's"
        " header; null when the row as a whole is wrong (cell count, not UTF-8)."
    )
    message: str


class ContactImportResult(BaseModel):
    model_config = {
        "json_schema_extra": {
            "examples": [
                {
                    "created": 2,
                    "updated": 1,
                    "failed": 1,
                    "errors": [
                        {"row": 4, "field": "phone", "message": "'12' is not a valid phone number"}
                    ],
                    "errors_truncated": False,
                }
            ]
        }
    }

    created: int = Field(description="Rows whose phone was not yet a contact of the account.")
    updated: int = Field(
        description="Rows whose phone was already a contact (or came earlier in the file)."
    )
    failed: int = Field(description="Rows not imported; each has its entries in `errors`.")
    errors: list[ImportRowError] = Field(description="The first 1000 problems, by row.")
    errors_truncated: bool = Field(description="Whether there were more problems than listed.")
