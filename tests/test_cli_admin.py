"""Operator commands as an operator runs them: real subprocesses on a real database."""

from __future__ import annotations

import asyncio
import json
import os
import shlex
import subprocess
import sys
import uuid
from pathlib import Path

import asyncpg
import pytest
import yaml

from broker.migrate import migrate
from cli.main import build_parser

ROOT = Path(__file__).resolve().parent.parent
SMSBROKER = str(Path(sys.executable).with_name("smsbroker"))


def run(pg_dsn: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DATABASE_URL": pg_dsn}
    return subprocess.run(
        [SMSBROKER, *args], env=env, capture_output=True, text=True, timeout=60, check=False
    )


def test_account_key_connector_route_number(pg_dsn: str) -> None:
    created = run(
        pg_dsn,
        "account",
        "create",
        "--name",
        "Cli Co",
        "--credits",
        "12.5",
        "--region",
        "gh",
        "--json",
    )
    assert created.returncode == 0, created.stderr
    account = json.loads(created.stdout)["id"]

    credited = run(pg_dsn, "account", "credit", account, "7.5", "--json")
    assert json.loads(credited.stdout)["balance"] == 20
    books = json.loads(run(pg_dsn, "account", "show", account, "--json").stdout)
    assert (books["balance"], books["ledger_sum"], books["balanced"]) == (20, 20, True)

    key = run(
        pg_dsn, "key", "create", account, "--rate-limit", "120", "--expires-days", "30", "--json"
    )
    secret = json.loads(key.stdout)
    assert secret["key"].startswith("sk_live_") and secret["expires_at"]

    conn = run(
        pg_dsn,
        "connector",
        "add",
        "cli-carrier",
        "--host",
        "127.0.0.1",
        "--port",
        "2775",
        "--system-id",
        "acme",
        "--password",
        "pw",
        "--binds",
        "2",
        "--json",
    )
    assert conn.returncode == 0, conn.stderr
    route = run(
        pg_dsn,
        "route",
        "add",
        "--prefix",
        "+99912",
        "--connector",
        "cli-carrier",
        "--price",
        "0.5",
        "--json",
    )
    assert json.loads(route.stdout)["price"] == 0.5
    number = run(pg_dsn, "number", "add", account, "+233200000001", "--keyword", "info", "--json")
    assert json.loads(number.stdout)["keyword"] == "INFO"

    async def check() -> None:
        db = await asyncpg.connect(pg_dsn)
        try:
            stored = await db.fetchval(
                "SELECT key_hash FROM api_keys WHERE account_id = $1",
                uuid.UUID(account),
            )
            assert secret["key"].encode() not in bytes(stored)  # stored hashed, never in clear
            assert (
                await db.fetchval(
                    "SELECT sum(amount) FROM ledger WHERE account_id = $1::uuid", account
                )
                == 20
            )
        finally:
            await db.close()

    asyncio.run(check())


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ("account create --name X --region ZZ", "unknown region"),
        ("account create --name X --credits -5", "must not be negative"),
        ("account create --name X --credits abc", "must be a number"),
        ("account credit 00000000-0000-0000-0000-000000000000 5", "not found"),
        ("key create 00000000-0000-0000-0000-000000000000 --expires-days 0", "1–365"),
        ("key create 00000000-0000-0000-0000-000000000000 --channels fax", "channels"),
        ("route add --prefix 12ab --connector x", "prefix must be"),
        ("route add --prefix 1 --connector no-such", "not found"),
        ("connector add Bad!Name --host h --port 1 --system-id s --password p", "invalid"),
        ("connector add okname --host h --port 70000 --system-id s --password p", "invalid"),
        ("number add 00000000-0000-0000-0000-000000000000 abc", "number must be"),
    ],
)
def test_bad_input_is_refused_clearly(pg_dsn: str, args: str, message: str) -> None:
    result = run(pg_dsn, *shlex.split(args))
    assert result.returncode in (1, 2)
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_bad_json_error_is_machine_readable(pg_dsn: str) -> None:
    result = run(pg_dsn, "account", "create", "--name", "X", "--region", "ZZ", "--json")
    assert result.returncode == 2
    assert json.loads(result.stderr)["error"]["code"] == "INVALID_INPUT"


def test_unreachable_database_is_reported(pg_dsn: str) -> None:
    result = run("postgresql://postgres@127.0.0.1:1/none", "account", "create", "--name", "X")
    assert result.returncode == 3
    assert "unreachable" in result.stderr


def test_every_command_has_help() -> None:
    for args in (
        ["--help"],
        ["migrate", "--help"],
        ["worker", "--help"],
        ["dev", "--help"],
        ["account", "create", "--help"],
        ["connector", "add", "--help"],
    ):
        result = subprocess.run([SMSBROKER, *args], capture_output=True, text=True, check=False)
        assert result.returncode == 0 and "usage:" in result.stdout


async def test_migrate_twice_and_concurrently(pg_dsn: str) -> None:
    # The session database is migrated already: two more concurrent runs apply nothing.
    assert await asyncio.gather(migrate(pg_dsn), migrate(pg_dsn)) == [[], []]
    result = await asyncio.to_thread(run, pg_dsn, "migrate", "--json")
    assert json.loads(result.stdout) == {"applied": []}


def test_compose_services_run_real_commands() -> None:
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text())
    services = compose["services"]
    assert {"postgres", "rabbitmq", "api", "worker", "smsc-sim", "migrate"} <= set(services)
    parser = build_parser()
    for name, service in services.items():
        command = service.get("command")
        if command is None:
            continue
        assert command[0] == "smsbroker", name
        parser.parse_args(command[1:])  # exits (fails the test) on an unknown command or option
