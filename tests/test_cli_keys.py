"""`smsbroker key list|revoke` as an operator runs them: real subprocesses on a real database."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import asyncpg

SMSBROKER = str(Path(sys.executable).with_name("smsbroker"))


def run(pg_dsn: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DATABASE_URL": pg_dsn}
    return subprocess.run(
        [SMSBROKER, *args], env=env, capture_output=True, text=True, timeout=60, check=False
    )


def ok(pg_dsn: str, *args: str) -> dict[str, object]:
    done = run(pg_dsn, *args)
    assert done.returncode == 0, done.stderr
    found: dict[str, object] = json.loads(done.stdout)
    return found


def _db(pg_dsn: str, sql: str, *args: object) -> object:
    async def go() -> object:
        conn = await asyncpg.connect(pg_dsn)
        try:
            return await conn.fetchval(sql, *args)
        finally:
            await conn.close()

    return asyncio.run(go())


def test_key_list_and_revoke(pg_dsn: str) -> None:
    account = str(ok(pg_dsn, "account", "create", "--name", "Keys Co", "--json")["id"])
    first = ok(pg_dsn, "key", "create", account, "--name", "first", "--json")
    second = ok(
        pg_dsn,
        "key",
        "create",
        account,
        "--name",
        "second",
        "--channels",
        "sms,whatsapp",
        "--rate-limit",
        "120",
        "--expires-days",
        "30",
        "--json",
    )
    listed = run(pg_dsn, "key", "list", account, "--json")
    assert listed.returncode == 0, listed.stderr
    for made in (first, second):
        assert str(made["key"]) not in listed.stdout
    data = json.loads(listed.stdout)["data"]
    assert [k["name"] for k in data] == ["second", "first"]  # newest first
    newest = data[0]
    assert newest["id"] == second["id"] and newest["prefix"] == second["prefix"]
    assert newest["channels"] == ["sms", "whatsapp"] and newest["rate_limit_per_minute"] == 120
    assert newest["expires_at"] and newest["last_used_at"] is None
    assert newest["status"] == "active" and newest["revoked_at"] is None
    assert "key_hash" not in newest and "secret" not in newest

    table = run(pg_dsn, "key", "list", account)
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    assert lines[0].split()[:3] == ["id", "name", "prefix"]
    assert str(second["prefix"]) in lines[1] and "sms,whatsapp" in lines[1]
    assert "120" in lines[1] and "active" in lines[1] and "never" in lines[1]
    assert str(first["key"]) not in table.stdout and str(second["key"]) not in table.stdout

    revoked = ok(pg_dsn, "key", "revoke", str(first["id"]), "--json")
    assert revoked["status"] == "revoked" and revoked["revoked_at"]
    assert str(first["key"]) not in json.dumps(revoked)
    stored = _db(
        pg_dsn, "SELECT revoked_at FROM api_keys WHERE id = $1", uuid.UUID(str(first["id"]))
    )
    assert stored is not None
    data = json.loads(run(pg_dsn, "key", "list", account, "--json").stdout)["data"]
    assert {k["name"]: k["status"] for k in data} == {"first": "revoked", "second": "active"}
    text = run(pg_dsn, "key", "revoke", str(second["id"]))
    assert text.returncode == 0 and str(second["id"]) in text.stdout


def test_unknown_or_malformed_ids_fail_clearly(pg_dsn: str) -> None:
    missing = str(uuid.uuid4())
    done = run(pg_dsn, "key", "revoke", missing)
    assert done.returncode == 1
    assert "not found" in done.stderr and missing in done.stderr
    done = run(pg_dsn, "key", "revoke", missing, "--json")
    assert done.returncode == 1
    assert json.loads(done.stderr)["error"]["code"] == "NOT_FOUND"
    done = run(pg_dsn, "key", "revoke", "nope")
    assert done.returncode == 2 and "not a key id" in done.stderr
    done = run(pg_dsn, "key", "list", missing)
    assert done.returncode == 1 and "not found" in done.stderr
    account = str(ok(pg_dsn, "account", "create", "--name", "Keyless", "--json")["id"])
    done = run(pg_dsn, "key", "list", account)
    assert done.returncode == 0 and done.stdout.strip() == "no keys"
    assert json.loads(run(pg_dsn, "key", "list", account, "--json").stdout) == {"data": []}
