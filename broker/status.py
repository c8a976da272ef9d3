"""Statuses as one vocabulary: the values the schema's CHECK constraints accept, and no other.

tests/test_status_schema.py proves each enum equals its constraint on a migrated database, so
a status written from Python can never be one PostgreSQL refuses (or one it would accept but
the code does not know).
"""

from __future__ import annotations

from enum import StrEnum


class MessageStatus(StrEnum):
    """A message's lifecycle (messages.status, ranked by the schema's status_rank())."""

    SCHEDULED = "scheduled"
    QUEUED = "queued"
    SENDING = "sending"
    SENT = "sent"
    DELIVERED = "delivered"
    UNDELIVERED = "undelivered"
    FAILED = "failed"
    CANCELED = "canceled"


class PartStatus(StrEnum):
    """One part on the wire (message_parts.status): it exists only once submitted."""

    SENT = "sent"
    DELIVERED = "delivered"
    UNDELIVERED = "undelivered"
    FAILED = "failed"


class AccountStatus(StrEnum):
    """accounts.status: a suspended account's keys are refused."""

    ACTIVE = "active"
    SUSPENDED = "suspended"


class SenderIdStatus(StrEnum):
    """sender_ids.status: registered, then approved or rejected by the operator."""

    PENDING = "pending"
    APPROVED = "approved"
    REJECTED = "rejected"


#: States a message never leaves (status_rank 4); a receipt arriving later changes nothing.
FINAL_STATUSES: frozenset[MessageStatus] = frozenset(
    {
        MessageStatus.DELIVERED,
        MessageStatus.UNDELIVERED,
        MessageStatus.FAILED,
        MessageStatus.CANCELED,
    }
)
