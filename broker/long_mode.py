"""How a connector sends long messages, and what that makes a text cost. Pure: no I/O.

The same text can take a different number of parts on two connectors: a 16-bit UDH leaves
152 septets per part where an 8-bit one leaves 153. The API's answer, the charge and the
PDUs on the wire all count parts with this one function and the chosen connector's mode, so
a customer is charged exactly what is sent.
"""

from __future__ import annotations

from dataclasses import dataclass

from broker.segmentation import DEFAULT_MAX_CHARS, Segmentation, split

LONG_MODES = ("udh8", "udh16", "sar", "payload")


@dataclass(frozen=True, slots=True)
class LongMode:
    """A connector's long-message mode (``long_mode``) and whether it packs GSM7 septets."""

    mode: str = "udh8"  # udh8 | udh16 | sar | payload
    packed: bool = False

    @property
    def udh16(self) -> bool:
        return self.mode == "udh16"


def segment(body: str, mode: LongMode, *, max_chars: int = DEFAULT_MAX_CHARS) -> Segmentation:
    """The parts ``body`` becomes on a connector of ``mode``.

    SAR TLVs and ``message_payload`` carry no UDH in the PDU, but the carrier splits the text
    on the air with an 8-bit UDH, so both are counted as udh8; only udh16 differs.
    """
    return split(body, udh16=mode.udh16, max_chars=max_chars)


class PartCounter:
    """segment() once per distinct (text, mode): the recipients of one request share a text,
    and most share a connector mode. The API's answer and the charge worker count with it."""

    def __init__(self) -> None:
        self._seen: dict[tuple[str, LongMode], Segmentation] = {}

    def __call__(self, body: str, mode: LongMode) -> Segmentation:
        key = (body, mode)
        found = self._seen.get(key)
        if found is None:
            found = self._seen[key] = segment(body, mode, max_chars=max(1, len(body)))
        return found
