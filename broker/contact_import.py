"""Importing contacts from a CSV file: the one loop the API route and the operator CLI share.

The file arrives as chunks (a request body, a file read piece by piece) and is never held
whole: records are parsed a slice at a time, with the event loop free between slices, and
written a batch at a time, one statement per batch (broker.store.contact_import). While one
batch is being written the next one is parsed.

A bad row fails alone with its row number; the good ones are imported. So does a row that
would take its contact past MAX_FIELDS custom fields once merged with the stored ones: the
statement refuses it (the merged result is what the cap applies to). The whole import is
one transaction, so a file refused as a whole (no header, too large, the client gone) changes
nothing, and a group given is locked so it cannot disappear half way.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterable
from dataclasses import dataclass, field
from uuid import UUID

import asyncpg

from broker.contacts import MAX_FIELDS
from broker.contacts_csv import Batch, CsvError, Header, Record, RecordReader, RowError, cells
from broker.errors import NotFound
from broker.store import Db
from broker.store import contact_import as store

#: Rows per statement: large enough that PostgreSQL's per-statement cost vanishes.
BATCH_ROWS = 5000
#: Rows parsed in one go before the event loop gets a turn: about 5 ms of work, so that
#: even with a full garbage collection landing in it the loop waits well under 50 ms.
SLICE_ROWS = 250
#: Bytes the reader takes at once, whatever size the chunks come in.
PIECE_BYTES = 64 * 1024
#: Errors listed in an answer; beyond them only ``errors_truncated`` says there were more.
MAX_ERRORS = 1000


@dataclass
class ImportResult:
    created: int = 0
    updated: int = 0
    failed: int = 0
    errors: list[RowError] = field(default_factory=list)
    errors_truncated: bool = False

    def fail(self, problems: list[RowError]) -> None:
        self.failed += 1
        room = MAX_ERRORS - len(self.errors)
        self.errors.extend(problems[:room])
        if len(problems) > room:
            self.errors_truncated = True


def too_many_fields(refused: store.Refused) -> str:
    """Why a row was refused for its contact's field count, in the words of the answer."""
    if refused.has is None or refused.would_have is None:
        return f"the contact would have more than {MAX_FIELDS} fields; the row was not imported"
    return (
        f"the contact would have {refused.would_have} fields, more than {MAX_FIELDS} (it has"
        f" {refused.has}, this file adds {refused.would_have - refused.has}); the row was not"
        " imported"
    )


async def account_region(db: Db, account_id: UUID) -> str:
    """The region an account's numbers are read in; NotFound for an unknown account."""
    region = await store.account_region(db, account_id)
    if region is None:
        raise NotFound(f"account {account_id} not found")
    return region


async def import_csv(
    conn: asyncpg.Connection,
    account_id: UUID,
    region: str,
    chunks: AsyncIterable[bytes],
    *,
    group_id: UUID | None = None,
) -> ImportResult:
    """Import the CSV ``chunks`` make up into the account's contacts (and ``group_id``).

    NotFound for a group the account does not have, checked before the first chunk is read;
    CsvError (INVALID_CSV) for a file without a usable header row.
    """
    async with conn.transaction():
        if group_id is not None and not await store.lock_group(conn, account_id, group_id):
            raise NotFound(f"group {group_id} not found")
        run = _Import(conn, account_id, region, group_id)
        try:
            return await run.all(chunks)
        finally:
            await run.settle_quietly()


class _Import:
    def __init__(
        self, conn: asyncpg.Connection, account_id: UUID, region: str, group_id: UUID | None
    ) -> None:
        self.conn = conn
        self.account_id = account_id
        self.region = region
        self.group_id = group_id
        self.reader = RecordReader()
        self.header: Header | None = None
        self.batch = Batch()
        self.result = ImportResult()
        #: The batch being written: its rows' numbers and repeats are counted when it is.
        self.writing: asyncio.Task[store.Written] | None = None
        self.writing_batch = Batch()

    async def all(self, chunks: AsyncIterable[bytes]) -> ImportResult:
        async for chunk in chunks:
            for start in range(0, len(chunk), PIECE_BYTES):
                await self.take(self.reader.feed(chunk[start : start + PIECE_BYTES]))
        await self.take(self.reader.finish())
        if self.header is None:
            raise CsvError(
                "the file is empty: its first row must name the columns, `phone` among them"
            )
        await self.write()
        await self.settle()
        # A refused contact's rows are known once its batch is written, after rows parsed later.
        self.result.errors.sort(key=lambda e: e.row)
        return self.result

    async def take(self, records: list[Record]) -> None:
        for start in range(0, len(records), SLICE_ROWS):
            for record in records[start : start + SLICE_ROWS]:
                self.one(record)
                if len(self.batch) >= BATCH_ROWS:
                    await self.write()
            await asyncio.sleep(0)

    def one(self, record: Record) -> None:
        if record.problem is None and not record.data.strip(b" \t"):
            return  # a blank line
        delimiter = self.reader.delimiter or ","
        if self.header is None:
            self.header = Header.parse(record, delimiter)
            return
        values = cells(record, delimiter)
        if isinstance(values, str):
            self.result.fail([RowError(record.row, None, values)])
            return
        contact = self.header.contact(record.row, values, self.region)
        if isinstance(contact, list):
            self.result.fail(contact)
        elif contact is not None:
            self.batch.add(contact)

    async def write(self) -> None:
        """Start writing the batch so far (after the one before it is written)."""
        if not len(self.batch):
            return
        batch, self.batch = self.batch, Batch()
        await self.settle()
        self.writing = asyncio.create_task(
            store.upsert(self.conn, self.account_id, batch.columns(), self.group_id, MAX_FIELDS)
        )
        self.writing_batch = batch

    async def settle(self) -> None:
        """Wait for the batch being written and count it: each row of a contact it refused
        fails (a repeat of it included)."""
        if self.writing is None:
            return
        written = await self.writing
        self.writing = None
        batch = self.writing_batch
        repeats = batch.repeats
        for refused in written.refused:
            rows = batch.rows_of(refused.phone)
            repeats -= len(rows) - 1
            message = too_many_fields(refused)
            for row in rows:
                self.result.fail([RowError(row, "fields", message)])
        self.result.created += written.created
        self.result.updated += written.updated + repeats

    async def settle_quietly(self) -> None:
        """After a failure: let a statement in flight end before the transaction rolls back."""
        if self.writing is not None:
            await asyncio.wait([self.writing])
            if not self.writing.cancelled():
                self.writing.exception()
            self.writing = None
