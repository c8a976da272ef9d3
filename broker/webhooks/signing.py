"""Standard Webhooks signatures, so customers can verify with any Standard Webhooks library.

The signed content is ``f"{webhook-id}.{webhook-timestamp}.".encode() + body``; the key is the
base64-decoded part of the secret after ``whsec_``; the header carries ``v1,<base64 HMAC-SHA256>``,
possibly several space-separated (e.g. while a secret is being rotated: the account's
callback secret, once rotated, still signs for ``PREVIOUS_SECRET_VALIDITY`` beside the new one).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import time
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta

from broker.errors import BrokerError

SECRET_PREFIX = "whsec_"
SIGNATURE_VERSION = "v1"
DEFAULT_TOLERANCE = 300
#: How long a rotated-out callback secret keeps signing deliveries beside its successor.
PREVIOUS_SECRET_VALIDITY = timedelta(hours=24)


class SignatureError(BrokerError):
    """A webhook that cannot be trusted: signature missing, malformed, wrong or too old."""

    code = "INVALID_SIGNATURE"


def new_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode("ascii")


def secret_key(secret: str) -> bytes:
    """The HMAC key of a secret; a bare base64 string (no prefix) is accepted too."""
    encoded = secret.removeprefix(SECRET_PREFIX)
    try:
        key = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise SignatureError("webhook secret is not valid base64", code="INVALID_SECRET") from exc
    if not key:
        raise SignatureError("webhook secret is empty", code="INVALID_SECRET")
    return key


def _digest(key: bytes, msg_id: str, timestamp: int, body: bytes) -> bytes:
    signed = f"{msg_id}.{timestamp}.".encode() + body
    return hmac.new(key, signed, hashlib.sha256).digest()


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    digest = _digest(secret_key(secret), msg_id, timestamp, body)
    return f"{SIGNATURE_VERSION}," + base64.b64encode(digest).decode("ascii")


def sign_all(secrets: Iterable[str], msg_id: str, timestamp: int, body: bytes) -> str:
    """One ``v1,<sig>`` per secret, space-separated: any of the secrets verifies the header."""
    return " ".join(sign(secret, msg_id, timestamp, body) for secret in secrets)


def previous_secret_expiry(rotated_at: datetime | None) -> datetime | None:
    """When a secret rotated out at ``rotated_at`` stops signing (None: never rotated)."""
    return None if rotated_at is None else rotated_at + PREVIOUS_SECRET_VALIDITY


def _header(headers: Mapping[str, str], name: str) -> str:
    value = headers.get(name)
    if value is None:
        # A plain dict is case-sensitive; HTTP header names are not.
        value = next((v for k, v in headers.items() if k.lower() == name), None)
    if value is None or value == "":
        raise SignatureError(f"missing {name} header", code="MISSING_SIGNATURE")
    return value


def _candidates(header: str) -> list[bytes]:
    found: list[bytes] = []
    for item in header.split():
        version, sep, encoded = item.partition(",")
        if not sep or version != SIGNATURE_VERSION:
            continue
        try:
            found.append(base64.b64decode(encoded, validate=True))
        except (binascii.Error, ValueError):
            continue
    return found


def verify(
    secret: str,
    headers: Mapping[str, str],
    body: bytes,
    *,
    tolerance: int = DEFAULT_TOLERANCE,
    now: float | None = None,
) -> None:
    """Return if one of the v1 signatures matches and the timestamp is fresh; else raise."""
    msg_id = _header(headers, "webhook-id")
    raw_ts = _header(headers, "webhook-timestamp")
    header = _header(headers, "webhook-signature")
    if not raw_ts.isascii() or not raw_ts.isdigit():
        raise SignatureError("webhook-timestamp is not an integer", code="INVALID_TIMESTAMP")
    timestamp = int(raw_ts)
    current = time.time() if now is None else now
    if abs(current - timestamp) > tolerance:
        raise SignatureError("webhook-timestamp is outside the tolerance", code="EXPIRED_SIGNATURE")
    expected = _digest(secret_key(secret), msg_id, timestamp, body)
    if not any(hmac.compare_digest(expected, got) for got in _candidates(header)):
        raise SignatureError("no webhook signature matches", code="INVALID_SIGNATURE")
