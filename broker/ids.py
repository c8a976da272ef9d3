"""Message ids: UUIDv7 (RFC 9562), the creation time in milliseconds followed by random bits.

Ids made in time order land next to each other in the primary-key index (a random UUIDv4 touches
a random page per insert), and an id tells when it was made, so the API can tell an id it gave
a moment ago (whose message the charge worker may not have stored yet) from one it never gave.
"""

from __future__ import annotations

import hashlib
import os
import time
from uuid import UUID

_RANDOM_BITS = 74
_VERSION_7 = 0x7 << 76
_VARIANT_RFC = 0x2 << 62


def new_id(now_ns: int | None = None) -> UUID:
    """A fresh UUIDv7: 48 bits of Unix milliseconds, version, 74 random bits, variant."""
    ms = (time.time_ns() if now_ns is None else now_ns) // 1_000_000
    rand = int.from_bytes(os.urandom(10), "big") >> (80 - _RANDOM_BITS)
    high, low = rand >> 62, rand & ((1 << 62) - 1)  # 12 bits after the version, 62 after
    value = ((ms & ((1 << 48) - 1)) << 80) | _VERSION_7 | (high << 64) | _VARIANT_RFC | low
    return UUID(int=value)


def issued_at(value: UUID) -> float | None:
    """When a UUIDv7 was made (Unix seconds); None for any other kind of UUID."""
    if value.version != 7:
        return None
    return (value.int >> 80) / 1000


def derived_id(batch_id: UUID, key: str) -> UUID:
    """The id of ``key``'s message in a batch: a UUIDv7 with the batch's time and bits hashed
    from the batch and the key, so making the same recipient's message again (an expansion
    resumed after a crash) gives the same id, which PostgreSQL stores and charges once."""
    digest = hashlib.blake2b(batch_id.bytes + key.encode(), digest_size=10).digest()
    rand = int.from_bytes(digest, "big") >> (80 - _RANDOM_BITS)
    high, low = rand >> 62, rand & ((1 << 62) - 1)
    ms = batch_id.int >> 80 if batch_id.version == 7 else 0
    value = (ms << 80) | _VERSION_7 | (high << 64) | _VARIANT_RFC | low
    return UUID(int=value)
