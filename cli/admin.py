"""Operator commands: migrate, account, number (connectors and routes: cli.connectors)."""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any

from broker import accounts, logins
from broker.config import Settings
from broker.errors import BrokerError, InputError
from broker.migrate import migrate
from broker.store.accounts import AccountRow
from cli.common import EXIT_OK, account_id, emit, fail, json_flag, with_db


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("migrate", help="apply the sql/ migrations (idempotent)")
    json_flag(p)
    p.set_defaults(func=cmd_migrate)

    acc = sub.add_parser("account", help="create accounts and add credits").add_subparsers(
        dest="action", required=True
    )
    p = acc.add_parser("create", help="create an account; prints its id")
    p.add_argument("--name", required=True)
    p.add_argument("--credits", default="0", help="opening balance (default 0)")
    p.add_argument("--region", default="US", help="default region for local numbers, e.g. GH")
    json_flag(p)
    p.set_defaults(func=cmd_account_create)
    p = acc.add_parser("show", help="an account's balance, checked against its ledger")
    p.add_argument("account", type=account_id)
    json_flag(p)
    p.set_defaults(func=cmd_account_show)
    p = acc.add_parser(
        "update",
        help="change an account's plan, currency, default sender or HELP reply",
        description="Change the given settings (at least one). An empty --default-sender or"
        " --help-text clears it; an alphanumeric default sender must be a sender ID approved"
        " for the account, a number of 3-15 digits needs no approval.",
    )
    p.add_argument("account", type=account_id)
    p.add_argument("--plan", help="the account's plan name (1-50 characters)")
    p.add_argument("--currency", help="what its balance counts, e.g. credits or USD (1-20)")
    p.add_argument("--default-sender", help="the `from` of sends without one ('' clears)")
    p.add_argument("--help-text", help="the reply to an inbound HELP, 1-918 chars ('' clears)")
    json_flag(p)
    p.set_defaults(func=cmd_account_update)
    p = acc.add_parser(
        "login",
        help="give an account a username and password (read from stdin)",
        description="For provider dialects that authenticate with a username and password"
        " (smsapi v1, vavasms). The login stands for an API key of its own, made the first"
        " time: revoke that key (smsbroker key revoke) to shut the login out. Run again to"
        " change the password.",
    )
    p.add_argument("account", type=account_id)
    p.add_argument("--username", required=True, help="3-64 letters, digits or . _ @ + -")
    json_flag(p)
    p.set_defaults(func=cmd_account_login)
    p = acc.add_parser("credit", help="add (or, negative, remove) credits")
    p.add_argument("account", type=account_id)
    p.add_argument("amount")
    json_flag(p)
    p.set_defaults(func=cmd_account_credit)

    num = sub.add_parser("number", help="inbound numbers").add_subparsers(
        dest="action", required=True
    )
    p = num.add_parser("add", help="give an account a long number, short code or keyword")
    p.add_argument("account", type=account_id)
    p.add_argument("number")
    p.add_argument("--keyword", default="")
    json_flag(p)
    p.set_defaults(func=cmd_number_add)


def cmd_migrate(args: argparse.Namespace) -> int:
    try:
        applied = asyncio.run(migrate(Settings.from_env().database_url))
    except BrokerError as exc:
        return fail(exc, args.json)
    except OSError as exc:
        return fail(InputError(f"PostgreSQL unreachable: {exc}"), args.json)
    emit(args.json, {"applied": applied}, f"applied: {', '.join(applied) or 'nothing to do'}")
    return EXIT_OK


def cmd_account_create(args: argparse.Namespace) -> int:
    try:
        credits = accounts.parse_amount(args.credits, field="credits", allow_negative=False)
    except InputError as exc:
        return fail(exc, args.json)
    return with_db(
        args.json,
        lambda conn: accounts.create_account(conn, args.name, credits, args.region),
        lambda account_id: emit(args.json, {"id": account_id}, str(account_id)),
    )


def cmd_account_show(args: argparse.Namespace) -> int:
    def done(books: dict[str, Any]) -> None:
        verdict = "balanced" if books["balanced"] else "DOES NOT MATCH the ledger"
        emit(
            args.json,
            books,
            f"{books['name']} ({books['region']}, {books['status']}, plan {books['plan']}):"
            f" balance {books['balance']} {books['currency']},"
            f" ledger sum {books['ledger_sum']}: {verdict}",
        )

    return with_db(args.json, lambda conn: accounts.account_books(conn, args.account), done)


def cmd_account_update(args: argparse.Namespace) -> int:
    changes: dict[str, Any] = {}
    for name in ("plan", "currency"):
        if getattr(args, name) is not None:
            changes[name] = getattr(args, name)
    for name in ("default_sender", "help_text"):
        value = getattr(args, name)
        if value is not None:
            changes[name] = value or None  # '' clears it
    if not changes:
        return fail(
            InputError("give at least one of --plan, --currency, --default-sender, --help-text"),
            args.json,
        )

    def done(row: AccountRow) -> None:
        shown = {
            "id": row.id,
            "name": row.name,
            "plan": row.plan,
            "currency": row.currency,
            "default_sender": row.default_sender,
            "help_text": row.help_text,
        }
        emit(
            args.json,
            shown,
            f"{row.name}: plan {row.plan}, currency {row.currency},"
            f" default sender {row.default_sender or '(none)'},"
            f" help text {'set' if row.help_text else '(none)'}",
        )

    return with_db(
        args.json, lambda conn: accounts.update_account(conn, args.account, **changes), done
    )


def cmd_account_login(args: argparse.Namespace) -> int:
    password = sys.stdin.readline().rstrip("\r\n")
    return with_db(
        args.json,
        lambda conn: logins.set_login(conn, args.account, args.username, password),
        lambda key_id: emit(
            args.json,
            {"account_id": args.account, "username": args.username, "key_id": key_id},
            f"login {args.username} set (its API key: {key_id})",
        ),
    )


def cmd_account_credit(args: argparse.Namespace) -> int:
    try:
        amount = accounts.parse_amount(args.amount, field="amount", allow_negative=True)
    except InputError as exc:
        return fail(exc, args.json)
    return with_db(
        args.json,
        lambda conn: accounts.credit_account(conn, args.account, amount),
        lambda balance: emit(
            args.json, {"id": args.account, "balance": balance}, f"balance: {balance}"
        ),
    )


def cmd_number_add(args: argparse.Namespace) -> int:
    return with_db(
        args.json,
        lambda conn: accounts.add_number(conn, args.account, args.number, args.keyword),
        lambda _: emit(
            args.json,
            {"account": args.account, "number": args.number, "keyword": args.keyword.upper()},
            f"number {args.number} belongs to {args.account}",
        ),
    )
