"""What every operator command shares: settings, a database connection, output and exit codes."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import Any, TypeVar
from uuid import UUID

import asyncpg

from broker.config import Settings
from broker.db import CONNECTION_ERRORS
from broker.errors import BrokerError, DependencyUnavailable, InputError
from broker.resources import number

T = TypeVar("T")

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_UNAVAILABLE = 0, 1, 2, 3


def _jsonable(value: Any) -> Any:
    if isinstance(value, Decimal):
        return number(value)
    return str(value)


def emit(as_json: bool, payload: dict[str, Any], text: str) -> None:
    if as_json:
        print(json.dumps(payload, default=_jsonable))
    else:
        print(text)


def fail(exc: BrokerError, as_json: bool) -> int:
    if as_json:
        print(json.dumps({"error": {"code": exc.code, "message": exc.message}}), file=sys.stderr)
    else:
        print(f"error: {exc.message}", file=sys.stderr)
    if isinstance(exc, InputError):
        return EXIT_USAGE
    if isinstance(exc, DependencyUnavailable):
        return EXIT_UNAVAILABLE
    return EXIT_FAILED


def with_db(
    as_json: bool, work: Callable[[asyncpg.Connection], Awaitable[T]], on_done: Callable[[T], None]
) -> int:
    """Run one database task; print its result or a clear error with the matching exit code."""

    async def run() -> T:
        settings = Settings.from_env()
        try:
            conn = await asyncpg.connect(settings.database_url, timeout=10)
        except CONNECTION_ERRORS as exc:
            raise DependencyUnavailable(f"PostgreSQL unreachable: {exc}") from exc
        try:
            return await work(conn)
        finally:
            await conn.close()

    try:
        result = asyncio.run(run())
    except BrokerError as exc:
        return fail(exc, as_json)
    on_done(result)
    return EXIT_OK


def uuid_argument(what: str) -> Callable[[str], UUID]:
    """An argparse ``type`` for an id: a UUID, else a usage error naming ``what`` it is."""

    def parse(raw: str) -> UUID:
        try:
            return UUID(raw)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{raw!r} is not {what} (a UUID)") from None

    return parse


account_id = uuid_argument("an account id")


def json_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="print machine-readable JSON")
