"""Text PostgreSQL cannot store, found before the insert, and made storable for a failed row.

The API refuses such text before its 202; this is the charge worker's net for what still gets
through (a previous API version, a request put on the queue by hand), so that an accepted
message always ends as a row its owner can read, never as a dead letter.
"""

from __future__ import annotations

import re
from typing import Final

from broker.text import MAX_CALLBACK_URL, MAX_CLIENT_REF, has_unstorable

INVALID_MESSAGE: Final = "INVALID_MESSAGE"

#: Column limits of the messages table.
LIMITS: Final = {"client_ref": MAX_CLIENT_REF, "callback_url": MAX_CALLBACK_URL}

_SURROGATE = re.compile("[\ud800-\udfff]")


def unstorable(
    body: str, sender: str | None, client_ref: str | None, callback_url: str | None
) -> str | None:
    """Why these fields cannot be stored as they are, or None."""
    fields = {
        "body": body,
        "sender": sender,
        "client_ref": client_ref,
        "callback_url": callback_url,
    }
    for name, value in fields.items():
        if value is None:
            continue
        if has_unstorable(value):
            return f"{name} holds a NUL character or a lone surrogate"
        if len(value) > LIMITS.get(name, len(value)):
            return f"{name} is longer than {LIMITS[name]} characters"
    if not body:
        return "body is empty"
    return None


def sanitized(value: str | None, *, limit: int | None, nonempty: bool = False) -> str | None:
    """NUL dropped, lone surrogates as U+FFFD, cut to ``limit``; never empty if ``nonempty``."""
    if value is None:
        return None
    clean = _SURROGATE.sub("\ufffd", value.replace("\x00", ""))
    if limit is not None:
        clean = clean[:limit]
    return clean or ("\ufffd" if nonempty else clean)
