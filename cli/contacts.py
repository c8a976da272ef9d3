"""Operator command for contacts: import a CSV file into an account, as the API route does."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
from tqdm import tqdm

from broker import contact_import
from broker.errors import InputError
from cli.common import account_id, emit, fail, json_flag, uuid_argument, with_db

group_id = uuid_argument("a group id")
READ_BYTES = 256 * 1024


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    contacts = sub.add_parser("contacts", help="an account's contacts").add_subparsers(
        dest="action", required=True
    )
    p = contacts.add_parser(
        "import",
        help="import contacts from a CSV file (header row; phone required)",
        description="Create or update the account's contacts from a CSV file, as"
        " POST /v1/contacts/import does: rows that fail are listed with their row number"
        " (the header is row 1) and never stop the others. A progress bar shows on a terminal.",
    )
    p.add_argument("account", type=account_id, help="the account's id")
    p.add_argument("file", type=Path, help="the CSV file")
    p.add_argument("--group", type=group_id, default=None, help="a group every contact joins")
    json_flag(p)
    p.set_defaults(func=cmd_contacts_import)


async def _chunks(path: Path) -> AsyncIterator[bytes]:
    """The file a piece at a time (read off the event loop), with a progress bar by bytes.

    The bar starts with the first read, so a refusal before it (an unknown group) prints
    its one error line alone."""
    with (
        await asyncio.to_thread(path.open, "rb") as file,
        tqdm(
            total=path.stat().st_size,
            unit="B",
            unit_scale=True,
            desc="import",
            file=sys.stderr,
            disable=None,  # only on a terminal
        ) as bar,
    ):
        while chunk := await asyncio.to_thread(file.read, READ_BYTES):
            bar.update(len(chunk))
            yield chunk


def _payload(result: contact_import.ImportResult) -> dict[str, Any]:
    return {
        "created": result.created,
        "updated": result.updated,
        "failed": result.failed,
        "errors": [{"row": e.row, "field": e.field, "message": e.message} for e in result.errors],
        "errors_truncated": result.errors_truncated,
    }


def _text(result: contact_import.ImportResult) -> str:
    lines = [f"created {result.created}, updated {result.updated}, failed {result.failed}"]
    for e in result.errors:
        where = f"{e.field}: " if e.field is not None else ""
        lines.append(f"row {e.row}  {where}{e.message}")
    if result.errors_truncated:
        lines.append(f"(only the first {len(result.errors)} errors are listed)")
    return "\n".join(lines)


def cmd_contacts_import(args: argparse.Namespace) -> int:
    path: Path = args.file
    if not path.is_file():
        problem = "not a file" if path.exists() else "no such file"
        return fail(InputError(f"{path}: {problem}", field="file"), args.json)

    async def work(conn: asyncpg.Connection) -> contact_import.ImportResult:
        region = await contact_import.account_region(conn, args.account)
        try:
            return await contact_import.import_csv(
                conn, args.account, region, _chunks(path), group_id=args.group
            )
        except OSError as exc:
            raise InputError(f"{path}: {exc.strerror or exc}", field="file") from exc

    def done(result: contact_import.ImportResult) -> None:
        emit(args.json, _payload(result), _text(result))

    return with_db(args.json, work, done)
