"""What text the messages table can hold: the one rule the API checks before its 202 and the
charge worker checks again before its insert (sql/002_messages.sql has the column limits)."""

from __future__ import annotations

import re
from typing import Final

MAX_CLIENT_REF: Final = 200
MAX_CALLBACK_URL: Final = 2000

#: Characters PostgreSQL text cannot hold (NUL) or UTF-8 cannot encode (lone surrogates).
UNSTORABLE: Final = re.compile("[\x00\ud800-\udfff]")


def has_unstorable(value: str) -> bool:
    return UNSTORABLE.search(value) is not None
