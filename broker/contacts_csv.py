"""Contacts from a CSV file: a streamed reader and the row → contact mapping. Pure: no I/O.

The reader takes the file in chunks of any size and hands back complete records, so an
import never holds more than a chunk and a batch of rows. It works on bytes: the quote and
the delimiters are ASCII, which never occur inside a multi-byte UTF-8 sequence, so a record
is found before it is decoded, and a record that is not UTF-8 fails alone.

Rows are numbered as a spreadsheet shows the file: every record is a row (blank lines too,
and a record whose quoted cells span several lines is one row), the first one is row 1.

CSV as spreadsheets write it: a header row, ``,`` ``;`` or tab (the one the header line has
most of outside quotes), cells quoted with ``"`` (doubled inside) when they hold the
delimiter, a quote or a line break; CRLF or LF; a leading UTF-8 BOM. A quote that does not
open a cell is an ordinary character, as Python's csv module reads it.
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Final

from broker.contacts import (
    MAX_FIELD_KEY,
    MAX_FIELD_VALUE,
    MAX_FIELDS,
    MAX_PHONE_INPUT,
    parse_email,
    parse_name,
)
from broker.errors import InputError
from broker.phone import to_e164
from broker.text import has_unstorable

BOM: Final = b"\xef\xbb\xbf"
DELIMITERS: Final = (",", ";", "\t")
#: A record longer than this fails alone; the reader never buffers more for one record.
MAX_RECORD_BYTES: Final = 1024 * 1024


#: Header spellings of the known columns (after lower-casing, spaces and dashes as ``_``).
KNOWN_COLUMNS: Final = {
    "phone": "phone",
    "phone_number": "phone",
    "mobile": "phone",
    "first_name": "first_name",
    "last_name": "last_name",
    "email": "email",
}

#: The rest of a quoted cell from inside it: anything but a quote, or a doubled quote.
_QUOTED_REST = re.compile(rb'(?:[^"]+|"")*')
#: Quoted stretches of the header line, removed before its delimiters are counted.
_QUOTED_STRETCH = re.compile(rb'"(?:[^"]|"")*"?')


#: broker.phone.to_e164 without its cache: an import's numbers are each seen about once, and
#: caching them would only evict the numbers the send path reuses and leave tens of thousands
#: of cache entries for the garbage collector to walk in every full collection.
_e164: Callable[[str, str], str | None] = to_e164.__wrapped__


class CsvError(InputError):
    """The file as a whole cannot be read (no header, no phone column): nothing is imported."""

    def __init__(self, message: str) -> None:
        super().__init__(message, code="INVALID_CSV")


@dataclass(frozen=True, slots=True)
class Record:
    """One record as it came (without its line ending), or why it could not be taken."""

    row: int
    data: bytes
    problem: str | None = None


@dataclass(frozen=True, slots=True)
class RowError:
    row: int
    field: str | None
    message: str


@dataclass(frozen=True, slots=True)
class ContactRow:
    """One valid row: the values given (None: the cell was empty) and its custom fields."""

    row: int
    phone: str
    first_name: str | None
    last_name: str | None
    email: str | None
    fields: dict[str, str]


def detect_delimiter(header: bytes) -> str:
    """The delimiter the header line has most of outside quotes; ``,`` when it has none."""
    bare = _QUOTED_STRETCH.sub(b"", header)
    counts = [(bare.count(d.encode()), -i) for i, d in enumerate(DELIMITERS)]
    best, at = max(counts)
    return DELIMITERS[-at] if best else ","


def _ends_quoted(line: bytes, delimiter: int, quoted: bool) -> bool:
    """Whether a record is still inside a quoted cell at the end of ``line``.

    ``quoted``: whether the line starts inside one (a continuation). A quote opens a cell
    only as its first character; once closed, the cell runs as plain text to the delimiter.
    """
    end = len(line)
    pos = 0
    if quoted:
        pos = _QUOTED_REST.match(line, pos).end()  # type: ignore[union-attr]
        if pos == end:
            return True
        pos = line.find(delimiter, pos + 1)
        if pos < 0:
            return False
        pos += 1
    while True:
        if pos < end and line[pos] == 0x22:
            pos = _QUOTED_REST.match(line, pos + 1).end()  # type: ignore[union-attr]
            if pos == end:
                return True
            pos += 1
        pos = line.find(delimiter, pos)
        if pos < 0:
            return False
        pos += 1


@dataclass
class RecordReader:
    """Bytes in any chunking → complete records, in order, each with its row number.

    The first record is the header; its line sets the delimiter, which the rest is split by.
    Empty lines come out as records with empty ``data`` (they are rows a spreadsheet shows).
    """

    max_record: int = MAX_RECORD_BYTES
    delimiter: str | None = None
    _row: int = 0
    _started: bool = False
    _tail: bytes = b""
    #: The lines of a record still inside a quoted cell, and their size.
    _parts: list[bytes] = field(default_factory=list)
    _size: int = 0
    #: Dropping a line too long to keep, up to its end.
    _skipping: bool = False
    #: Dropping the rest of a record too long to keep (its quotes still followed).
    _discarding: bool = False

    def feed(self, chunk: bytes) -> list[Record]:
        if not self._started:
            self._tail += chunk
            if len(self._tail) < len(BOM) and BOM.startswith(self._tail):
                return []
            self._started = True
            chunk = self._tail[3:] if self._tail.startswith(BOM) else self._tail
            self._tail = b""
        out: list[Record] = []
        lines = chunk.split(b"\n")
        lines[0] = self._tail + lines[0]
        self._tail = lines.pop()
        for line in lines:
            self._line(line, out)
        if len(self._tail) + self._size > self.max_record:
            if not self._skipping and not self._discarding:
                self._too_long(out)
            self._tail = b""
            self._skipping = True
        return out

    def finish(self) -> list[Record]:
        """The records left at the end of the input (a last line without a line ending)."""
        if not self._started:
            return []  # nothing, or the start of a BOM only
        out: list[Record] = []
        if self._tail or self._skipping:
            line, self._tail = self._tail, b""
            self._line(line, out)
        if self._parts:
            self._row += 1
            out.append(Record(self._row, b"", "a quoted cell is never closed"))
            self._parts, self._size = [], 0
        self._discarding = False
        return out

    def _too_long(self, out: list[Record]) -> None:
        self._row += 1
        limit = self.max_record // 1024
        out.append(Record(self._row, b"", f"the row is longer than {limit} KiB"))
        self._parts, self._size = [], 0

    def _line(self, line: bytes, out: list[Record]) -> None:
        if self._skipping:
            self._skipping = False
            return
        if self.delimiter is None:
            self._header_line(line, out)
            return
        quoted = bool(self._parts) or self._discarding
        if not quoted and b'"' not in line:
            self._row += 1
            out.append(Record(self._row, line[:-1] if line.endswith(b"\r") else line))
            return
        if _ends_quoted(line, ord(self.delimiter), quoted):
            if not self._discarding:
                self._parts.append(line)
                self._size += len(line) + 1
                if self._size > self.max_record:
                    self._too_long(out)
                    self._discarding = True
            return
        if self._discarding:
            self._discarding = False
            return
        self._parts.append(line[:-1] if line.endswith(b"\r") else line)
        self._row += 1
        out.append(Record(self._row, b"\n".join(self._parts)))
        self._parts, self._size = [], 0

    def _header_line(self, line: bytes, out: list[Record]) -> None:
        """Lines up to the header: its quotes pair up (the delimiter is not known yet)."""
        self._parts.append(line)
        self._size += len(line) + 1
        if b"".join(self._parts).count(b'"') % 2:
            if self._size > self.max_record:
                self._too_long(out)
            return
        self._parts[-1] = line[:-1] if line.endswith(b"\r") else line
        record = b"\n".join(self._parts)
        self._parts, self._size = [], 0
        self._row += 1
        if record.strip(b" \t"):
            self.delimiter = detect_delimiter(record)
        out.append(Record(self._row, record))


def cells(record: Record, delimiter: str) -> list[str] | str:
    """The record's cells, or why it has none (unreadable, not UTF-8, not CSV)."""
    if record.problem is not None:
        return record.problem
    try:
        text = record.data.decode()
    except UnicodeDecodeError:
        return "the row is not valid UTF-8 text"
    if '"' not in text and "\r" not in text:
        return text.split(delimiter)
    try:
        return next(csv.reader((text,), delimiter=delimiter, strict=False), [])
    except csv.Error as exc:
        return f"the row cannot be read as CSV: {exc}"


def read_table(chunks: Iterable[bytes]) -> list[tuple[int, list[str] | str]]:
    """A whole file's records (header included) as cells: for tests and small files."""
    reader = RecordReader()
    records: list[Record] = []
    for chunk in chunks:
        records += reader.feed(chunk)
    records += reader.finish()
    delimiter = reader.delimiter or ","
    return [(r.row, cells(r, delimiter)) for r in records if r.data or r.problem]


def _key(name: str) -> str:
    return name.strip().lower().replace(" ", "_").replace("-", "_")


@dataclass(frozen=True)
class Header:
    """Which cell of a row is which: the known columns by index, the rest by their name."""

    width: int
    phone: int
    first_name: int | None
    last_name: int | None
    email: int | None
    #: (index, name as written, trimmed) of every custom column.
    custom: tuple[tuple[int, str], ...]

    @classmethod
    def parse(cls, record: Record, delimiter: str) -> Header:
        """The header row; CsvError when it is missing, unreadable or has no phone column."""
        names = cells(record, delimiter)
        if isinstance(names, str):
            raise CsvError(f"the header row cannot be read: {names}")
        known: dict[str, int] = {}
        custom: list[tuple[int, str]] = []
        seen: dict[str, str] = {}
        for index, raw in enumerate(names):
            name = raw.strip()
            if not name:
                continue  # a column without a name (a trailing delimiter) is left out
            if len(name) > MAX_FIELD_KEY or not name.isprintable() or has_unstorable(name):
                raise CsvError(
                    f"column {index + 1}: a column name must be 1–{MAX_FIELD_KEY} printable"
                    " characters"
                )
            column = KNOWN_COLUMNS.get(_key(name))
            ident = column or f"fields.{name}"
            if ident in seen:
                raise CsvError(f"columns {seen[ident]!r} and {name!r} name the same value")
            seen[ident] = name
            if column is not None:
                known[column] = index
            else:
                custom.append((index, name))
        if len(custom) > MAX_FIELDS:
            raise CsvError(
                f"at most {MAX_FIELDS} columns besides phone, first_name, last_name and email"
                f" (a contact's fields), got {len(custom)}"
            )
        if "phone" not in known:
            raise CsvError(
                "the header row has no `phone` column (also accepted: phone_number, mobile);"
                " the first row of the file must name the columns"
            )
        return cls(
            width=len(names),
            phone=known["phone"],
            first_name=known.get("first_name"),
            last_name=known.get("last_name"),
            email=known.get("email"),
            custom=tuple(custom),
        )

    def contact(
        self, row: int, values: list[str], region: str
    ) -> ContactRow | list[RowError] | None:
        """The row's contact, or every problem it has; None for a row of empty cells only."""
        if not any(v.strip() for v in values):
            return None
        if len(values) != self.width:
            return [
                RowError(row, None, f"the row has {len(values)} cells, the header {self.width}")
            ]
        problems: list[RowError] = []
        raw_phone = values[self.phone].strip()
        phone = _e164(raw_phone, region) if 0 < len(raw_phone) <= MAX_PHONE_INPUT else None
        if phone is None:
            problems.append(
                RowError(
                    row,
                    "phone",
                    f"{raw_phone[:MAX_PHONE_INPUT]!r} is not a valid phone number"
                    if raw_phone
                    else "a phone number is required",
                )
            )
        first_name = _checked(row, values, self.first_name, "first_name", problems)
        last_name = _checked(row, values, self.last_name, "last_name", problems)
        email = _checked(row, values, self.email, "email", problems)
        fields: dict[str, str] = {}
        for index, name in self.custom:
            value = values[index].strip()
            if not value:
                continue
            if len(value) > MAX_FIELD_VALUE or has_unstorable(value):
                message = f"`{name}` must be at most {MAX_FIELD_VALUE} storable characters"
                problems.append(RowError(row, name, message))
            fields[name] = value
        if problems or phone is None:
            return problems
        return ContactRow(row, phone, first_name, last_name, email, fields)


def _checked(
    row: int, values: list[str], index: int | None, name: str, problems: list[RowError]
) -> str | None:
    """A known column's cell as the contacts API checks it (None: empty or no column)."""
    if index is None:
        return None
    try:
        if name == "email":
            return parse_email(values[index])
        return parse_name(values[index], field=name)
    except InputError as exc:
        problems.append(RowError(row, name, exc.message))
        return None


@dataclass
class Batch:
    """Valid rows merged by phone, as one statement writes them: the same number twice in
    a file is one contact, its later row updating the earlier (later non-empty values win).

    Kept as columns of text, not an object per row: strings and dicts of strings are not
    tracked by the garbage collector, so a batch waiting to be written adds nothing to the
    full collections that would otherwise stall the event loop once per batch or two.
    """

    #: Phone → its position in the columns.
    at: dict[str, int] = field(default_factory=dict)
    first_names: list[str | None] = field(default_factory=list)
    last_names: list[str | None] = field(default_factory=list)
    emails: list[str | None] = field(default_factory=list)
    fields: list[dict[str, str]] = field(default_factory=list)
    #: The row each number came from first, and (only for numbers given again) its later rows:
    #: a contact the statement refuses fails with every row that made it.
    rows: list[int] = field(default_factory=list)
    later_rows: dict[int, list[int]] = field(default_factory=dict)
    #: Rows beyond the first for a number: each one is an update.
    repeats: int = 0

    def add(self, contact: ContactRow) -> None:
        i = self.at.get(contact.phone)
        if i is None:
            self.at[contact.phone] = len(self.first_names)
            self.first_names.append(contact.first_name)
            self.last_names.append(contact.last_name)
            self.emails.append(contact.email)
            self.fields.append(contact.fields)
            self.rows.append(contact.row)
            return
        self.repeats += 1
        self.later_rows.setdefault(i, []).append(contact.row)
        self.first_names[i] = contact.first_name or self.first_names[i]
        self.last_names[i] = contact.last_name or self.last_names[i]
        self.emails[i] = contact.email or self.emails[i]
        self.fields[i] = {**self.fields[i], **contact.fields}

    def __len__(self) -> int:
        return len(self.at) + self.repeats

    def rows_of(self, phone: str) -> list[int]:
        """The rows of the file this number's values came from, in order."""
        i = self.at[phone]
        return [self.rows[i], *self.later_rows.get(i, ())]

    def columns(
        self,
    ) -> tuple[list[str], list[str | None], list[str | None], list[str | None], list[str]]:
        """The batch as arrays for unnest: phones, first and last names, emails, fields (JSON)."""
        dumps = json.dumps
        return (
            list(self.at),
            self.first_names,
            self.last_names,
            self.emails,
            [dumps(f) for f in self.fields],
        )
