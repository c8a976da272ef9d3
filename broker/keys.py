"""API keys: random secrets shown once, stored only as a SHA-256 digest.

The secrets carry 256 bits of entropy, so a fast hash is enough: nothing to brute-force, and
authentication stays one indexed lookup per request.
"""

from __future__ import annotations

import hashlib
import secrets

KEY_PREFIX = "sk_live_"


def new_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def key_hash(secret: str) -> bytes:
    return hashlib.sha256(secret.encode()).digest()


def display_prefix(secret: str) -> str:
    """Enough of the key to recognise it in a list or a log line, never enough to use it."""
    return secret[: len(KEY_PREFIX) + 4]
