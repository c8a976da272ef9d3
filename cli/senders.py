"""Operator commands for sender IDs: list the requests, approve or reject them."""

from __future__ import annotations

import argparse
from typing import Any

from broker import sender_ids
from broker.errors import InputError
from broker.resources import iso
from broker.status import SenderIdStatus
from cli.common import account_id, emit, fail, json_flag, uuid_argument, with_db

sender_id_id = uuid_argument("a sender ID id")


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    sender = sub.add_parser("sender", help="sender IDs accounts registered").add_subparsers(
        dest="action", required=True
    )
    p = sender.add_parser("list", help="sender IDs of every account, oldest first")
    p.add_argument("--status", choices=[s.value for s in SenderIdStatus], default=None)
    p.add_argument("--account", type=account_id, default=None, help="one account's only")
    p.add_argument("--limit", type=int, default=200, help="at most this many (default 200)")
    json_flag(p)
    p.set_defaults(func=cmd_sender_list)

    p = sender.add_parser("approve", help="approve a sender ID: the account may send from it")
    p.add_argument("id", type=sender_id_id)
    json_flag(p)
    p.set_defaults(func=cmd_sender_decide, decision=SenderIdStatus.APPROVED)

    p = sender.add_parser("reject", help="reject a sender ID (revokes an approved one)")
    p.add_argument("id", type=sender_id_id)
    p.add_argument("--reason", default=None, help="shown to the account (at most 500 chars)")
    json_flag(p)
    p.set_defaults(func=cmd_sender_decide, decision=SenderIdStatus.REJECTED)


def _payload(row: sender_ids.SenderIdRow) -> dict[str, Any]:
    return {
        "id": str(row.id),
        "account_id": str(row.account_id),
        "sender_id": row.sender_id,
        "purpose": row.purpose,
        "status": row.status,
        "reason": row.reason,
        "created_at": iso(row.created_at),
        "decided_at": iso(row.decided_at),
    }


def _line(row: sender_ids.SenderIdRow) -> str:
    reason = f"  reason: {row.reason}" if row.reason else ""
    return (
        f"{row.id}  {row.account_id}  {row.sender_id!r:<13}  {row.status:<8}"
        f"  {iso(row.created_at)}  {row.purpose}{reason}"
    )


def cmd_sender_list(args: argparse.Namespace) -> int:
    status = SenderIdStatus(args.status) if args.status else None

    def done(rows: list[sender_ids.SenderIdRow]) -> None:
        text = "\n".join(_line(r) for r in rows) if rows else "no sender IDs"
        emit(args.json, {"data": [_payload(r) for r in rows]}, text)

    if not 1 <= args.limit <= 10_000:
        return fail(InputError("--limit must be 1–10000", field="limit"), args.json)
    return with_db(
        args.json,
        lambda conn: sender_ids.operator_list(
            conn, status=status, account_id=args.account, limit=args.limit
        ),
        done,
    )


def cmd_sender_decide(args: argparse.Namespace) -> int:
    decision: SenderIdStatus = args.decision
    reason = getattr(args, "reason", None)

    def done(row: sender_ids.SenderIdRow) -> None:
        emit(args.json, _payload(row), f"{row.sender_id!r} ({row.id}) is {row.status}")

    return with_db(
        args.json,
        lambda conn: sender_ids.decide(conn, args.id, decision, reason),
        done,
    )
