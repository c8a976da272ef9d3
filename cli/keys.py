"""Operator commands for API keys: create (the secret shown once), list, revoke."""

from __future__ import annotations

import argparse
from typing import Any

from broker import accounts
from cli.admin import account_id, json_flag
from cli.common import emit, with_db


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    key = sub.add_parser("key", help="API keys").add_subparsers(dest="action", required=True)
    p = key.add_parser("create", help="create an API key; the secret is shown once")
    p.add_argument("account", type=account_id)
    p.add_argument("--name", default="")
    p.add_argument("--rate-limit", type=int, default=60, help="requests per minute (default 60)")
    p.add_argument("--channels", default="sms", help="comma-separated: sms,whatsapp")
    p.add_argument("--expires-days", type=int, default=None, help="1–365 (default: never)")
    json_flag(p)
    p.set_defaults(func=cmd_key_create)


def cmd_key_create(args: argparse.Namespace) -> int:
    channels = tuple(c.strip() for c in args.channels.split(",") if c.strip())

    def done(key: accounts.CreatedKey) -> None:
        payload: dict[str, Any] = {
            "id": key.id,
            "key": key.secret,
            "prefix": key.prefix,
            "expires_at": key.expires_at.isoformat() if key.expires_at else None,
        }
        emit(args.json, payload, key.secret)

    return with_db(
        args.json,
        lambda conn: accounts.create_key(
            conn,
            args.account,
            name=args.name,
            rate_limit=args.rate_limit,
            channels=channels,
            expires_days=args.expires_days,
        ),
        done,
    )
