"""One-time codes: generation, the keyed hash that is all the gateway keeps of a code, the
message text (plain for the carrier, masked for every table, log and webhook), and what a
verification attempt means.

A code is ``secrets.randbelow(10**length)`` zero-padded. It is stored only as
HMAC-SHA256(key, otp id || code), with a key the gateway makes for itself once
(``gateway_secrets`` row ``otp``) and compares in constant time. The masked text replaces the
code with as many ``*`` as it has digits: ``*`` and the digits are each one GSM 03.38 septet
and one UTF-16 unit, so the stored text has the encoding and the parts of the one sent.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Final
from uuid import UUID

import asyncpg

from broker.errors import InputError
from broker.store import gateway_secrets
from broker.store import otp as store
from broker.store.otp import OtpRow

PLACEHOLDERS: Final = ("{{code}}", "##OTP##")
DEFAULT_MESSAGE: Final = "Your verification code is {{code}}"
MIN_LENGTH: Final = 4
MAX_LENGTH: Final = 9
DEFAULT_LENGTH: Final = 6
DEFAULT_EXPIRY_MINUTES: Final = 10
MAX_EXPIRY_MINUTES: Final = 1440
#: Sends per number per account within SEND_WINDOW.
MAX_SENDS: Final = 5
SEND_WINDOW: Final = timedelta(minutes=10)
#: Wrong codes an OTP takes; after that it never verifies, not even with the right code.
MAX_ATTEMPTS: Final = 5
MASK: Final = "*"
#: The gateway_secrets row of the hash key.
KEY_NAME: Final = "otp"


class VerifyStatus(StrEnum):
    VERIFIED = "verified"
    INVALID_CODE = "invalid_code"
    EXPIRED = "expired"
    ALREADY_USED = "already_used"
    TOO_MANY_ATTEMPTS = "too_many_attempts"
    NOT_FOUND = "not_found"


class Code(str):
    """A code (sent or offered): its repr never shows the digits, so neither does a traceback
    that prints locals, nor a debug log of an object holding one."""

    __slots__ = ()

    def __repr__(self) -> str:
        return f"<code: {len(self)} digits>"


def generate_code(length: int) -> Code:
    if not MIN_LENGTH <= length <= MAX_LENGTH:
        raise ValueError(f"an OTP has {MIN_LENGTH}–{MAX_LENGTH} digits, not {length}")
    return Code(f"{secrets.randbelow(10**length):0{length}d}")


def code_hash(key: bytes, otp_id: UUID, code: str) -> bytes:
    return hmac.new(key, otp_id.bytes + code.encode("ascii"), hashlib.sha256).digest()


def code_matches(key: bytes, otp_id: UUID, offered: str, stored: bytes) -> bool:
    """Whether ``offered`` is the code hashed in ``stored``, compared in constant time.

    An offered code shorter than 9 digits is also tried zero-padded (a client that sent the
    code as a JSON number lost its leading zeros): the OTP has one length, so only one padded
    form can ever match and a guess is still one guess.
    """
    found = False
    for length in range(len(offered), MAX_LENGTH + 1):
        found |= hmac.compare_digest(code_hash(key, otp_id, offered.zfill(length)), stored)
    return found


def check_template(message: str) -> str:
    """The message must hold exactly one placeholder, ``{{code}}`` or ``##OTP##``."""
    count = sum(message.count(p) for p in PLACEHOLDERS)
    if count == 0:
        raise InputError(
            "`message` must contain the placeholder {{code}} or ##OTP## where the code goes",
            code="MISSING_CODE_PLACEHOLDER",
            field="message",
        )
    if count > 1:
        raise InputError(
            "`message` must contain the code placeholder ({{code}} or ##OTP##) exactly once",
            code="INVALID_OTP_MESSAGE",
            field="message",
        )
    return message


def _placeholder(template: str) -> str:
    return next(p for p in PLACEHOLDERS if p in template)


def render(template: str, code: str) -> str:
    """The text with the code in place of its one placeholder."""
    return template.replace(_placeholder(check_template(template)), code, 1)


def mask(code: str) -> str:
    return MASK * len(code)


@dataclass(frozen=True, slots=True)
class OtpText:
    #: What only the carrier gets.
    plain: str = field(repr=False)
    #: What is stored and shown: the code replaced by ``*`` of the same length.
    masked: str


def texts(template: str, code: str) -> OtpText:
    return OtpText(render(template, code), render(template, mask(code)))


def decide(otp: OtpRow | None, matches: bool) -> VerifyStatus:
    """What an attempt with a code (``matches``: it is the OTP's code) means, by the
    database's clock read with the row.

    Already used, used up or expired: refused whatever the code, and not counted.
    """
    if otp is None:
        return VerifyStatus.NOT_FOUND
    if otp.verified_at is not None:
        return VerifyStatus.ALREADY_USED
    if otp.attempts >= MAX_ATTEMPTS:
        return VerifyStatus.TOO_MANY_ATTEMPTS
    if otp.expires_at <= otp.now:
        return VerifyStatus.EXPIRED
    return VerifyStatus.VERIFIED if matches else VerifyStatus.INVALID_CODE


def retry_after(oldest_in_window: datetime, now: datetime) -> int:
    """Whole seconds until the oldest send of the window leaves it (at least 1)."""
    wait = (oldest_in_window + SEND_WINDOW - now).total_seconds()
    return max(1, int(wait) + (0 if wait == int(wait) else 1))


#: Per pool (one per database; a pool cannot be weakly referenced, so the entry holds it and
#: its id cannot be reused meanwhile): the pool and its database's key.
_KEYS: dict[int, tuple[asyncpg.Pool, bytes]] = {}


async def hash_key(pool: asyncpg.Pool) -> bytes:
    """The hash key, made once for the whole gateway and cached per process (per pool)."""
    cached = _KEYS.get(id(pool))
    if cached is not None:
        return cached[1]
    key = await gateway_secrets.ensure(pool, KEY_NAME, secrets.token_bytes(32))
    _KEYS[id(pool)] = (pool, key)
    return key


@dataclass(frozen=True, slots=True)
class Reserved:
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class Limited:
    #: Seconds until the number may get another code.
    retry_after: int


async def reserve(
    pool: asyncpg.Pool,
    *,
    otp_id: UUID,
    account_id: UUID,
    to_number: str,
    message_id: UUID,
    code_hash: bytes,
    expiry: timedelta,
) -> Reserved | Limited:
    """Store the OTP unless the number had MAX_SENDS codes within SEND_WINDOW already.

    The count and the insert run under a lock on (account, number), so parallel sends to
    one number cannot pass the limit together.
    """
    async with pool.acquire() as conn, conn.transaction():
        await store.lock_number(conn, account_id, to_number)
        recent = await store.recent_sends(conn, account_id, to_number, SEND_WINDOW)
        if recent.count >= MAX_SENDS and recent.oldest is not None:
            return Limited(retry_after(recent.oldest, recent.now))
        expires_at = await store.insert(
            conn,
            otp_id=otp_id,
            account_id=account_id,
            to_number=to_number,
            message_id=message_id,
            code_hash=code_hash,
            expiry=expiry,
        )
    return Reserved(expires_at)


async def withdraw(pool: asyncpg.Pool, account_id: UUID, otp_id: UUID) -> None:
    """Remove an OTP whose message was never sent (its code reached nobody)."""
    await store.delete(pool, account_id, otp_id)


@dataclass(frozen=True, slots=True)
class Verdict:
    status: VerifyStatus
    otp_id: UUID | None
    to_number: str | None

    @property
    def valid(self) -> bool:
        return self.status is VerifyStatus.VERIFIED


async def verify(
    pool: asyncpg.Pool,
    account_id: UUID,
    code: Code,
    *,
    otp_id: UUID | None = None,
    to_number: str | None = None,
) -> Verdict:
    """One attempt: the OTP row is locked while it is judged and counted, so parallel
    guesses are counted one after the other and never pass MAX_ATTEMPTS."""
    key = await hash_key(pool)
    async with pool.acquire() as conn, conn.transaction():
        if otp_id is not None:
            otp = await store.lock_by_id(conn, account_id, otp_id)
            if otp is not None and to_number is not None and otp.to_number != to_number:
                otp = None
        elif to_number is not None:
            otp = await store.lock_by_number(conn, account_id, to_number)
        else:
            raise ValueError("verify needs an OTP id or a number")
        matches = otp is not None and code_matches(key, otp.id, code, otp.code_hash)
        status = decide(otp, matches)
        if otp is None:
            return Verdict(status, None, None)
        if status is VerifyStatus.VERIFIED:
            await store.mark_verified(conn, otp.id)
        elif status is VerifyStatus.INVALID_CODE:
            await store.count_attempt(conn, otp.id, MAX_ATTEMPTS)
    return Verdict(status, otp.id, otp.to_number)
