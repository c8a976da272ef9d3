"""Receipts against the real schema: applied once, parked when early, never moving back."""

from __future__ import annotations

import uuid
from datetime import timedelta

import asyncpg
import pytest

from broker.receipts import ReceiptUpdate, apply_receipts, match_pending, settle_unreceipted
from broker.status import MessageStatus


async def sent_message(
    conn: asyncpg.Connection, connector: str, carrier_ids: list[str]
) -> uuid.UUID:
    account = await conn.fetchval(
        "INSERT INTO accounts (name, webhook_secret) VALUES ('r', 's') RETURNING id"
    )
    mid = uuid.uuid4()
    await conn.execute(
        "INSERT INTO messages (id, account_id, to_number, body, encoding, segments, status,"
        " connector) VALUES ($1, $2, '+14155552671', 'b', 'GSM7', $3, 'sent', $4)",
        mid,
        account,
        len(carrier_ids),
        connector,
    )
    for seq, carrier_id in enumerate(carrier_ids, start=1):
        await add_part(conn, mid, seq, connector, carrier_id)
    return mid


async def add_part(
    conn: asyncpg.Connection, mid: uuid.UUID, seq: int, connector: str, carrier_id: str
) -> None:
    await conn.execute(
        "INSERT INTO message_parts (message_id, seq, connector, carrier_id, status)"
        " VALUES ($1, $2, $3, $4, 'sent')",
        mid,
        seq,
        connector,
        carrier_id,
    )


@pytest.fixture
async def connector(conn: asyncpg.Connection) -> str:
    name = f"r{uuid.uuid4().hex[:8]}"
    await conn.execute(
        "INSERT INTO connectors (name, host, port, system_id, password)"
        " VALUES ($1, 'h', 1, 's', 'p')",
        name,
    )
    return name


@pytest.fixture
async def scope(conn: asyncpg.Connection, connector: str) -> str:
    value: str = await conn.fetchval("SELECT scope FROM connectors WHERE name = $1", connector)
    return value


async def status(conn: asyncpg.Connection, mid: uuid.UUID) -> str:
    value: str = await conn.fetchval("SELECT status FROM messages WHERE id = $1", mid)
    return value


async def test_multipart_delivered_only_when_every_part_is(
    conn: asyncpg.Connection, connector: str, scope: str
) -> None:
    mid = await sent_message(conn, connector, ["a1", "a2"])
    assert await apply_receipts(conn, [ReceiptUpdate(scope, "a1", "DELIVRD", None)]) == []
    assert await status(conn, mid) == MessageStatus.SENT
    [row] = await apply_receipts(conn, [ReceiptUpdate(scope, "a2", "DELIVRD", None)])
    assert row["id"] == mid and row["status"] == MessageStatus.DELIVERED


async def test_one_undelivered_part_settles_the_message(
    conn: asyncpg.Connection, connector: str, scope: str
) -> None:
    mid = await sent_message(conn, connector, ["b1", "b2"])
    [row] = await apply_receipts(conn, [ReceiptUpdate(scope, "b2", "EXPIRED", "027")])
    assert row["status"] == MessageStatus.UNDELIVERED and row["error_code"] == "EXPIRED"
    # A later DELIVRD for the other part changes the part, never the settled message.
    assert await apply_receipts(conn, [ReceiptUpdate(scope, "b1", "DELIVRD", None)]) == []
    assert await status(conn, mid) == MessageStatus.UNDELIVERED


async def test_intermediate_states_change_nothing(
    conn: asyncpg.Connection, connector: str, scope: str
) -> None:
    mid = await sent_message(conn, connector, ["c1"])
    updates = [ReceiptUpdate(scope, "c1", s, None) for s in ("ACCEPTD", "ENROUTE")]
    assert await apply_receipts(conn, updates) == []
    assert await status(conn, mid) == MessageStatus.SENT
    assert await conn.fetchval("SELECT count(*) FROM pending_receipts WHERE scope = $1", scope) == 0


async def test_early_receipt_is_parked_then_matched(
    conn: asyncpg.Connection, connector: str, scope: str
) -> None:
    mid = await sent_message(conn, connector, ["d1"])
    assert await apply_receipts(conn, [ReceiptUpdate(scope, "d2", "DELIVRD", None)]) == []
    parked = await conn.fetchval("SELECT count(*) FROM pending_receipts WHERE scope = $1", scope)
    assert parked == 1
    await conn.execute("UPDATE messages SET segments = 2 WHERE id = $1", mid)
    await add_part(conn, mid, 2, connector, "d2")
    assert await match_pending(conn) == []  # part 1 still awaits its receipt
    [row] = await apply_receipts(conn, [ReceiptUpdate(scope, "d1", "DELIVRD", None)])
    assert row["status"] == MessageStatus.DELIVERED
    assert await conn.fetchval("SELECT count(*) FROM pending_receipts WHERE scope = $1", scope) == 0


async def test_receipt_not_applied_is_parked_unless_its_part_is_final(
    conn: asyncpg.Connection, connector: str, scope: str
) -> None:
    """What the UPDATE did not apply is kept for the sweep, unless its part is there and
    final already: then it is history (see below). Nothing falls between."""
    mid = await sent_message(conn, connector, ["e1"])
    await apply_receipts(conn, [ReceiptUpdate(scope, "e1", "DELIVRD", None)])
    duplicate = ReceiptUpdate(scope, "e1", "UNDELIV", "001")
    assert await apply_receipts(conn, [duplicate]) == []
    assert await conn.fetchval("SELECT count(*) FROM pending_receipts WHERE scope = $1", scope) == 0
    early = ReceiptUpdate(scope, "e2", "DELIVRD", None)
    assert await apply_receipts(conn, [early]) == []
    assert await conn.fetchval("SELECT count(*) FROM pending_receipts WHERE scope = $1", scope) == 1
    await add_part(conn, mid, 2, connector, "e2")
    assert await match_pending(conn) == []
    assert await conn.fetchval("SELECT count(*) FROM pending_receipts WHERE scope = $1", scope) == 0
    assert await status(conn, mid) == MessageStatus.DELIVERED


async def test_final_state_is_never_overwritten_by_the_schema(
    conn: asyncpg.Connection, connector: str, scope: str
) -> None:
    mid = await sent_message(conn, connector, ["f1"])
    await apply_receipts(conn, [ReceiptUpdate(scope, "f1", "DELIVRD", None)])
    with pytest.raises(asyncpg.CheckViolationError):
        await conn.execute("UPDATE messages SET status = 'sent' WHERE id = $1", mid)


async def test_message_without_receipt_is_settled_after_the_wait(
    conn: asyncpg.Connection, connector: str, scope: str
) -> None:
    old = await sent_message(conn, connector, ["g1"])
    recent = await sent_message(conn, connector, ["g2"])
    await conn.execute("UPDATE messages SET sent_at = now() - interval '4 days' WHERE id = $1", old)
    await conn.execute("UPDATE messages SET sent_at = now() WHERE id = $1", recent)
    rows = await settle_unreceipted(conn, timedelta(hours=72))
    assert [(r["id"], r["status"], r["error_code"]) for r in rows] == [
        (old, MessageStatus.UNDELIVERED, "NO_RECEIPT")
    ]
    assert await status(conn, recent) == MessageStatus.SENT
    # A receipt arriving later changes the part, never the settled message.
    assert await apply_receipts(conn, [ReceiptUpdate(scope, "g1", "DELIVRD", None)]) == []
    assert await status(conn, old) == MessageStatus.UNDELIVERED


async def test_receipt_on_a_sibling_connector_of_the_same_carrier_account(
    conn: asyncpg.Connection, connector: str, scope: str
) -> None:
    sibling = f"s{uuid.uuid4().hex[:8]}"
    await conn.execute(
        "INSERT INTO connectors (name, host, port, system_id, password)"
        " SELECT $1, host, port, system_id, password FROM connectors WHERE name = $2",
        sibling,
        connector,
    )
    other_account = f"o{uuid.uuid4().hex[:8]}"
    await conn.execute(
        "INSERT INTO connectors (name, host, port, system_id, password)"
        " VALUES ($1, 'h', 1, 'someone-else', 'p')",
        other_account,
    )
    mid = await sent_message(conn, connector, ["h1"])
    # Another carrier account's receipt with the same id is not ours.
    assert (
        await apply_receipts(conn, [ReceiptUpdate("h:1/someone-else", "h1", "DELIVRD", None)]) == []
    )
    assert await status(conn, mid) == MessageStatus.SENT
    [row] = await apply_receipts(conn, [ReceiptUpdate(scope, "h1", "DELIVRD", None)])
    assert row["id"] == mid and row["status"] == MessageStatus.DELIVERED


@pytest.mark.parametrize(
    ("first", "then", "final"),
    [
        ("DELIVRD", "UNDELIV", MessageStatus.DELIVERED),
        ("UNDELIV", "DELIVRD", MessageStatus.UNDELIVERED),
    ],
)
async def test_the_first_final_receipt_stands_and_a_later_one_is_history(
    conn: asyncpg.Connection, connector: str, scope: str, first: str, then: str, final: str
) -> None:
    """Two disagreeing final receipts for one part back to back (one batch), then the second
    again later: the message keeps the first, the others are written in its history, nothing
    is parked."""
    mid = await sent_message(conn, connector, ["c1"])
    [row] = await apply_receipts(
        conn, [ReceiptUpdate(scope, "c1", first, None), ReceiptUpdate(scope, "c1", then, None)]
    )
    assert row["status"] == final
    assert await apply_receipts(conn, [ReceiptUpdate(scope, "c1", then, None)]) == []
    assert await apply_receipts(conn, [ReceiptUpdate(scope, "c1", first, None)]) == []
    assert await status(conn, mid) == final
    notes = await conn.fetch(
        "SELECT detail FROM message_events WHERE message_id = $1 AND status = 'receipt_ignored'",
        mid,
    )
    assert [n["detail"] for n in notes] == [
        f"part 1: {then} after {final} (the first final receipt stands)"
    ] * 2, "each disagreeing receipt noted, a repeat of the kept outcome not"
    assert await conn.fetchval("SELECT count(*) FROM pending_receipts WHERE scope = $1", scope) == 0


@pytest.mark.parametrize(
    ("submitted", "receipted"),
    [("1a2b3c4d", "439041101"), ("439041101", "1a2b3c4d"), ("ff00ff", "16711935")],
)
async def test_a_receipt_in_the_other_base_is_matched_not_parked(
    conn: asyncpg.Connection, connector: str, scope: str, submitted: str, receipted: str
) -> None:
    """Before: the connector's id format read one direction only, and a receipt whose id came
    in the other base matched nothing and stayed parked until dropped."""
    mid = await sent_message(conn, connector, [submitted])
    [row] = await apply_receipts(conn, [ReceiptUpdate(scope, receipted, "DELIVRD", None)])
    assert row["id"] == mid and row["status"] == MessageStatus.DELIVERED
    assert await conn.fetchval("SELECT count(*) FROM pending_receipts WHERE scope = $1", scope) == 0


async def test_short_ids_are_never_read_in_another_base(
    conn: asyncpg.Connection, connector: str, scope: str
) -> None:
    """A counter's "10" is not another message's "a" (nor "16" its "10")."""
    mid = await sent_message(conn, connector, ["10"])
    assert await apply_receipts(conn, [ReceiptUpdate(scope, "16", "DELIVRD", None)]) == []
    assert await status(conn, mid) == MessageStatus.SENT
