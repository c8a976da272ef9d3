"""One-time codes (the otps table): only a keyed hash of each code is here, never the code.

Every query is scoped to one account: another account's OTP id finds nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from uuid import UUID

import asyncpg

from broker.store import Db

#: Class id of the advisory lock that serialises the sends to one number of one account.
LOCK_CLASS = 0x4F54  # "OT"

LOCK_NUMBER = "SELECT pg_advisory_xact_lock($1, hashtext($2::text))"
#: Sends to the number within the window: how many, the oldest, and the database's clock.
RECENT_SENDS = """
SELECT count(*) AS sends, min(created_at) AS oldest, now() AS now
  FROM otps
 WHERE account_id = $1 AND to_number = $2 AND created_at > now() - $3::interval
"""
INSERT_OTP = """
INSERT INTO otps (id, account_id, to_number, message_id, code_hash, expires_at)
VALUES ($1, $2, $3, $4, $5, now() + $6::interval)
RETURNING expires_at
"""
DELETE_OTP = "DELETE FROM otps WHERE account_id = $1 AND id = $2"

_CANDIDATE = "id, to_number, code_hash, expires_at, attempts, verified_at, now() AS now"
#: The OTP with this id, locked until the caller's transaction ends.
LOCK_BY_ID = f"""
SELECT {_CANDIDATE} FROM otps WHERE account_id = $1 AND id = $2 FOR UPDATE
"""
#: The newest unverified OTP of the number (else the newest one), locked likewise.
LOCK_BY_NUMBER = f"""
SELECT {_CANDIDATE} FROM otps
 WHERE account_id = $1 AND to_number = $2
 ORDER BY verified_at IS NOT NULL, created_at DESC, id DESC
 LIMIT 1
 FOR UPDATE
"""
MARK_VERIFIED = "UPDATE otps SET verified_at = now() WHERE id = $1 AND verified_at IS NULL"
COUNT_ATTEMPT = """
UPDATE otps SET attempts = attempts + 1 WHERE id = $1 AND attempts < $2 RETURNING attempts
"""


async def lock_number(conn: asyncpg.Connection, account_id: UUID, to_number: str) -> None:
    """Serialise sends to one number of one account until the caller's transaction ends."""
    await conn.execute(LOCK_NUMBER, LOCK_CLASS, f"{account_id}:{to_number}")


@dataclass(frozen=True, slots=True)
class RecentSends:
    count: int
    oldest: datetime | None
    now: datetime


async def recent_sends(db: Db, account_id: UUID, to_number: str, window: timedelta) -> RecentSends:
    row = await db.fetchrow(RECENT_SENDS, account_id, to_number, window)
    assert row is not None  # an aggregate always answers one row
    return RecentSends(row["sends"], row["oldest"], row["now"])


async def insert(
    db: Db,
    *,
    otp_id: UUID,
    account_id: UUID,
    to_number: str,
    message_id: UUID,
    code_hash: bytes,
    expiry: timedelta,
) -> datetime:
    """Store the OTP; answers its expiry (the database's clock)."""
    expires_at: datetime = await db.fetchval(
        INSERT_OTP,
        otp_id,
        account_id,
        to_number,
        message_id,
        code_hash,
        expiry,
    )
    return expires_at


async def delete(db: Db, account_id: UUID, otp_id: UUID) -> bool:
    done: str = await db.execute(DELETE_OTP, account_id, otp_id)
    return done != "DELETE 0"


@dataclass(frozen=True, slots=True)
class OtpRow:
    id: UUID
    to_number: str
    code_hash: bytes
    expires_at: datetime
    attempts: int
    verified_at: datetime | None
    #: The database's clock when it was read.
    now: datetime


def _row(row: asyncpg.Record | None) -> OtpRow | None:
    if row is None:
        return None
    return OtpRow(
        row["id"],
        row["to_number"],
        row["code_hash"],
        row["expires_at"],
        row["attempts"],
        row["verified_at"],
        row["now"],
    )


async def lock_by_id(conn: asyncpg.Connection, account_id: UUID, otp_id: UUID) -> OtpRow | None:
    return _row(await conn.fetchrow(LOCK_BY_ID, account_id, otp_id))


async def lock_by_number(
    conn: asyncpg.Connection, account_id: UUID, to_number: str
) -> OtpRow | None:
    return _row(await conn.fetchrow(LOCK_BY_NUMBER, account_id, to_number))


async def mark_verified(conn: asyncpg.Connection, otp_id: UUID) -> bool:
    done: str = await conn.execute(MARK_VERIFIED, otp_id)
    return done == "UPDATE 1"


async def count_attempt(conn: asyncpg.Connection, otp_id: UUID, max_attempts: int) -> int | None:
    """Attempts after this wrong one; None if the OTP had no attempt left."""
    attempts: int | None = await conn.fetchval(COUNT_ATTEMPT, otp_id, max_attempts)
    return attempts
