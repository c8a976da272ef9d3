"""Logins: a username and a password that stand for one of the account's API keys.

Passwords are kept as scrypt hashes (RFC 7914, n=2^14, r=8, p=1, a random salt each), checked
with a constant-time comparison, and hashed off the event loop: one check costs ~35 ms of CPU.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import os
import re
from uuid import UUID

import asyncpg

from broker import accounts
from broker.errors import Conflict, InputError
from broker.store import logins as store

_N, _R, _P, _LEN = 2**14, 8, 1, 32
USERNAME = re.compile(r"^[A-Za-z0-9._@+-]{3,64}$")
MIN_PASSWORD, MAX_PASSWORD = 8, 200


def hash_password(password: str, salt: bytes | None = None) -> str:
    salt = salt or os.urandom(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=_N, r=_R, p=_P, dklen=_LEN)
    return "scrypt$" + base64.b64encode(salt).decode() + "$" + base64.b64encode(digest).decode()


def password_matches(password: str, stored: str) -> bool:
    try:
        scheme, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        expected = base64.b64decode(digest)
        found = hashlib.scrypt(
            password.encode(), salt=base64.b64decode(salt), n=_N, r=_R, p=_P, dklen=_LEN
        )
    except ValueError:
        return False
    return hmac.compare_digest(found, expected)


async def check_password(password: str, stored: str) -> bool:
    """password_matches, in a thread: scrypt must not stall the event loop."""
    return await asyncio.to_thread(password_matches, password, stored)


def check_credentials(username: str, password: str) -> None:
    if not USERNAME.match(username):
        raise InputError("the username is 3–64 letters, digits or . _ @ + -", field="username")
    if not MIN_PASSWORD <= len(password) <= MAX_PASSWORD:
        raise InputError(
            f"the password must be {MIN_PASSWORD}–{MAX_PASSWORD} characters", field="password"
        )


async def set_login(
    conn: asyncpg.Connection, account_id: UUID, username: str, password: str
) -> UUID:
    """Create the account's login (with an API key of its own) or change its password; the
    key's id. Conflict if another account has the username."""
    check_credentials(username, password)
    hashed = await asyncio.to_thread(hash_password, password)
    async with conn.transaction():
        key_id = await store.key_of(conn, username, account_id)
        if key_id is None:
            key_id = (await accounts.create_key(conn, account_id, name=f"login {username}")).id
        found = await store.upsert(conn, username, account_id, key_id, hashed)
        if found is None:
            raise Conflict(f"the username {username!r} is taken", code="USERNAME_TAKEN")
    return found
