"""Sends to contacts and groups: who they reach, and the text each recipient gets.

The API makes a small send's messages in the request; a send to more recipients than a
request may name is kept as a GroupSend and expanded by the expand worker. Both, and the dry
run, walk the recipients the same way (``recipients``: the send's own numbers, then the
groups' members a page at a time in phone order, each number once) and personalize the same
way (``Personalizer``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict

from broker.errors import InputError
from broker.store import Db
from broker.store.audiences import Member, members_after, values_by_phone
from broker.store.send_checks import opted_out_among
from broker.templates import MissingVariable, Template, contact_values

#: Why a recipient's message is refused when it is made (see IngestRequest.refused).
MISSING_VARIABLE = "MISSING_VARIABLE"
BODY_TOO_LONG = "BODY_TOO_LONG"


class GroupSend(BaseModel):
    """A send to groups as accepted, kept with its expansion (batch_expansions.send)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    v: int = 1
    channel: Literal["sms", "whatsapp"] = "sms"
    #: The text for everyone, or None when each recipient's is rendered from ``template``.
    body: str | None = None
    #: The template's body as it was when the send was accepted.
    template: str | None = None
    variables: dict[str, str] = {}
    sender: str | None = None
    client_ref: str | None = None
    callback_url: str | None = None
    accepted_at: datetime
    scheduled_at: datetime | None = None
    expires_at: datetime | None = None
    max_body_chars: int = 1600


@dataclass(frozen=True, slots=True)
class Personalizer:
    """The text of each recipient of one send: the same ``body`` for all, or the template
    rendered with the recipient's contact values, the send's ``variables`` filling gaps."""

    body: str | None
    template: Template | None
    variables: dict[str, str]
    max_chars: int

    @classmethod
    def of(cls, send: GroupSend) -> Personalizer:
        template = Template(send.template) if send.template is not None else None
        return cls(send.body, template, send.variables, send.max_body_chars)

    @property
    def fallback(self) -> str:
        """What a message stores when its own text could not be made (it fails at once)."""
        if self.body is not None:
            return self.body
        assert self.template is not None
        return self.template.body

    def text(self, phone: str, values: dict[str, str]) -> str:
        """The recipient's text; MissingVariable, or InputError BODY_TOO_LONG."""
        if self.template is None:
            assert self.body is not None
            return self.body
        text = self.template.render(values, self.variables, phone=phone)
        if len(text) > self.max_chars:
            raise TooLong(phone, len(text), self.max_chars)
        return text

    def made(self, phone: str, values: dict[str, str]) -> tuple[str, str | None]:
        """(text, None), or (fallback, the code the message fails with)."""
        try:
            return self.text(phone, values), None
        except MissingVariable:
            return self.fallback, MISSING_VARIABLE
        except TooLong:
            return self.fallback, BODY_TOO_LONG


class TooLong(InputError):
    def __init__(self, phone: str, length: int, limit: int) -> None:
        super().__init__(
            f"the text for {phone} has {length} characters once rendered; the maximum is {limit}",
            code=BODY_TOO_LONG,
            field="template_id",
        )


@dataclass(frozen=True, slots=True)
class Page:
    members: list[Member]
    #: Where the next page starts: "" after the send's own numbers, else the last phone.
    position: str
    last: bool


async def numbers_as_members(db: Db, account_id: UUID, numbers: Sequence[str]) -> list[Member]:
    """The send's own numbers, with the values of those that are contacts."""
    if not numbers:
        return []
    values = await values_by_phone(db, account_id, numbers)
    refused = await opted_out_among(db, account_id, numbers)
    return [Member(n, values.get(n) or contact_values(n), n in refused) for n in numbers]


async def recipients(
    db: Db,
    account_id: UUID,
    group_ids: Sequence[UUID],
    numbers: Sequence[str],
    *,
    position: str | None = None,
    page_size: int = 1000,
) -> AsyncIterator[Page]:
    """Every recipient once, a page at a time, from ``position`` (None: the beginning)."""
    if position is None:
        position = ""
        yield Page(await numbers_as_members(db, account_id, numbers), position, last=not group_ids)
    if not group_ids:
        return
    while True:
        members = await members_after(
            db, account_id, group_ids, position, exclude=numbers, limit=page_size
        )
        if members:
            position = members[-1].phone
        last = len(members) < page_size
        yield Page(members, position, last)
        if last:
            return
