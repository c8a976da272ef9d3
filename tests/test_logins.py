"""Logins for the username/password dialects: scrypt hashes, the operator's command, and a login
that stands for its own API key (revoking the key shuts the login out)."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from decimal import Decimal
from pathlib import Path

import asyncpg
import pytest

from broker import accounts, logins
from broker.config import Settings
from broker.errors import Conflict, InputError
from broker.store import logins as store

SMSBROKER = str(Path(sys.executable).with_name("smsbroker"))


@pytest.mark.parametrize("password", ["correct horse", "é" * 8, "x" * 200])
def test_a_hash_verifies_its_password_only(password: str) -> None:
    stored = logins.hash_password(password)
    assert stored.startswith("scrypt$") and password not in stored
    assert logins.password_matches(password, stored)
    assert not logins.password_matches(password + "!", stored)
    assert logins.hash_password(password) != stored, "a fresh salt each time"


@pytest.mark.parametrize("stored", ["", "md5$x$y", "scrypt$!!$??", "scrypt$a"])
def test_a_malformed_hash_never_verifies(stored: str) -> None:
    assert not logins.password_matches("anything", stored)


@pytest.mark.parametrize(
    ("username", "password", "field"),
    [
        ("ab", "long enough", "username"),
        ("a b c", "long enough", "username"),
        ("user1", "short", "password"),
        ("user1", "x" * 201, "password"),
    ],
)
def test_bad_credentials_are_refused(username: str, password: str, field: str) -> None:
    with pytest.raises(InputError) as err:
        logins.check_credentials(username, password)
    assert err.value.field == field


async def _account(pool: asyncpg.Pool) -> uuid.UUID:
    async with pool.acquire() as conn:
        found: uuid.UUID = await accounts.create_account(
            conn, f"login-{uuid.uuid4().hex[:6]}", Decimal(5), "US"
        )
        return found


async def test_a_login_is_its_own_key_and_a_username_is_one_account_s(
    pool: asyncpg.Pool,
) -> None:
    alice, bob = await _account(pool), await _account(pool)
    name = f"alice-{uuid.uuid4().hex[:6]}"
    async with pool.acquire() as conn:
        key_id = await logins.set_login(conn, alice, name, "first password")
        again = await logins.set_login(conn, alice, name, "second password")
        with pytest.raises(Conflict):
            await logins.set_login(conn, bob, name, "bobs password")
    assert again == key_id, "a new password keeps the login's key"
    row = await store.owner_by_login(pool, name)
    assert row is not None and row["account_id"] == alice and row["id"] == key_id
    assert logins.password_matches("second password", row["password_hash"])
    assert await pool.fetchval("SELECT count(*) FROM api_keys WHERE account_id = $1", bob) == 0


def test_the_operator_sets_a_login_with_the_password_on_stdin(settings: Settings) -> None:
    import asyncio

    async def make() -> uuid.UUID:
        pool = await asyncpg.create_pool(settings.database_url, min_size=1, max_size=1)
        try:
            return await _account(pool)
        finally:
            await pool.close()

    account = asyncio.run(make())
    env = {**os.environ, "DATABASE_URL": settings.database_url}
    name = f"op-{uuid.uuid4().hex[:6]}"
    done = subprocess.run(
        [SMSBROKER, "account", "login", str(account), "--username", name, "--json"],
        input="a long password\n",
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "a long password" not in done.stdout + done.stderr
    short = subprocess.run(
        [SMSBROKER, "account", "login", str(account), "--username", name + "x"],
        input="short\n",
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert short.returncode != 0 and "password" in short.stderr
