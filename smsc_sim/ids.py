"""Message ids as a carrier hands them out in submit_sm_resp, in the three common shapes."""

from __future__ import annotations

import random
import uuid


class MessageIdGenerator:
    """Unique ids for one simulator run: ``hex`` or ``dec`` renderings of a counter, or UUIDs.

    The counter starts at a random 40-bit value so that a restarted simulator does not hand
    the gateway ids it has already seen.
    """

    def __init__(self, fmt: str, *, seed: int | None = None) -> None:
        self._format = fmt
        self._random = random.Random(seed)
        self._next = (1 << 36) + self._random.getrandbits(40)

    def next_id(self) -> str:
        number = self._next
        self._next = number + 1
        if self._format == "hex":
            return f"{number:x}"
        if self._format == "dec":
            return str(number)
        return str(uuid.UUID(int=self._random.getrandbits(128), version=4))


def receipt_id(message_id: str, *, decimal: bool) -> str:
    """The id as a receipt renders it: the hex id as decimal when asked, else unchanged."""
    return str(int(message_id, 16)) if decimal else message_id
