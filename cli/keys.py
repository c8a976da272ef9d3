"""Operator commands for API keys: create (the secret shown once), list, revoke."""

from __future__ import annotations

import argparse
from datetime import datetime
from typing import Any

from broker import accounts, api_keys
from cli.common import account_id, emit, json_flag, uuid_argument, with_db


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
    p = key.add_parser("list", help="an account's keys, newest first (never their secrets)")
    p.add_argument("account", type=account_id)
    json_flag(p)
    p.set_defaults(func=cmd_key_list)
    p = key.add_parser("revoke", help="revoke a key: it is refused from then on")
    p.add_argument("key_id", type=key_id)
    json_flag(p)
    p.set_defaults(func=cmd_key_revoke)


key_id = uuid_argument("a key id")


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


def _shown(key: api_keys.KeyView) -> dict[str, Any]:
    """What the operator sees of a key: its settings and use, never the secret."""
    return {
        "id": key.id,
        "name": key.name,
        "prefix": key.prefix,
        "channels": key.channels,
        "rate_limit_per_minute": key.rate_limit_per_minute,
        "expires_at": key.expires_at.isoformat() if key.expires_at else None,
        "last_used_at": key.last_used_at.isoformat() if key.last_used_at else None,
        "revoked_at": key.revoked_at.isoformat() if key.revoked_at else None,
        "status": key.status.value,
        "created_at": key.created_at.isoformat(),
    }


_COLUMNS = ("id", "name", "prefix", "channels", "rate/min", "expires", "last used", "status")


def _row(key: api_keys.KeyView) -> tuple[str, ...]:
    def when(at: datetime | None, never: str) -> str:
        return at.strftime("%Y-%m-%d %H:%M") if at else never

    return (
        str(key.id),
        key.name or "-",
        key.prefix + "…",
        ",".join(key.channels),
        str(key.rate_limit_per_minute),
        when(key.expires_at, "never"),
        when(key.last_used_at, "never"),
        key.status.value,
    )


def _table(rows: list[tuple[str, ...]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows)
    return "\n".join(line.rstrip() for line in lines)


def cmd_key_list(args: argparse.Namespace) -> int:
    def done(found: list[api_keys.KeyView]) -> None:
        text = _table([_COLUMNS, *(_row(k) for k in found)]) if found else "no keys"
        emit(args.json, {"data": [_shown(k) for k in found]}, text)

    return with_db(args.json, lambda conn: api_keys.list_all(conn, args.account), done)


def cmd_key_revoke(args: argparse.Namespace) -> int:
    def done(key: api_keys.KeyView) -> None:
        emit(args.json, _shown(key), f"revoked {key.id} ({key.prefix}…)")

    return with_db(args.json, lambda conn: api_keys.revoke(conn, None, args.key_id), done)
