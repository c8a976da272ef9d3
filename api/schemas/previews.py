"""The dry run of a send: what each recipient would get and what it would all cost."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from api.schemas.common import Number
from api.schemas.messages import EncodingName

#: ``ready``: would be sent and charged; the others would fail at once, uncharged.
PreviewStatus = Literal["ready", "opted_out", "no_route"]


class PreviewMessage(BaseModel):
    to: str = Field(description="E.164")
    text: str
    encoding: EncodingName
    segments: int
    cost: Number | None = Field(description="null when no route carries the number.")
    status: PreviewStatus


class SendPreview(BaseModel):
    """Nothing was sent or charged."""

    recipients: int
    segments: int = Field(description="Parts of every message that would be sent.")
    cost: Number = Field(description="What the send would be charged.")
    opted_out: int = Field(description="Recipients who opted out: their messages would fail.")
    no_route: int = Field(description="Recipients no route carries.")
    messages: list[PreviewMessage] = Field(description="The first 100 recipients.")
