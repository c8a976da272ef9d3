"""Velstack's answers: the ``{status, code, message, data}`` envelope and what its data holds.

Numbers are shown as Velstack's customers write them: one of the account's own region in its
national digits (``0205550368`` in Ghana), any other in E.164. Dates as Laravel writes them
(``2023-08-19T14:07:52.000000Z``).
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Literal
from uuid import UUID

import phonenumbers
from aiohttp import web
from pydantic import BaseModel, Field

from api.schemas.common import Number
from broker.contacts import ContactRow, GroupRow


class Envelope(BaseModel):
    """Every success: ``status`` true, ``code`` the HTTP status, a sentence, the data (one of
    the models below, a list of them, or null)."""

    status: Literal[True] = True
    code: int = 200
    message: str
    data: Any


class Failure(BaseModel):
    """Every failure: ``status`` false, ``code`` the HTTP status, a sentence; ``error`` is the
    gateway's machine code (INVALID_PHONE_NUMBER...) and ``field`` the value at fault, which
    Velstack's clients may ignore."""

    status: Literal[False] = False
    message: str
    code: int
    error: str
    field: str | None = None


def reply(message: str, data: Any = None, *, code: int = 200) -> web.Response:
    body = Envelope(message=message, data=data, code=code)
    return web.json_response(body.model_dump(mode="json", by_alias=True), status=code)


def shown_phone(e164: str, region: str) -> str:
    """National digits for a number of ``region``, else E.164."""
    parsed = phonenumbers.parse(e164)
    if phonenumbers.region_code_for_number(parsed) != region:
        return e164
    national = phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.NATIONAL)
    return "".join(c for c in national if c.isdigit())


def laravel_time(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def credit_text(value: Decimal) -> str:
    """A balance as Velstack shows it: ``"47.00"``."""
    return f"{value:.2f}"


class Summary(BaseModel):
    message_id: UUID | None = Field(
        description="The message's id, or the batch's for more than one recipient."
    )
    type: Literal["Quick SMS", "Group SMS"]
    message: str
    sender: str | None
    total_contacts: int
    recipients: list[str] = Field(
        description="Each number sent to; empty for a group send made in the background."
    )
    credit_used: Number | None = Field(
        description="The estimated cost; null for a group send made in the background, whose "
        "messages are charged one by one."
    )
    credit_left: str


class Sent(BaseModel):
    summary: Summary


class Group(BaseModel):
    id: UUID
    name: str
    members: int

    @classmethod
    def of(cls, row: GroupRow) -> Group:
        return cls(id=row.id, name=row.name, members=row.members)


class GroupList(BaseModel):
    summary: list[Group] = Field(serialization_alias="Summary")
    collection: None = None


class Contact(BaseModel):
    id: UUID
    first_name: str | None
    last_name: str | None
    phone_number: str
    email_address: str | None
    group: str | None = Field(
        serialization_alias="Group", description="The name of its (first) group."
    )
    added_date: str

    @classmethod
    def of(cls, row: ContactRow, region: str, group_names: dict[UUID, str]) -> Contact:
        first = next((group_names[g] for g in row.group_ids if g in group_names), None)
        return cls(
            id=row.id,
            first_name=row.first_name,
            last_name=row.last_name,
            phone_number=shown_phone(row.phone, region),
            email_address=row.email,
            group=first,
            added_date=laravel_time(row.created_at),
        )


class GroupContacts(BaseModel):
    results: list[Contact]
    contacts: None = None


class SenderId(BaseModel):
    id: str = Field(description="The sender ID itself, as Velstack names it.")
    purpose: str
    status: str
    date: str
