"""POST /v1/contacts/import: a CSV file of contacts, streamed into the account's contacts."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Final

from aiohttp import web

from api.context import POOL, caller, shared
from api.contract import Endpoints, query_of
from api.errors import ApiError
from api.schemas.contact_import import ContactImportQuery, ContactImportResult, ImportRowError
from broker import contact_import
from broker.contact_import import BATCH_ROWS
from broker.contacts import MAX_EMAIL, MAX_FIELD_KEY, MAX_FIELD_VALUE, MAX_FIELDS, MAX_NAME
from broker.db import unavailable_as_error

endpoints = Endpoints("contacts")

#: The largest file taken (client_max_size does not limit a body the handler streams).
MAX_CSV_BYTES: Final = 50 * 1024 * 1024
READ_BYTES: Final = 64 * 1024


def _too_large() -> ApiError:
    return ApiError(
        413,
        "PAYLOAD_TOO_LARGE",
        f"a CSV file may be at most {MAX_CSV_BYTES // (1024 * 1024)} MB; split it into parts",
    )


async def _body(request: web.Request) -> AsyncIterator[bytes]:
    """The request body a piece at a time; 413 once it passes MAX_CSV_BYTES."""
    if (request.content_length or 0) > MAX_CSV_BYTES:
        raise _too_large()
    size = 0
    async for chunk in request.content.iter_chunked(READ_BYTES):
        size += len(chunk)
        if size > MAX_CSV_BYTES:
            raise _too_large()
        yield chunk


@endpoints.post(
    "/v1/contacts/import",
    query=ContactImportQuery,
    raw_body="text/csv",
    raw_example="phone,first_name,last_name,email,city\n+14155552672,Ada,Lovelace,ada@example.com,London\n",
    response=ContactImportResult,
    errors=frozenset({404, 413}),
    summary="Import contacts from a CSV file",
    description=(
        "The body is a UTF-8 CSV file (`Content-Type: text/csv`, at most 50 MB). Its first"
        " row names the columns: `phone` (or `phone_number`, `mobile`) is required;"
        " `first_name`, `last_name`, `email` are known (any case, spaces or dashes for"
        " underscores); every other column goes into the contact's `fields` under its name"
        f" (at most {MAX_FIELDS} such columns, names of 1–{MAX_FIELD_KEY} characters)."
        " Cells are separated by `,`, `;` or tab (whichever the header row has most of), may"
        ' be quoted with `"` (doubled inside) and hold line breaks; empty cells are not'
        " given. Phones are read in the account's region.\n\n"
        "A phone that is not yet a contact creates one; a known phone updates it: the values"
        " given replace the stored ones, `fields` are merged. The same phone twice in a file:"
        " the later row updates the contact the earlier one made. With `group_id`, every"
        " imported contact joins that group.\n\n"
        f"A contact keeps at most {MAX_FIELDS} fields: a row whose fields, merged with the"
        " stored ones, would pass that fails (`field`: `fields`) and nothing of it is written;"
        f" the file is written {BATCH_ROWS:,} rows at a time, and the rows of one phone in"
        " such a block fail together.\n\n"
        f"A row with a bad phone or email, the wrong number of cells, a value too long"
        f" (names {MAX_NAME}, email {MAX_EMAIL}, field values {MAX_FIELD_VALUE} characters)"
        " or text that is not UTF-8 fails alone and is listed in `errors` by its row number"
        " (the header is row 1); the other rows are imported. A file without a header row"
        " or without a phone column is refused whole with 400 `INVALID_CSV`."
    ),
)
async def import_contacts(request: web.Request) -> ContactImportResult:
    who = caller(request)
    query = query_of(request, ContactImportQuery)
    async with unavailable_as_error(), shared(request)[POOL].acquire() as conn:
        result = await contact_import.import_csv(
            conn, who.account_id, who.region, _body(request), group_id=query.group_id
        )
    return ContactImportResult(
        created=result.created,
        updated=result.updated,
        failed=result.failed,
        errors=[ImportRowError(row=e.row, field=e.field, message=e.message) for e in result.errors],
        errors_truncated=result.errors_truncated,
    )
