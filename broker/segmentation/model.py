"""Value types shared by the splitter and the wire encoder."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Encoding(StrEnum):
    GSM7 = "GSM7"
    UCS2 = "UCS2"


@dataclass(frozen=True, slots=True)
class Segmentation:
    """How a text goes out: `parts` are exact substrings, joined they give the text back."""

    encoding: Encoding
    parts: tuple[str, ...]
    part_units: tuple[int, ...]  # septets (GSM7) or UTF-16 code units (UCS2) per part

    @property
    def segments(self) -> int:
        return len(self.parts)


@dataclass(frozen=True, slots=True)
class ConcatInfo:
    """Concatenation header of one part: message `reference`, `total` parts, 1-based `seq`."""

    reference: int
    total: int
    seq: int


@dataclass(frozen=True, slots=True)
class DecodedMessage:
    text: str
    concat: ConcatInfo | None
