"""Sender IDs: an account registers the names it sends from; the operator approves or rejects.

A registration starts ``pending``. The operator decides it (``approved`` or ``rejected``, with
``decided_at``, and for a rejection an optional reason); an operator may also reverse a
decision (reject an approved one, which revokes it, or approve a rejected one). Deciding the
status a sender ID already has changes nothing. An account may register a rejected sender ID
again, which makes it pending again as a new request. Only an approved alphanumeric sender ID
may be a send's ``from`` (the check is ``store.is_approved``). SQL: broker.store.sender_ids.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from broker.errors import Conflict, InputError, NotFound
from broker.phone import check_sender
from broker.status import SenderIdStatus
from broker.store import Db
from broker.store import sender_ids as store
from broker.text import has_unstorable

SenderIdRow = store.SenderIdRow

MAX_REASON = 500
MAX_PURPOSE = 500


def parse_sender_id(raw: Any) -> str:
    """3–11 letters, digits, spaces or ``. _ & -`` (not only spaces), or a number of 3–15
    digits with an optional ``+``: the rule a send's ``from`` follows (broker.phone)."""
    try:
        sender = check_sender(raw)
    except InputError:
        sender = None
    if sender is None:
        raise InputError(
            "`sender_id` must be 3–11 letters, digits, spaces or . _ & - (e.g. CompanyName),"
            " or a number of 3–15 digits",
            code="INVALID_SENDER_ID",
            field="sender_id",
        )
    return sender


def parse_reason(raw: str | None) -> str | None:
    """An operator's reason for a rejection: blank means none."""
    if raw is None or not raw.strip():
        return None
    reason = raw.strip()
    if len(reason) > MAX_REASON or has_unstorable(reason):
        raise InputError(
            f"the reason must be at most {MAX_REASON} storable characters", field="reason"
        )
    return reason


async def register(db: Db, account_id: UUID, sender_id: str, purpose: str) -> SenderIdRow:
    """A pending registration; Conflict when the account has it pending or approved."""
    row = await store.register(db, account_id, sender_id, purpose)
    if row is None:
        status = await store.status_of(db, account_id, sender_id)
        raise Conflict(
            f"sender ID {sender_id!r} is already registered for this account"
            f" (status: {status or 'pending'})",
            code="SENDER_ID_EXISTS",
        )
    return row


async def page(
    db: Db,
    account_id: UUID,
    *,
    status: SenderIdStatus | None,
    after: tuple[datetime, UUID] | None,
    limit: int,
) -> list[SenderIdRow]:
    return await store.page(
        db, account_id, status=None if status is None else status.value, after=after, limit=limit
    )


async def get(db: Db, account_id: UUID, sender_id_id: UUID) -> SenderIdRow:
    row = await store.get(db, account_id, sender_id_id)
    if row is None:
        raise not_found(sender_id_id)
    return row


async def withdraw(db: Db, account_id: UUID, sender_id_id: UUID) -> None:
    """The account withdraws a sender ID (any status): it can no longer be sent from."""
    if not await store.delete(db, account_id, sender_id_id):
        raise not_found(sender_id_id)


async def operator_list(
    db: Db, *, status: SenderIdStatus | None, account_id: UUID | None, limit: int
) -> list[SenderIdRow]:
    return await store.all_accounts(
        db,
        status=None if status is None else status.value,
        account_id=account_id,
        limit=limit,
    )


async def decide(
    db: Db, sender_id_id: UUID, status: SenderIdStatus, reason: str | None = None
) -> SenderIdRow:
    """Approve or reject (``reason`` only with a rejection); already so: a no-op success."""
    if status is SenderIdStatus.PENDING:
        raise InputError("a decision approves or rejects", field="status")
    reason = parse_reason(reason) if status is SenderIdStatus.REJECTED else None
    row = await store.decide(db, sender_id_id, status.value, reason)
    if row is None:
        row = await store.get_any(db, sender_id_id)
        if row is None:
            raise not_found(sender_id_id)
    return row


def not_found(sender_id_id: UUID) -> NotFound:
    return NotFound(f"sender ID {sender_id_id} not found")
