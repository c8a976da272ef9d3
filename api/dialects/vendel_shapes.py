"""Vendel's answers as models, and its message statuses read from ours."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel

from broker.status import MessageStatus

VendelStatus = Literal["pending", "assigned", "sending", "sent", "delivered", "failed"]

#: Ours → Vendel's. Vendel's "assigned" (a device took it) is our "queued": its route and
#: connector are known and it waits for that connector's bind; "pending" (no device yet) is a
#: scheduled message. Vendel has no end between failed and delivered, so undelivered and
#: canceled read as failed.
STATUSES: dict[MessageStatus, VendelStatus] = {
    MessageStatus.SCHEDULED: "pending",
    MessageStatus.QUEUED: "assigned",
    MessageStatus.SENDING: "sending",
    MessageStatus.SENT: "sent",
    MessageStatus.DELIVERED: "delivered",
    MessageStatus.UNDELIVERED: "failed",
    MessageStatus.FAILED: "failed",
    MessageStatus.CANCELED: "failed",
}


def vendel_status(status: str) -> VendelStatus:
    return STATUSES[MessageStatus(status)]


class SendAnswer(BaseModel):
    """POST /api/sms/send and /api/sms/send-template (batch_id only for two or more)."""

    batch_id: str | None = None
    message_ids: list[str]
    recipients_count: int
    status: Literal["accepted"] = "accepted"


class CodedError(BaseModel):
    """Vendel's errors with a code: invalid_phone_number, unauthorized, quota_exceeded..."""

    error: str
    message: str


class PlainError(BaseModel):
    """Vendel's template errors: a sentence and nothing else."""

    message: str


class TokenAnswer(BaseModel):
    """POST /api/auth/token: a JWT for ``Authorization: Bearer``."""

    token: str
    token_type: Literal["Bearer"] = "Bearer"
    expires_in: int


class MessageRecord(BaseModel):
    """GET /api/collections/sms_messages/records/{id}: a sent message as Vendel's record
    API shows it, with Vendel's status name."""

    id: str
    collectionName: Literal["sms_messages"] = "sms_messages"  # noqa: N815 - Vendel's name
    to: str
    status: VendelStatus
    batch_id: str
    message_type: Literal["outgoing"] = "outgoing"
    error_message: str
    created: str
    updated: str
