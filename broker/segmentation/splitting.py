"""Choose the encoding and cut a text into SMS parts exactly as carriers count them.

GSM7: 160 septets in one part, else 153 per part (152 with a 16-bit reference UDH); an escape
pair never straddles parts. UCS2: 70 UTF-16 code units, else 67 (66); a surrogate pair never
straddles parts, and a grapheme cluster stays whole when it fits in a part.
"""

from __future__ import annotations

from typing import Final

from broker.errors import InputError
from broker.segmentation import gsm7
from broker.segmentation.graphemes import is_boundary
from broker.segmentation.model import Encoding, Segmentation

DEFAULT_MAX_CHARS: Final = 1600
MAX_PARTS: Final = 255  # the concatenation header counts parts in one octet

GSM7_SINGLE: Final = 160
GSM7_MULTI: Final = {False: 153, True: 152}
UCS2_SINGLE: Final = 70
UCS2_MULTI: Final = {False: 67, True: 66}


def split(text: str, *, udh16: bool = False, max_chars: int = DEFAULT_MAX_CHARS) -> Segmentation:
    """Segment `text`; InputError EMPTY_BODY / BODY_TOO_LONG / INVALID_CHARACTER, field body."""
    if not text:
        raise InputError("the message body is empty", code="EMPTY_BODY", field="body")
    if len(text) > max_chars:
        raise InputError(
            f"the message body has {len(text)} characters; the maximum is {max_chars}",
            code="BODY_TOO_LONG",
            field="body",
        )
    septets = gsm7.septets_needed(text)
    if septets is not None:
        seg = _split_gsm7(text, septets, GSM7_MULTI[udh16])
    else:
        seg = _split_ucs2(text, UCS2_MULTI[udh16])
    if seg.segments > MAX_PARTS:
        raise InputError(
            f"the message body needs {seg.segments} parts; the maximum is {MAX_PARTS}",
            code="BODY_TOO_LONG",
            field="body",
        )
    return seg


def _split_gsm7(text: str, total: int, limit: int) -> Segmentation:
    if total <= GSM7_SINGLE:
        return Segmentation(Encoding.GSM7, (text,), (total,))
    parts: list[str] = []
    units: list[int] = []
    pos = 0
    while pos < len(text):
        # A part holds at most `limit` characters; drop characters from the end until the
        # septets fit. Cutting between characters never splits an escape pair.
        end = min(pos + limit, len(text))
        used = gsm7.septets_needed(text[pos:end]) or 0
        while used > limit:
            end -= 1
            used -= gsm7.SEPTET_COST[text[end]]
        parts.append(text[pos:end])
        units.append(used)
        pos = end
    return Segmentation(Encoding.GSM7, tuple(parts), tuple(units))


def _split_ucs2(text: str, limit: int) -> Segmentation:
    total = _utf16_units(text)
    if total <= UCS2_SINGLE:
        return Segmentation(Encoding.UCS2, (text,), (total,))
    parts: list[str] = []
    units: list[int] = []
    pos = 0
    while pos < len(text):
        # Cutting between code points never splits a surrogate pair. Then step back to a
        # grapheme cluster boundary, unless the cluster is too long for any part: that one is
        # cut where it fills the part.
        end = min(pos + limit, len(text))
        used = _utf16_units(text[pos:end])
        while used > limit:
            end -= 1
            used -= 2 if ord(text[end]) > 0xFFFF else 1
        cut = _cluster_start(text, end, pos)
        if pos < cut < end and _fits(text, cut, limit):
            used -= _utf16_units(text[cut:end])
            end = cut
        parts.append(text[pos:end])
        units.append(used)
        pos = end
    return Segmentation(Encoding.UCS2, tuple(parts), tuple(units))


def _cluster_start(text: str, index: int, floor: int) -> int:
    """The last cluster boundary at or before `index`, not below `floor`."""
    while index > floor and not is_boundary(text, index):
        index -= 1
    return index


def _fits(text: str, start: int, limit: int) -> bool:
    """Whether the cluster starting at `start` fits in a part of `limit` units."""
    end = start + 1
    while end < len(text) and end - start <= limit and not is_boundary(text, end):
        end += 1
    return _utf16_units(text[start:end]) <= limit


def _utf16_units(text: str) -> int:
    try:
        return len(text.encode("utf-16-le")) // 2
    except UnicodeEncodeError as exc:
        raise InputError(
            f"the message body contains an unpaired surrogate at position {exc.start}",
            code="INVALID_CHARACTER",
            field="body",
        ) from exc
