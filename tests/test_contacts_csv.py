"""The CSV reader and the row → contact mapping (pure): tables of files as spreadsheets write
them, and a property: whatever csv.writer writes reads back cell for cell, in any chunking."""

from __future__ import annotations

import csv
import io

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from broker.contacts import MAX_FIELD_VALUE
from broker.contacts_csv import (
    Batch,
    ContactRow,
    CsvError,
    Header,
    Record,
    RecordReader,
    RowError,
    cells,
    detect_delimiter,
    read_table,
)

Table = list[tuple[int, list[str] | str]]

READS: list[tuple[str, bytes, Table]] = [
    (
        "BOM, LF",
        b"\xef\xbb\xbfphone,name\n1,a\n",
        [(1, ["phone", "name"]), (2, ["1", "a"])],
    ),
    (
        "CRLF, no final line ending",
        b"phone,name\r\n1,a\r\n2,b",
        [(1, ["phone", "name"]), (2, ["1", "a"]), (3, ["2", "b"])],
    ),
    (
        "quoted delimiter, doubled quote, line breaks inside quotes (one row each)",
        b'phone,note\n1,"a, ""b""\nc\r\nd"\n2,x\n',
        [(1, ["phone", "note"]), (2, ["1", 'a, "b"\nc\r\nd']), (3, ["2", "x"])],
    ),
    (
        "semicolons, commas inside cells left alone",
        b"phone;name;note\n1;Smith, J;x\n",
        [(1, ["phone", "name", "note"]), (2, ["1", "Smith, J", "x"])],
    ),
    (
        "tabs",
        b'phone\tname\n1\t"a\tb"\n',
        [(1, ["phone", "name"]), (2, ["1", "a\tb"])],
    ),
    (
        "blank lines skipped but counted as rows",
        b"phone,name\n\n1,a\r\n\r\n\n2,b\n\n",
        [(1, ["phone", "name"]), (3, ["1", "a"]), (6, ["2", "b"])],
    ),
    (
        "ragged rows come out as they are",
        b"phone,a,b\n1\n1,2,3,4\n",
        [(1, ["phone", "a", "b"]), (2, ["1"]), (3, ["1", "2", "3", "4"])],
    ),
    (
        "bytes that are not UTF-8 fail their row only",
        b"phone,name\n1,caf\xe9\n2,caf\xc3\xa9\n",
        [(1, ["phone", "name"]), (2, "the row is not valid UTF-8 text"), (3, ["2", "café"])],
    ),
    (
        "a quote inside an unquoted cell is a character (5'11\")",
        b"phone,height\n1,5'11\"\n2,6'0\"\n",
        [(1, ["phone", "height"]), (2, ["1", "5'11\""]), (3, ["2", "6'0\""])],
    ),
    (
        "text after a closing quote runs to the delimiter",
        b'phone,a,b\n1,"x"y"z,w\n',
        [(1, ["phone", "a", "b"]), (2, ["1", 'xy"z', "w"])],
    ),
    (
        "a quote never closed fails the rest as one row",
        b'phone,a\n1,ok\n2,"open\n3,x\n',
        [(1, ["phone", "a"]), (2, ["1", "ok"]), (3, "a quoted cell is never closed")],
    ),
    (
        "a header whose quoted names hold line breaks and the other delimiters",
        b'"phone";"a,b\nc";x\n1;2;3\n',
        [(1, ["phone", "a,b\nc", "x"]), (2, ["1", "2", "3"])],
    ),
    ("empty", b"", []),
    ("a BOM only", b"\xef\xbb\xbf", []),
]


def _chunked(data: bytes, size: int) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)] or [b""]


@pytest.mark.parametrize(("data", "expected"), [c[1:] for c in READS], ids=[c[0] for c in READS])
@pytest.mark.parametrize("size", [1, 2, 3, 7, 1 << 20])
def test_reader_reads_files_as_spreadsheets_write_them(
    data: bytes, expected: Table, size: int
) -> None:
    assert read_table(_chunked(data, size)) == expected


@pytest.mark.parametrize(
    ("header", "delimiter"),
    [
        (b"phone,first_name,last_name", ","),
        (b"phone;first_name;last_name", ";"),
        (b"phone\tfirst_name\tlast_name", "\t"),
        (b'phone;"a,b,c";x', ";"),  # commas inside quotes do not count
        (b"phone", ","),
        (b"phone,a;b", ","),  # a tie: the comma
        (b"phone\ta;b", ";"),  # ties: comma, then semicolon, then tab
    ],
)
def test_delimiter_is_the_one_the_header_has_most_of_outside_quotes(
    header: bytes, delimiter: str
) -> None:
    assert detect_delimiter(header) == delimiter


def test_a_record_longer_than_the_limit_fails_alone_and_the_next_ones_read() -> None:
    reader = RecordReader(max_record=64)
    data = b"phone,a\n1," + b"x" * 200 + b'\n2,y\n3,"' + b"z\n" * 50 + b'"\n4,w\n'
    records: list[Record] = []
    for piece in _chunked(data, 16):
        records += reader.feed(piece)
    records += reader.finish()
    got = [(r.row, cells(r, ",")) for r in records if r.data or r.problem]
    assert got[:3] == [(1, ["phone", "a"]), (2, "the row is longer than 0 KiB"), (3, ["2", "y"])]
    # A quoted cell past the limit: the record fails, the reader follows it to its end.
    assert got[3:] == [(4, "the row is longer than 0 KiB"), (5, ["4", "w"])]


# A table as csv.writer writes it: the header is fixed (the delimiter is read from it), the
# rows are any text; a lone CR is left out (csv.writer leaves it unquoted with LF endings,
# and no reader can tell it from a line ending).
CELL = st.text(st.characters(exclude_categories=["Cs"], exclude_characters="\r"), max_size=12)
ROW = st.lists(CELL, min_size=1, max_size=5).filter(lambda r: r != [""])


@given(
    rows=st.lists(ROW, max_size=12),
    delimiter=st.sampled_from([",", ";", "\t"]),
    ending=st.sampled_from(["\n", "\r\n"]),
    bom=st.booleans(),
    cuts=st.lists(st.integers(min_value=1, max_value=40), max_size=30),
)
@settings(max_examples=300, deadline=None)
def test_what_csv_writer_writes_reads_back_in_any_chunking(
    rows: list[list[str]], delimiter: str, ending: str, bom: bool, cuts: list[int]
) -> None:
    header = ["phone", "first_name", "x y"]
    out = io.StringIO()
    writer = csv.writer(out, delimiter=delimiter, lineterminator=ending)
    writer.writerow(header)
    writer.writerows(rows)
    data = (b"\xef\xbb\xbf" if bom else b"") + out.getvalue().encode()
    chunks: list[bytes] = []
    at = 0
    for cut in cuts:
        chunks.append(data[at : at + cut])
        at += cut
    chunks.append(data[at:])
    table = read_table(chunks)
    assert table == [(i + 1, r) for i, r in enumerate([header, *rows])]


def _header(*names: str) -> Header:
    return Header.parse(Record(1, ",".join(names).encode()), ",")


@pytest.mark.parametrize(
    ("names", "message"),
    [
        (("name", "email"), "no `phone` column"),
        (("phone", "Mobile"), "name the same value"),
        (("Phone Number", "x", "x"), "name the same value"),
        (("phone", "a" * 65), "1–64 printable characters"),
        (("phone", "a\x07b"), "1–64 printable characters"),
        (("phone", *(f"c{i}" for i in range(51))), "at most 50 columns besides"),
    ],
)
def test_a_header_without_a_phone_column_or_with_a_column_twice_is_refused(
    names: tuple[str, ...], message: str
) -> None:
    with pytest.raises(CsvError, match=message) as caught:
        _header(*names)
    assert caught.value.code == "INVALID_CSV"


def test_header_names_match_any_case_with_spaces_or_dashes_and_others_are_fields() -> None:
    header = _header(" Mobile ", "First Name", "LAST-NAME", "E-Mail", "eMail", " Shoe size ", "")
    assert (header.phone, header.first_name, header.last_name, header.email) == (0, 1, 2, 4)
    # "E-Mail" is not "email": it is kept as written, like any other column.
    assert header.custom == ((3, "E-Mail"), (5, "Shoe size"))
    assert header.width == 7


BAD_EMAIL = "`email` must be an email address like name@example.com (at most 254 characters)"
HEADER = ("phone", "first_name", "last_name", "email", "city")


@pytest.mark.parametrize(
    ("cells_", "expected"),
    [
        (
            [" (415) 555-2671 ", " Ada ", "", "ada@example.com", "Accra"],
            ContactRow(2, "+14155552671", "Ada", None, "ada@example.com", {"city": "Accra"}),
        ),
        (
            ["+233 20 123 4567", "", "", "", ""],
            ContactRow(2, "+233201234567", None, None, None, {}),
        ),
        (["", "", " ", "", ""], None),
        (["", ""], None),
        (["12", "A", "", "", ""], [RowError(2, "phone", "'12' is not a valid phone number")]),
        (["", "A", "", "", ""], [RowError(2, "phone", "a phone number is required")]),
        (
            ["4155552671", "x" * 101, "", "not-an-email", "c" * (MAX_FIELD_VALUE + 1)],
            [
                RowError(2, "first_name", "`first_name` must be at most 100 storable characters"),
                RowError(2, "email", BAD_EMAIL),
                RowError(2, "city", "`city` must be at most 500 storable characters"),
            ],
        ),
        (
            ["4155552671", "a\x00b", "", "a@b", ""],
            [
                RowError(2, "first_name", "`first_name` must be at most 100 storable characters"),
                RowError(2, "email", BAD_EMAIL),
            ],
        ),
        (
            ["4155552671", "", "", "", "", "extra"],
            [RowError(2, None, "the row has 6 cells, the header 5")],
        ),
        (["4155552671"], [RowError(2, None, "the row has 1 cells, the header 5")]),
    ],
)
def test_row_to_contact(cells_: list[str], expected: ContactRow | list[RowError] | None) -> None:
    assert _header(*HEADER).contact(2, cells_, "US") == expected


def test_a_batch_holds_each_phone_once_the_later_row_updating_the_earlier() -> None:
    batch = Batch()
    batch.add(ContactRow(2, "+1", "Ada", "L", None, {"a": "1", "b": "1"}))
    batch.add(ContactRow(3, "+2", None, None, None, {}))
    batch.add(ContactRow(4, "+1", "Bea", None, "b@x.io", {"b": "2"}))
    assert len(batch) == 3 and batch.repeats == 1
    assert batch.columns() == (
        ["+1", "+2"],
        ["Bea", None],
        ["L", None],
        ["b@x.io", None],
        ['{"a": "1", "b": "2"}', "{}"],
    )


@given(
    header=st.sampled_from([b"phone,first_name,email,x\n", b"Mobile;x\r\n", b'"phone"\t"a"\n']),
    body=st.binary(max_size=300),
    size=st.integers(min_value=1, max_value=64),
)
@settings(max_examples=300, deadline=None)
def test_any_bytes_after_a_header_give_each_row_a_contact_a_problem_or_nothing(
    header: bytes, body: bytes, size: int
) -> None:
    reader = RecordReader(max_record=100)
    records: list[Record] = []
    for piece in _chunked(header + body, size):
        records += reader.feed(piece)
    records += reader.finish()
    assert reader.delimiter is not None
    parsed = Header.parse(records[0], reader.delimiter)
    rows = [r.row for r in records]
    assert rows == list(range(1, len(records) + 1))  # every record numbered, in order
    for record in records[1:]:
        values = cells(record, reader.delimiter)
        if isinstance(values, str):
            continue
        got = parsed.contact(record.row, values, "US")
        if isinstance(got, list):
            assert got and all(e.row == record.row for e in got)
        elif got is not None:
            assert got.phone.startswith("+") and got.row == record.row
