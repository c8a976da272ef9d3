"""Cursor pagination, the same for every list: newest first, and a cursor that is the position
(timestamp, key) of the last row of the page before, opaque to customers."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any, ClassVar, TypeVar
from uuid import UUID

from pydantic import BaseModel, Field, field_validator
from pydantic_core import PydanticCustomError

from api.schemas.common import Text

RowT = TypeVar("RowT")

#: Cursor timestamps outside these years were never written by this API.
CURSOR_YEARS = range(2000, 10000)


def encode_cursor(at: datetime, key: object) -> str:
    return base64.urlsafe_b64encode(f"{at.isoformat()}|{key}".encode()).decode()


def decode_cursor(raw: str, key_type: Callable[[str], Any] = UUID) -> tuple[datetime, Any]:
    """(timestamp, key) of a cursor this API gave; PydanticCustomError INVALID_CURSOR else."""
    try:
        stamp, sep, key = base64.urlsafe_b64decode(raw.encode()).decode().partition("|")
        at = datetime.fromisoformat(stamp)
        if not sep or not key or at.tzinfo is None or at.year not in CURSOR_YEARS:
            raise ValueError("not a position")
        return at.astimezone(UTC), key_type(key)
    except (ValueError, OverflowError, binascii.Error, UnicodeError) as exc:
        raise PydanticCustomError(
            "INVALID_CURSOR", "`cursor` is not a cursor this API gave"
        ) from exc


class PageQuery(BaseModel):
    """``limit`` and ``cursor`` of a list; a subclass adds its filters."""

    #: What the key in a cursor is: a UUID (the row's id), or ``str`` (e.g. a phone number).
    cursor_key: ClassVar[Callable[[str], Any]] = UUID

    limit: int = Field(50, ge=1, le=200)
    cursor: Text | None = Field(
        None, max_length=200, description="`next_cursor` of the page before."
    )

    @field_validator("cursor")
    @classmethod
    def _cursor(cls, value: str | None) -> str | None:
        if value is not None:
            decode_cursor(value, cls.cursor_key)
        return value

    @property
    def read_limit(self) -> int:
        """Rows to read: one more than a page shows whether another page follows."""
        return self.limit + 1

    def cut(
        self, rows: Sequence[RowT], position: Callable[[RowT], tuple[datetime, object]]
    ) -> tuple[list[RowT], str | None]:
        """The page of ``read_limit`` rows read, and the cursor of the next page (None: last)."""
        shown = list(rows[: self.limit])
        more = len(rows) > self.limit
        return shown, encode_cursor(*position(shown[-1])) if more else None

    @property
    def position(self) -> tuple[datetime, Any] | None:
        """Where the page starts: after this (timestamp, key); None for the first page."""
        if self.cursor is None:
            return None
        return decode_cursor(self.cursor, type(self).cursor_key)
