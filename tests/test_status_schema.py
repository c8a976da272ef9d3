"""The status enums against the live schema: the same values as its CHECK constraints, exactly.

A value the enum has and the schema refuses would fail at write time; a value the schema
accepts and the enum lacks would be a status the code cannot name. Both directions are checked
on a migrated database, by reading the constraint and by trying writes.
"""

from __future__ import annotations

import re
import uuid
from enum import StrEnum

import asyncpg
import pytest

from broker.status import (
    FINAL_STATUSES,
    AccountStatus,
    MessageStatus,
    PartStatus,
    SenderIdStatus,
)
from broker.store.ledger import LedgerReason

#: Spellings that must be refused: near misses of real values, and the empty string.
OUTSIDE = ("cancelled", "DELIVERED", "pending", "expired", "", "sent ")


def _quoted(definition: str) -> set[str]:
    return set(re.findall(r"'([^']*)'", definition))


async def _check_values(conn: asyncpg.Connection, table: str, column: str) -> set[str]:
    """The values of the CHECK constraint of ``table`` that lists what ``column`` may hold."""
    rows = await conn.fetch(
        "SELECT pg_get_constraintdef(oid) AS def FROM pg_constraint"
        " WHERE conrelid = $1::regclass AND contype = 'c'",
        table,
    )
    # PostgreSQL prints ``column IN (...)`` as ``CHECK ((column = ANY (ARRAY[...])))``.
    whole = re.compile(rf"CHECK \(\({column} = ANY \(ARRAY\[([^\]]*)\]\)\)\)")
    lists = [m.group(1) for r in rows if (m := whole.fullmatch(r["def"]))]
    assert len(lists) == 1, f"expected one value list for {table}.{column}, found {lists}"
    return _quoted(lists[0])


async def _new_account(conn: asyncpg.Connection) -> uuid.UUID:
    account_id: uuid.UUID = await conn.fetchval(
        "INSERT INTO accounts (name, webhook_secret) VALUES ('status', 's') RETURNING id"
    )
    return account_id


async def _new_connector(conn: asyncpg.Connection) -> str:
    name = f"st{uuid.uuid4().hex[:8]}"
    await conn.execute(
        "INSERT INTO connectors (name, host, port, system_id, password)"
        " VALUES ($1, 'h', 1, 's', 'p')",
        name,
    )
    return name


async def _insert_message(conn: asyncpg.Connection, status: str) -> uuid.UUID:
    """A message in ``status``, routed (a scheduled message always is)."""
    mid = uuid.uuid4()
    await conn.execute(
        "INSERT INTO messages (id, account_id, to_number, body, encoding, segments, status,"
        " connector) VALUES ($1, $2, '+14155552671', 'b', 'GSM7', 1, $3, $4)",
        mid,
        await _new_account(conn),
        status,
        await _new_connector(conn),
    )
    return mid


async def test_message_status_is_what_status_rank_accepts(conn: asyncpg.Connection) -> None:
    definition = await conn.fetchval("SELECT pg_get_functiondef('status_rank(text)'::regprocedure)")
    assert _quoted(definition) == {s.value for s in MessageStatus}
    for status in MessageStatus:
        assert await conn.fetchval("SELECT status_rank($1)", status) is not None, status
    for value in OUTSIDE:
        assert await conn.fetchval("SELECT status_rank($1)", value) is None, value


async def test_every_message_status_is_stored_and_no_other(conn: asyncpg.Connection) -> None:
    for status in MessageStatus:
        mid = await _insert_message(conn, status)
        assert await conn.fetchval("SELECT status FROM messages WHERE id = $1", mid) == status
    for value in OUTSIDE:
        with pytest.raises(asyncpg.CheckViolationError):
            async with conn.transaction():  # a savepoint: the refusal leaves the test's tx usable
                await _insert_message(conn, value)


async def test_enum_order_is_the_lifecycle_order(conn: asyncpg.Connection) -> None:
    ranks = [await conn.fetchval("SELECT status_rank($1)", s) for s in MessageStatus]
    assert ranks == sorted(ranks)


async def test_final_statuses_are_the_ones_never_left(conn: asyncpg.Connection) -> None:
    top = await conn.fetchval(
        "SELECT max(status_rank(s)) FROM unnest($1::text[]) AS s", list(MessageStatus)
    )
    ranks = {s: await conn.fetchval("SELECT status_rank($1)", s) for s in MessageStatus}
    assert {s for s, rank in ranks.items() if rank == top} == FINAL_STATUSES
    for final in FINAL_STATUSES:
        mid = await _insert_message(conn, final)
        for other in MessageStatus:
            if other is final:
                continue
            with pytest.raises(asyncpg.CheckViolationError):
                async with conn.transaction():
                    await conn.execute("UPDATE messages SET status = $2 WHERE id = $1", mid, other)
    # and a non-final status does move forward
    mid = await _insert_message(conn, MessageStatus.QUEUED)
    await conn.execute("UPDATE messages SET status = $2 WHERE id = $1", mid, MessageStatus.SENT)


async def test_a_scheduled_message_is_always_routed(conn: asyncpg.Connection) -> None:
    with pytest.raises(asyncpg.CheckViolationError):
        await conn.execute(
            "INSERT INTO messages (id, account_id, to_number, body, encoding, segments, status)"
            " VALUES ($1, $2, '+14155552671', 'b', 'GSM7', 1, 'scheduled')",
            uuid.uuid4(),
            await _new_account(conn),
        )


async def test_part_status_matches_the_parts_check_constraint(conn: asyncpg.Connection) -> None:
    assert await _check_values(conn, "message_parts", "status") == {s.value for s in PartStatus}
    connector = await _new_connector(conn)
    mid = await _insert_message(conn, MessageStatus.SENT)

    async def part(seq: int, status: str) -> None:
        await conn.execute(
            "INSERT INTO message_parts (message_id, seq, connector, carrier_id, status)"
            " VALUES ($1, $2, $3, 'c', $4)",
            mid,
            seq,
            connector,
            status,
        )

    for seq, status in enumerate(PartStatus, start=1):
        await part(seq, status)
    for seq, value in enumerate((*OUTSIDE, "queued", "sending"), start=100):
        with pytest.raises(asyncpg.CheckViolationError):
            async with conn.transaction():
                await part(seq, value)


@pytest.mark.parametrize(
    ("table", "column", "enum"),
    [
        ("accounts", "status", AccountStatus),
        ("ledger", "reason", LedgerReason),
        ("sender_ids", "status", SenderIdStatus),
    ],
)
async def test_other_enums_match_their_check_constraints(
    conn: asyncpg.Connection, table: str, column: str, enum: type[StrEnum]
) -> None:
    assert await _check_values(conn, table, column) == {e.value for e in enum}
