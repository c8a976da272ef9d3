"""A practical subset of Unicode extended grapheme clusters (UAX #29), without a dependency.

Covered: combining marks (category M*), ZWJ U+200D joining the next character, variation
selectors, emoji skin-tone modifiers, regional-indicator pairs (flags), the keycap mark and tag
characters (subdivision flags). Not covered: Hangul jamo sequences, prepended concatenation
marks, CR LF. Enough to keep what a reader sees as one symbol inside one SMS part.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterator
from functools import lru_cache
from typing import Final

ZWJ: Final = "\u200d"
_REGIONAL_INDICATORS: Final = range(0x1F1E6, 0x1F200)
_SKIN_TONES: Final = range(0x1F3FB, 0x1F400)
_VARIATION_SELECTORS: Final = range(0xFE00, 0xFE10)
_TAGS: Final = range(0xE0020, 0xE0080)
_KEYCAP: Final = 0x20E3
# A cluster never starts a control character's extension (UAX #29 GB4/GB5).
_BREAK_CATEGORIES: Final = frozenset({"Cc", "Zl", "Zp"})


_OTHER: Final = 0
_EXTEND: Final = 1  # attaches to whatever precedes it
_ZWJ: Final = 2  # extends, and joins the next character too
_RI: Final = 3
_CONTROL: Final = 4


@lru_cache(maxsize=4096)
def _kind(ch: str) -> int:
    cp = ord(ch)
    if ch == ZWJ:
        return _ZWJ
    if cp in _REGIONAL_INDICATORS:
        return _RI
    category = unicodedata.category(ch)
    if category in _BREAK_CATEGORIES:
        return _CONTROL
    if (
        category[0] == "M"
        or cp in _SKIN_TONES
        or cp in _VARIATION_SELECTORS
        or cp in _TAGS
        or cp == _KEYCAP
    ):
        return _EXTEND
    return _OTHER


def is_boundary(text: str, index: int) -> bool:
    """Whether a grapheme cluster boundary falls before ``text[index]`` (same rules as clusters)."""
    if index <= 0 or index >= len(text):
        return True
    prev, kind = _kind(text[index - 1]), _kind(text[index])
    if prev == _CONTROL or kind == _CONTROL:
        return True
    if kind in (_EXTEND, _ZWJ) or prev == _ZWJ:
        return False
    if kind == _RI and prev == _RI:
        run = 1
        while index - run - 1 >= 0 and _kind(text[index - run - 1]) == _RI:
            run += 1
        return run % 2 == 0
    return True


def clusters(text: str) -> Iterator[str]:
    """Yield consecutive grapheme clusters; ``"".join(clusters(t)) == t``."""
    start = 0
    prev = _CONTROL  # nothing joins the start of the text
    ri_run = 0  # regional indicators in a row, to pair them up
    for index, ch in enumerate(text):
        kind = _kind(ch)
        if prev == _CONTROL or kind == _CONTROL:
            joins = False
        elif kind in (_EXTEND, _ZWJ) or prev == _ZWJ:
            joins = True
        else:
            joins = kind == _RI and prev == _RI and ri_run % 2 == 1
        if not joins and index:
            yield text[start:index]
            start = index
        ri_run = ri_run + 1 if kind == _RI and prev == _RI else int(kind == _RI)
        prev = kind
    if text:
        yield text[start:]
