"""A contact has at most 50 custom fields however they are written (broker.contacts.MAX_FIELDS).

Each request is checked alone, and an import merges a row's fields into the stored ones, so
the merged result is what must hold the cap: a row that would take its contact past it fails
alone and the others import; a PATCH that would leave a contact over it is a 400 that changes
nothing. The database backs it (sql/017_contact_fields_cap.sql), and that migration applies
over contacts already past the cap without touching them. All over the real API and database.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from broker.config import Settings
from broker.contact_import import BATCH_ROWS
from broker.contacts import MAX_FIELDS
from broker.contacts_csv import Batch, ContactRow
from broker.migrate import MIGRATIONS_DIR, migrate, migration_files
from tests.conftest import PG_ADMIN_DSN, PG_BASE
from tests.harness import (
    ApiAccount,
    Client,
    add_contact,
    api_account,
    api_call,
    api_client,
    phone,
    snapshot,
)

MIGRATION = MIGRATIONS_DIR / "017_contact_fields_cap.sql"
CONSTRAINT = "contacts_fields_cap"


@pytest.fixture(scope="module")
async def client(settings: Settings) -> AsyncIterator[Client]:
    async with api_client(settings) as c:
        yield c


async def upload(client: Client, who: ApiAccount, body: str) -> Any:
    status, answer = await api_call(
        client,
        "POST",
        "/v1/contacts/import",
        who,
        data=body.encode(),
        headers={"Content-Type": "text/csv"},
    )
    assert status == 200, answer
    return answer


def csv(columns: list[str], rows: list[dict[str, str]]) -> str:
    """A file with these columns; a column a row does not name is an empty cell."""
    lines = [",".join(columns)] + [",".join(row.get(c, "") for c in columns) for row in rows]
    return "\n".join(lines) + "\n"


def named(prefix: str, n: int, start: int = 0) -> dict[str, str]:
    return {f"{prefix}{i}": f"v{i}" for i in range(start, start + n)}


async def stored(pool: asyncpg.Pool, who: ApiAccount) -> dict[str, tuple[str | None, Any]]:
    rows = await pool.fetch(
        "SELECT phone, first_name, fields FROM contacts WHERE account_id = $1", who.id
    )
    return {r["phone"]: (r["first_name"], json.loads(r["fields"])) for r in rows}


def too_many(total: int, has: int) -> str:
    return (
        f"the contact would have {total} fields, more than {MAX_FIELDS} (it has {has}, this"
        f" file adds {total - has}); the row was not imported"
    )


async def test_an_import_that_would_take_a_contact_past_the_cap_fails_that_row_alone(
    client: Client, pool: asyncpg.Pool
) -> None:
    who = await api_account(pool)
    a, b, c = "4155550100", "4155550101", "4155550102"
    f30, g30 = named("f", 30), named("g", 30)
    first = await upload(
        client, who, csv(["phone", *f30], [{"phone": a, **f30}, {"phone": b, **f30}])
    )
    assert first["created"] == 2, first

    # 30 new fields more for A (60: refused), 20 for B (50, the most: taken), 30 for a new C.
    rows = [
        {"phone": a, "first_name": "Ann", **g30},
        {"phone": b, "first_name": "Bob", **named("g", 20)},
        {"phone": c, "first_name": "Cy", **g30},
    ]
    body = await upload(client, who, csv(["phone", "first_name", *g30], rows))
    assert body == {
        "created": 1,
        "updated": 1,
        "failed": 1,
        "errors": [{"row": 2, "field": "fields", "message": too_many(60, 30)}],
        "errors_truncated": False,
    }
    assert await stored(pool, who) == {
        "+14155550100": (None, f30),  # nothing of its row: not the name either
        "+14155550101": ("Bob", {**f30, **named("g", 20)}),
        "+14155550102": ("Cy", g30),
    }

    # New values for fields it has add no field: B, at the cap, still takes them.
    body = await upload(
        client, who, csv(["phone", "f0", "g0"], [{"phone": b, "f0": "x", "g0": "y"}])
    )
    assert (body["updated"], body["failed"]) == (1, 0), body
    assert (await stored(pool, who))["+14155550101"][1] == {
        **f30,
        **named("g", 20),
        "f0": "x",
        "g0": "y",
    }
    # The same file again: the refused row is refused again, the others update.
    body = await upload(client, who, csv(["phone", "first_name", *g30], rows))
    assert (body["created"], body["updated"], body["failed"]) == (0, 2, 1), body


async def test_every_row_of_a_refused_contact_is_listed_in_any_batch(
    client: Client, pool: asyncpg.Pool
) -> None:
    """Rows of one number written in one statement stand or fall together; a later batch
    sees what the earlier ones stored."""
    who = await api_account(pool)
    a, b = "4155550110", "4155550111"
    f30, g30 = named("f", 30), named("g", 30)
    await upload(client, who, csv(["phone", *f30], [{"phone": a, **f30}, {"phone": b, **f30}]))
    fillers = [{"phone": f"41566{i:05d}"} for i in range(BATCH_ROWS)]
    rows = [
        {"phone": a, **named("g", 15)},  # row 2: A, 45 fields
        {"phone": a, **named("g", 15, 15)},  # row 3: A again, 60 with row 2: both refused
        {"phone": b, **named("g", 15)},  # row 4: B, 45 fields, taken
        *fillers,  # rows 5 … BATCH_ROWS + 4: the first batch ends inside them
        {"phone": b, **named("g", 15, 15)},  # B again in the next batch: 60, refused
    ]
    body = await upload(client, who, csv(["phone", *g30], rows))
    last = BATCH_ROWS + 5
    assert body == {
        "created": BATCH_ROWS,
        "updated": 1,
        "failed": 3,
        "errors": [
            {"row": 2, "field": "fields", "message": too_many(60, 30)},
            {"row": 3, "field": "fields", "message": too_many(60, 30)},
            {"row": last, "field": "fields", "message": too_many(60, 45)},
        ],
        "errors_truncated": False,
    }
    contacts = await stored(pool, who)
    assert contacts["+14155550110"] == (None, f30)
    assert contacts["+14155550111"] == (None, {**f30, **named("g", 15)})


def test_a_batch_knows_every_row_each_number_came_from() -> None:
    batch = Batch()
    for row, number, fields in [
        (2, "+14155550100", {"a": "1"}),
        (3, "+14155550101", {}),
        (5, "+14155550100", {"b": "2"}),
        (9, "+14155550100", {"a": "3"}),
    ]:
        batch.add(ContactRow(row, number, None, None, None, fields))
    assert (batch.rows_of("+14155550100"), batch.rows_of("+14155550101")) == ([2, 5, 9], [3])
    assert (len(batch), batch.repeats) == (4, 2)
    assert batch.columns()[4] == [json.dumps({"a": "3", "b": "2"}), "{}"]


async def put_over_the_cap(pool: asyncpg.Pool, contact_id: str, fields: dict[str, str]) -> None:
    """Give a contact more fields than the cap, as a contact written before sql/017 may have:
    without the constraint, which then comes back as that migration adds it."""
    async with pool.acquire() as conn, conn.transaction():
        had = await conn.fetchval("SELECT true FROM pg_constraint WHERE conname = $1", CONSTRAINT)
        await conn.execute(f"ALTER TABLE contacts DROP CONSTRAINT IF EXISTS {CONSTRAINT}")
        await conn.execute(
            "UPDATE contacts SET fields = $2::jsonb WHERE id = $1::uuid",
            contact_id,
            json.dumps(fields),
        )
        if had:
            await conn.execute(MIGRATION.read_text(encoding="utf-8"))


async def test_patch_replaces_fields_and_a_contact_over_the_cap_must_shed_some_first(
    client: Client, pool: asyncpg.Pool
) -> None:
    who = await api_account(pool)
    created = await add_contact(client, who, phone=phone(120), fields=named("f", 30))
    path = f"/v1/contacts/{created['id']}"
    # PATCH replaces the object whole: 50 new names leave 50, not 80.
    status, changed = await api_call(client, "PATCH", path, who, json={"fields": named("g", 50)})
    assert (status, changed["fields"]) == (200, named("g", 50)), changed

    over = named("h", 60)
    await put_over_the_cap(pool, created["id"], over)
    before = await snapshot(pool, who)
    # Any change that leaves its 60 fields in place would store a contact over the cap.
    for change in ({"first_name": "Ada"}, {"phone": phone(121)}, {"fields": over}):
        status, body = await api_call(client, "PATCH", path, who, json=change)
        assert status == 400, (change, body)
        assert (body["error"]["code"], body["error"]["field"]) == ("INVALID_FIELDS", "fields")
        assert str(MAX_FIELDS) in body["error"]["message"]
    assert await snapshot(pool, who) == before
    # An import row for it is refused alone, like a merge past the cap.
    body = await upload(
        client,
        who,
        csv(
            ["phone", "first_name"],
            [{"phone": phone(120), "first_name": "Ada"}, {"phone": phone(122)}],
        ),
    )
    assert (body["created"], body["updated"], body["failed"]) == (1, 0, 1), body
    assert body["errors"] == [{"row": 2, "field": "fields", "message": too_many(60, 60)}]
    # Fields given with the change replace them: then it is within the cap again.
    status, changed = await api_call(
        client, "PATCH", path, who, json={"first_name": "Ada", "fields": named("h", 10)}
    )
    assert status == 200, changed
    assert (changed["first_name"], changed["fields"]) == ("Ada", named("h", 10))


async def test_the_database_refuses_a_contact_over_the_cap_from_any_writer(
    pool: asyncpg.Pool,
) -> None:
    who = await api_account(pool)
    insert = (
        "INSERT INTO contacts (account_id, phone, fields) VALUES ($1, $2, $3::jsonb) RETURNING id"
    )
    at_cap = await pool.fetchval(insert, who.id, phone(130), json.dumps(named("f", MAX_FIELDS)))
    with pytest.raises(asyncpg.CheckViolationError) as refused:
        await pool.execute(insert, who.id, phone(131), json.dumps(named("f", MAX_FIELDS + 1)))
    assert refused.value.constraint_name == CONSTRAINT
    with pytest.raises(asyncpg.CheckViolationError):
        await pool.execute(
            'UPDATE contacts SET fields = fields || \'{"one_more": "x"}\' WHERE id = $1', at_cap
        )


async def test_the_migration_keeps_contacts_already_over_the_cap(tmp_path: Path) -> None:
    """Applied to a database whose contacts went past the cap before it, the migration
    succeeds and changes none of them; new rows are checked from then on."""
    name = f"smsb_cap_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(PG_ADMIN_DSN)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        dsn = f"{PG_BASE}/{name}"
        earlier = [p for p in migration_files() if p.name < MIGRATION.name]
        for path in earlier:
            (tmp_path / path.name).write_bytes(path.read_bytes())
        await migrate(dsn, tmp_path)
        conn = await asyncpg.connect(dsn)
        try:
            account = await conn.fetchval(
                "INSERT INTO accounts (name, webhook_secret) VALUES ('cap', 's') RETURNING id"
            )
            over = json.dumps(named("f", 80))
            await conn.execute(
                "INSERT INTO contacts (account_id, phone, fields) VALUES ($1, $2, $3::jsonb)",
                account,
                phone(140),
                over,
            )
            assert await migrate(dsn) == [MIGRATION.name]
            kept = await conn.fetchval("SELECT fields::text FROM contacts")
            assert json.loads(kept) == json.loads(over)
            validated = await conn.fetchval(
                "SELECT convalidated FROM pg_constraint WHERE conname = $1", CONSTRAINT
            )
            assert validated is False
            with pytest.raises(asyncpg.CheckViolationError):
                await conn.execute(
                    "INSERT INTO contacts (account_id, phone, fields) VALUES ($1, $2, $3::jsonb)",
                    account,
                    phone(141),
                    over,
                )
        finally:
            await conn.close()
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()
