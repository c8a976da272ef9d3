"""Short-lived HS256 JSON Web Tokens that stand for an API key.

Some providers' customers authenticate with ``Authorization: Bearer JWT`` instead of a key.
A token names the key and account it was minted for and when it expires; whoever checks it
still looks the key up, so a revoked key's tokens stop working with it. Pure: no I/O, the
secret and the clock are given.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from broker.errors import BrokerError

#: The only algorithm made and accepted (a token naming another one, "none" included, is refused).
ALGORITHM = "HS256"
_HEADER = {"alg": ALGORITHM, "typ": "JWT"}
#: A token longer than this is refused before any decoding (it cannot be one of ours).
MAX_TOKEN_CHARS = 2048


class InvalidToken(BrokerError):
    """A token that is malformed, not signed with our secret, or expired."""

    code = "INVALID_TOKEN"


@dataclass(frozen=True, slots=True)
class TokenClaims:
    """What a token says: the key it stands for, that key's account, and its lifetime."""

    key_id: UUID
    account_id: UUID
    issued_at: int
    expires_at: int


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except ValueError:
        raise InvalidToken("the token is not base64url") from None


def _sign(signing_input: bytes, secret: bytes) -> bytes:
    return hmac.new(secret, signing_input, hashlib.sha256).digest()


def looks_like_jwt(value: str) -> bool:
    """Three dot-separated parts: a token, rather than an API key presented as Bearer."""
    return value.count(".") == 2


def mint(claims: TokenClaims, secret: bytes) -> str:
    """The signed token for ``claims``."""
    payload = {
        "kid": str(claims.key_id),
        "sub": str(claims.account_id),
        "iat": claims.issued_at,
        "exp": claims.expires_at,
    }
    head = _b64(json.dumps(_HEADER, separators=(",", ":")).encode())
    body = _b64(json.dumps(payload, separators=(",", ":")).encode())
    signing_input = f"{head}.{body}".encode("ascii")
    return f"{head}.{body}.{_b64(_sign(signing_input, secret))}"


def _object(part: str) -> dict[str, Any]:
    try:
        value = json.loads(_unb64(part))
    except ValueError:
        raise InvalidToken("the token is not JSON") from None
    if not isinstance(value, dict):
        raise InvalidToken("the token is not a JSON object")
    return value


def verify(token: str, secret: bytes, now: float) -> TokenClaims:
    """The claims of a token signed with ``secret`` and not expired at ``now`` (Unix seconds);
    InvalidToken otherwise. The signature is checked before anything in the token is used."""
    if len(token) > MAX_TOKEN_CHARS or not looks_like_jwt(token):
        raise InvalidToken("not a token")
    head, body, signature = token.split(".")
    try:
        signing_input = f"{head}.{body}".encode("ascii")
    except UnicodeEncodeError:
        raise InvalidToken("not a token") from None
    if not hmac.compare_digest(_unb64(signature), _sign(signing_input, secret)):
        raise InvalidToken("the token's signature does not verify")
    if _object(head).get("alg") != ALGORITHM:
        raise InvalidToken("the token's algorithm is not HS256")
    payload = _object(body)
    try:
        claims = TokenClaims(
            key_id=UUID(str(payload["kid"])),
            account_id=UUID(str(payload["sub"])),
            issued_at=int(payload["iat"]),
            expires_at=int(payload["exp"]),
        )
    except (KeyError, ValueError, TypeError):
        raise InvalidToken("the token's claims are incomplete") from None
    if claims.expires_at <= now:
        raise InvalidToken("the token has expired")
    return claims
