"""/v1/otp: send a one-time code by SMS, and verify it.

The code travels in plain text only to the carrier (the send's ``plain_body``); the message
stored, listed and posted to webhooks carries it masked, and the otps row only its keyed hash.
Nothing here logs a code.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta

import asyncpg
import structlog
from aiohttp import web

from api import sending
from api.context import POOL, caller, shared
from api.contract import Endpoints, body_of
from api.errors import rate_limited
from api.schemas.otp import OtpSend, OtpSent, OtpVerified, OtpVerify
from broker import otp
from broker.db import CONNECTION_ERRORS, unavailable_as_error
from broker.resources import number

endpoints = Endpoints("otp")
log = structlog.get_logger(__name__)


@endpoints.post(
    "/v1/otp",
    body=OtpSend,
    response=OtpSent,
    status=202,
    errors=frozenset({402}),
    summary="Send a one-time code by SMS",
    description="The code (`length` digits, from a CSPRNG) replaces `{{code}}` or `##OTP##` "
    "in `message`. Only the carrier gets it: the SMS is an ordinary message (status, charge, "
    "webhooks) whose stored text shows the code as `*`, and the gateway keeps only a keyed "
    f"hash of it. At most {otp.MAX_SENDS} codes per number per "
    f"{int(otp.SEND_WINDOW.total_seconds()) // 60} minutes (429 `RATE_LIMIT_EXCEEDED` with "
    "`retry_after`).",
)
async def send_otp(request: web.Request) -> OtpSent:
    return await send_code(request, body_of(request, OtpSend))


async def send_code(request: web.Request, send: OtpSend) -> OtpSent:
    """Send a code as POST /v1/otp does (the provider dialects' OTP routes call this too)."""
    who = caller(request)
    pool = shared(request)[POOL]
    code = otp.generate_code(send.length)
    text = otp.texts(send.message, code)
    expiry = timedelta(minutes=send.expiry_minutes)
    prepared = await sending.prepare(
        request,
        sending.Draft(
            recipients=[send.to],
            body=text.masked,
            sender=send.sender,
            validity_period=int(expiry.total_seconds()),
            plain_body=text.plain,
        ),
    )
    [message] = prepared.messages
    otp_id = uuid.uuid4()
    async with unavailable_as_error():
        key = await otp.hash_key(pool)
        outcome = await otp.reserve(
            pool,
            otp_id=otp_id,
            account_id=who.account_id,
            to_number=send.to,
            message_id=message.id,
            code_hash=otp.code_hash(key, otp_id, code),
            expiry=expiry,
        )
    if isinstance(outcome, otp.Limited):
        wait = outcome.retry_after
        raise rate_limited(
            f"{otp.MAX_SENDS} codes went to this number in the last "
            f"{int(otp.SEND_WINDOW.total_seconds()) // 60} minutes; retry in {wait}s",
            wait,
        )
    try:
        await sending.publish(request, prepared)
    except BaseException:
        # Not sent: the code reached nobody, and the row must not stay to be guessed at.
        try:
            await asyncio.shield(otp.withdraw(pool, who.account_id, otp_id))
        except (*CONNECTION_ERRORS, asyncpg.PostgresError):
            log.warning("otp_withdraw_failed", otp_id=str(otp_id))
        raise
    log.info("otp_sent", otp_id=str(otp_id), message_id=str(message.id))
    return OtpSent(
        id=otp_id,
        message_id=message.id,
        to=message.to,
        status=message.status,
        expires_at=outcome.expires_at,
        encoding=message.encoding,
        segments=message.segments,
        estimated_cost=number(prepared.estimated_cost) or 0,
    )


@endpoints.post(
    "/v1/otp/verify",
    body=OtpVerify,
    response=OtpVerified,
    summary="Check a one-time code",
    description="By `id` (the OTP) or by `to` (the number's newest code not yet verified). "
    "`valid` is true once per code; after "
    f"{otp.MAX_ATTEMPTS} wrong codes it never verifies. An expired, used or unknown OTP "
    "answers `valid: false` with its `status` (200).",
)
async def verify_otp(request: web.Request) -> OtpVerified:
    return await verify_code(request, body_of(request, OtpVerify))


async def verify_code(request: web.Request, check: OtpVerify) -> OtpVerified:
    """Check a code as POST /v1/otp/verify does (and the provider dialects)."""
    who = caller(request)
    async with unavailable_as_error():
        verdict = await otp.verify(
            shared(request)[POOL],
            who.account_id,
            otp.Code(check.code),
            otp_id=check.id,
            to_number=check.to,
        )
    log.info(
        "otp_verify",
        otp_id=None if verdict.otp_id is None else str(verdict.otp_id),
        status=str(verdict.status),
    )
    return OtpVerified(
        valid=verdict.valid,
        id=verdict.otp_id,
        to=verdict.to_number,
        status=verdict.status.value,
    )
