"""Splitting into parts: limits, boundaries, escape pairs, surrogates, grapheme clusters, errors."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from broker.errors import InputError
from broker.segmentation import Encoding, Segmentation, split
from broker.segmentation.graphemes import clusters, is_boundary
from broker.segmentation.gsm7 import GSM7_CHARS, SEPTET_COST

FAMILY = "👨\u200d👩\u200d👧\u200d👦"  # 4 emoji + 3 ZWJ = 11 UTF-16 units
FLAG_FR = "🇫🇷"  # two regional indicators = 4 units
THUMB_MEDIUM = "👍🏽"  # emoji + skin tone = 4 units
KEYCAP_ONE = "1\ufe0f\u20e3"  # digit + VS16 + keycap = 3 units
HEART_RED = "❤\ufe0f"  # variation selector = 2 units
E_ACUTE = "e\u0301"  # letter + combining acute = 2 units
ENGLAND = "🏴\U000e0067\U000e0062\U000e0065\U000e006e\U000e0067\U000e007f"  # tags: 14 units


def units16(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def shape(seg: Segmentation) -> tuple[Encoding, tuple[int, ...]]:
    return seg.encoding, seg.part_units


# ---- GSM7 limits ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "udh16", "units"),
    [
        ("a" * 159, False, (159,)),
        ("a" * 160, False, (160,)),
        ("a" * 161, False, (153, 8)),
        ("a" * 161, True, (152, 9)),
        ("a" * 158 + "€", False, (160,)),  # extension character brings it to exactly 160
        ("a" * 159 + "€", False, (153, 8)),  # 161 septets
        ("€" * 80, False, (160,)),
        ("€" * 81, False, (152, 10)),  # 76 pairs fill 152; the 77th pair would need 154
        ("a" * 306, False, (153, 153)),
        ("a" * 307, False, (153, 153, 1)),
        ("a" * 305, False, (153, 152)),
        ("a" * 304, True, (152, 152)),
        ("a" * 305, True, (152, 152, 1)),
        ("a" * 303, True, (152, 151)),
    ],
)
def test_gsm7_limits(text: str, udh16: bool, units: tuple[int, ...]) -> None:
    seg = split(text, udh16=udh16)
    assert shape(seg) == (Encoding.GSM7, units)
    assert "".join(seg.parts) == text


@pytest.mark.parametrize("n", [2, 3, 4, 7, 10])
@pytest.mark.parametrize(("udh16", "per_part"), [(False, 153), (True, 152)])
def test_gsm7_multiples_of_the_part_size(n: int, udh16: bool, per_part: int) -> None:
    assert split("x" * (per_part * n - 1), udh16=udh16).segments == n
    assert split("x" * (per_part * n), udh16=udh16).segments == n
    assert split("x" * (per_part * n + 1), udh16=udh16).segments == n + 1
    assert split("x" * (per_part * n + 1), udh16=udh16).part_units[-1] == 1


@pytest.mark.parametrize("ext", ["€", "{", "\\", "\f", "|"])
def test_escape_pair_straddling_153_moves_to_the_next_part(ext: str) -> None:
    seg = split("a" * 152 + ext + "b" * 10)  # the pair would take septets 153 and 154
    assert seg.part_units == (152, 12)
    assert seg.parts == ("a" * 152, ext + "b" * 10)


def test_escape_pair_ending_exactly_on_153_stays() -> None:
    seg = split("a" * 151 + "€" + "b" * 10)
    assert seg.part_units == (153, 10)
    assert seg.parts[0].endswith("€")


def test_escape_pair_straddling_152_with_16_bit_reference() -> None:
    seg = split("a" * 151 + "~" + "b" * 10, udh16=True)
    assert seg.part_units == (151, 12)
    assert seg.parts[1].startswith("~")
    assert split("a" * 150 + "~" + "b" * 10, udh16=True).part_units == (152, 10)


def test_escape_pair_straddling_the_single_part_limit_makes_two_parts() -> None:
    assert split("a" * 159 + "]").part_units == (153, 8)


# ---- UCS2 limits ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "udh16", "units"),
    [
        ("ç" * 70, False, (70,)),
        ("ç" * 71, False, (67, 4)),
        ("ç" * 71, True, (66, 5)),
        ("ç" * 68 + "😀", False, (70,)),  # emoji ends exactly on unit 70
        ("ç" * 69 + "😀", False, (67, 4)),  # 71 units
        ("😀" * 35, False, (70,)),
        ("😀" * 36, False, (66, 6)),  # 33 pairs fill 66; the 34th would need units 67-68
        ("ç" * 65 + "😀" + "ç" * 10, False, (67, 10)),  # emoji ends exactly on unit 67
        ("ç" * 66 + "😀" + "ç" * 10, False, (66, 12)),  # would straddle 67: moves whole
        ("ç" * 64 + "😀" + "ç" * 10, True, (66, 10)),  # ends exactly on unit 66
        ("ç" * 65 + "😀" + "ç" * 10, True, (65, 12)),  # would straddle 66
        ("ç" * 134, False, (67, 67)),
        ("ç" * 135, False, (67, 67, 1)),
        ("ç" * 132, True, (66, 66)),
        ("ç" * 133, True, (66, 66, 1)),
    ],
)
def test_ucs2_limits(text: str, udh16: bool, units: tuple[int, ...]) -> None:
    seg = split(text, udh16=udh16)
    assert shape(seg) == (Encoding.UCS2, units)
    assert "".join(seg.parts) == text
    for part in seg.parts:
        part.encode("utf-16-be")  # no part holds half a surrogate pair


@pytest.mark.parametrize(
    ("cluster", "size"),
    [
        (FAMILY, 11),
        (FLAG_FR, 4),
        (THUMB_MEDIUM, 4),
        (KEYCAP_ONE, 3),
        (HEART_RED, 2),
        (E_ACUTE, 2),
        (ENGLAND, 14),
        ("a\u0308\u0301", 3),  # several combining marks
        ("\u0915\u094d\u0937", 3),  # Devanagari: the virama (Mn) joins; 'ष' then starts a cluster
    ],
)
def test_cluster_straddling_the_part_limit_moves_whole(cluster: str, size: int) -> None:
    head = next(clusters(cluster))  # the first cluster of the sample
    head_size = units16(head)
    assert units16(cluster) == size
    before = "ç" * (67 - head_size + 1)  # one unit short of room for it
    seg = split(before + cluster + "ç" * 70)
    assert seg.parts[0] == before
    assert seg.parts[1].startswith(head)
    assert seg.part_units[0] == 67 - head_size + 1


@pytest.mark.parametrize("cluster", [FAMILY, FLAG_FR, THUMB_MEDIUM, KEYCAP_ONE, E_ACUTE, ENGLAND])
def test_cluster_ending_on_the_part_limit_stays(cluster: str) -> None:
    before = "ç" * (67 - units16(cluster))
    seg = split(before + cluster + "ç" * 70)
    assert seg.parts[0] == before + cluster
    assert seg.part_units[0] == 67


def test_a_run_of_flags_pairs_regional_indicators_from_the_start() -> None:
    flags = "🇫🇷🇩🇪🇮🇹🇪🇸" * 5  # 20 flags = 80 units
    seg = split(flags)
    assert seg.part_units == (64, 16)  # 16 flags; a 17th would need units 65-68
    assert all(len(part) % 2 == 0 for part in seg.parts)
    # Pairs count from the first indicator of a run: (🇮🇩)(🇪🇸), not 🇮 (🇩🇪) 🇸.
    seg = split("ç" * 62 + "🇮🇩🇪🇸" + "ç" * 10)
    assert seg.parts[0] == "ç" * 62 + "🇮🇩"
    assert seg.parts[1].startswith("🇪🇸")


def test_a_cluster_longer_than_a_part_is_cut_at_code_points() -> None:
    huge = "e" + "\u0301" * 100  # one cluster of 101 units
    seg = split(huge)
    assert seg.part_units == (67, 34)
    assert "".join(seg.parts) == huge
    skin = "👍" + "🏽" * 40  # one cluster of 82 units, all surrogate pairs
    seg = split("ç" * 10 + skin)
    assert seg.parts[0] == "ç" * 10 + skin[:28]  # it fills the part; no pair is halved
    assert seg.part_units == (66, 26)
    for part in seg.parts:
        part.encode("utf-16-be")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("ab", ["a", "b"]),
        (FAMILY + "x", [FAMILY, "x"]),
        ("🇫🇷🇩🇪🇮", ["🇫🇷", "🇩🇪", "🇮"]),
        (THUMB_MEDIUM + "!", [THUMB_MEDIUM, "!"]),
        (KEYCAP_ONE + "2", [KEYCAP_ONE, "2"]),
        (ENGLAND + "a", [ENGLAND, "a"]),
        ("e\u0301\u0302a", ["e\u0301\u0302", "a"]),
        ("\n\u0301", ["\n", "\u0301"]),  # a mark does not attach to a control character
        ("a\u200d\nb", ["a\u200d", "\n", "b"]),
        ("\u0301a", ["\u0301", "a"]),  # a leading mark is a cluster of its own
        ("", []),
    ],
)
def test_cluster_table(text: str, expected: list[str]) -> None:
    assert list(clusters(text)) == expected


# ---- errors --------------------------------------------------------------------------------


def test_empty_body_is_refused() -> None:
    with pytest.raises(InputError) as err:
        split("")
    assert (err.value.code, err.value.field) == ("EMPTY_BODY", "body")


def test_body_over_the_maximum_is_refused() -> None:
    assert split("a" * 1600).segments == 11
    with pytest.raises(InputError) as err:
        split("a" * 1601)
    assert (err.value.code, err.value.field) == ("BODY_TOO_LONG", "body")
    with pytest.raises(InputError):
        split("abcdef", max_chars=5)
    assert split("abcde", max_chars=5).segments == 1


def test_the_maximum_counts_code_points_not_utf16_units() -> None:
    seg = split("😀" * 1600)
    assert seg.segments == 49  # 3200 units, 33 emoji per 66-unit part
    with pytest.raises(InputError):
        split("😀" * 1601)


def test_more_than_255_parts_is_refused() -> None:
    assert split("a" * 153 * 255, max_chars=10**6).segments == 255
    with pytest.raises(InputError) as err:
        split("a" * (153 * 255 + 1), max_chars=10**6)
    assert err.value.code == "BODY_TOO_LONG"


def test_unpaired_surrogate_is_refused() -> None:
    with pytest.raises(InputError) as err:
        split("abc\ud800")
    assert (err.value.code, err.value.field) == ("INVALID_CHARACTER", "body")
    with pytest.raises(InputError):
        split("ç" * 80 + "\udc00")


# ---- properties ----------------------------------------------------------------------------

GSM7_TEXT = st.text(
    alphabet=st.one_of(st.sampled_from("aZ9 \n"), st.sampled_from(sorted(GSM7_CHARS))),
    min_size=1,
    max_size=1600,
)
EMOJI_PIECES = st.sampled_from(
    [
        FAMILY,
        FLAG_FR,
        THUMB_MEDIUM,
        KEYCAP_ONE,
        HEART_RED,
        E_ACUTE,
        ENGLAND,
        "🇩",
        "\u200d",
        "\u0301",
        "🏽",
        "😀",
        "ç",
        "a",
        "€",
        " ",
        "\n",
    ]
)
UCS2_TEXT = st.one_of(
    st.text(min_size=1, max_size=1600),
    st.lists(EMOJI_PIECES, min_size=1, max_size=300).map("".join),
)


def check_parts(text: str, seg: Segmentation, udh16: bool) -> None:
    assert "".join(seg.parts) == text
    assert all(seg.parts)
    assert len(seg.part_units) == seg.segments
    if seg.encoding is Encoding.GSM7:
        assert set(text) <= GSM7_CHARS
        measured = [sum(SEPTET_COST[ch] for ch in part) for part in seg.parts]
        single, multi = 160, (152 if udh16 else 153)
    else:
        assert not set(text) <= GSM7_CHARS or "\x1b" in text
        measured = [units16(part) for part in seg.parts]
        single, multi = 70, (66 if udh16 else 67)
    assert list(seg.part_units) == measured
    if seg.segments == 1:
        assert measured[0] <= single
    else:
        assert sum(measured) > single
        assert all(units <= multi for units in measured)


@given(GSM7_TEXT, st.booleans())
def test_gsm7_parts_join_back_and_fit(text: str, udh16: bool) -> None:
    seg = split(text, udh16=udh16)
    check_parts(text, seg, udh16)
    limit = 152 if udh16 else 153
    for index in range(seg.segments - 1):  # greedy: the next character did not fit
        next_char = seg.parts[index + 1][0]
        assert seg.part_units[index] + SEPTET_COST[next_char] > limit


@given(UCS2_TEXT, st.booleans())
def test_ucs2_parts_join_back_and_fit(text: str, udh16: bool) -> None:
    seg = split(text, udh16=udh16)
    check_parts(text, seg, udh16)
    if seg.encoding is not Encoding.UCS2 or seg.segments == 1:
        return
    limit = 66 if udh16 else 67
    cut = 0
    for part in seg.parts[:-1]:
        cut += len(part)
        if not is_boundary(text, cut):  # only inside a cluster too big for any part
            start = max(i for i in range(cut) if is_boundary(text, i))
            end = min(i for i in range(cut + 1, len(text) + 1) if is_boundary(text, i))
            assert units16(text[start:end]) > limit


@given(UCS2_TEXT)
def test_is_boundary_agrees_with_clusters(text: str) -> None:
    starts = {0}
    position = 0
    for cluster in clusters(text):
        assert cluster
        position += len(cluster)
        starts.add(position)
    assert position == len(text)
    assert starts == {i for i in range(len(text) + 1) if is_boundary(text, i)}
