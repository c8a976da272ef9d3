"""Operator metrics count what was committed, once: a transaction that charged, refunded or
parked and then rolled back (a lost connection, a failing step, a poison item that makes the
batch go again item by item) counts nothing; the attempt that commits counts once. Also the
rules of broker.db.transaction / after_commit that make it so."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

import asyncpg
import pytest
from prometheus_client import REGISTRY

from broker.db import CONNECTION_ERRORS, after_commit, transaction
from broker.queue_messages import CarrierEvents, InboundEvent, ReceiptEvent
from broker.queues import Amqp
from broker.store import accounts, ledger, schedule
from workers.events import EventsWorker

CHARGED = "smsbroker_credits_charged_total"
REFUNDED = "smsbroker_credits_refunded_total"
PARKED = "smsbroker_receipts_parked_total"
LATENCY_COUNT = "smsbroker_receipt_latency_seconds_count"


class StepFailed(Exception):
    """A step after the metered statements fails, and the transaction rolls back."""


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


@dataclass(frozen=True)
class Charge:
    id: uuid.UUID
    account_id: uuid.UUID
    cost: Decimal


async def funded_account(pool: asyncpg.Pool, credits: int) -> uuid.UUID:
    async with pool.acquire() as conn:
        account_id = await accounts.insert(conn, f"m-{uuid.uuid4().hex[:8]}", "US", "s")
        await ledger.credit(conn, account_id, Decimal(credits))
    return account_id


async def new_connector(pool: asyncpg.Pool) -> tuple[str, str]:
    """A connector's name and its scope, of its own (what these tests commit stays apart from
    other modules' receipts)."""
    name = f"m{uuid.uuid4().hex[:8]}"
    await pool.execute(
        "INSERT INTO connectors (name, host, port, system_id, password)"
        " VALUES ($1, 'h', 1, $1, 'p')",
        name,
    )
    scope: str = await pool.fetchval("SELECT scope FROM connectors WHERE name = $1", name)
    return name, scope


async def message(
    pool: asyncpg.Pool,
    account_id: uuid.UUID,
    status: str,
    cost: int = 0,
    connector: str | None = None,
) -> uuid.UUID:
    mid = uuid.uuid4()
    await pool.execute(
        "INSERT INTO messages (id, account_id, to_number, body, encoding, segments, status,"
        " cost, connector, scheduled_at)"
        " VALUES ($1, $2, '+14155552671', 'b', 'GSM7', 1, $3, $4, $5,"
        " CASE WHEN $3 = 'scheduled' THEN now() + interval '1 day' END)",
        mid,
        account_id,
        status,
        cost,
        connector,
    )
    return mid


async def balance(pool: asyncpg.Pool, account_id: uuid.UUID) -> Decimal:
    books = await ledger.books(pool, account_id)
    assert books is not None and books.balanced
    return books.balance


# --- credits -----------------------------------------------------------------------------


async def test_charge_lost_with_its_connection_is_counted_once_by_the_retry(
    pool: asyncpg.Pool,
) -> None:
    account_id = await funded_account(pool, 10)
    batch = [
        Charge(await message(pool, account_id, "queued"), account_id, Decimal(2)),
        Charge(await message(pool, account_id, "queued"), account_id, Decimal(3)),
    ]
    before = sample(CHARGED)

    # The connection dies after the charge statements ran, before the commit.
    with pytest.raises(CONNECTION_ERRORS):
        async with pool.acquire() as conn, transaction(conn):
            assert await ledger.charge(conn, batch) == []
            await conn.execute("SELECT pg_terminate_backend(pg_backend_pid())")
    assert await balance(pool, account_id) == 10
    assert sample(CHARGED) == before

    async with pool.acquire() as conn, transaction(conn):
        assert await ledger.charge(conn, batch) == []
        assert sample(CHARGED) == before  # not before the commit
    assert await balance(pool, account_id) == 5
    assert sample(CHARGED) == before + 5


async def test_refund_rolled_back_then_redone_is_counted_once(pool: asyncpg.Pool) -> None:
    account_id = await funded_account(pool, 1)
    failed = await message(pool, account_id, "failed", cost=4)
    before = sample(REFUNDED)

    for _ in range(2):  # two attempts whose later step fails
        with pytest.raises(StepFailed):
            async with pool.acquire() as conn, transaction(conn):
                assert await ledger.refund_failed(conn, [failed]) == 4
                raise StepFailed
    assert sample(REFUNDED) == before
    for _ in range(2):  # the attempt that commits, then a redelivery of the same work
        async with pool.acquire() as conn, transaction(conn):
            await ledger.refund_failed(conn, [failed])
    assert await balance(pool, account_id) == 5
    assert sample(REFUNDED) == before + 4
    # On a pool the statement commits by itself: nothing left to refund, nothing counted.
    assert await ledger.refund_failed(pool, [failed]) == 0
    assert sample(REFUNDED) == before + 4


async def test_canceled_scheduled_message_refund_counted_once(pool: asyncpg.Pool) -> None:
    account_id = await funded_account(pool, 1)
    connector, _ = await new_connector(pool)
    mid = await message(pool, account_id, "scheduled", cost=3, connector=connector)
    before = sample(REFUNDED)
    assert await schedule.cancel(pool, account_id, mid) is not None
    assert await schedule.cancel(pool, account_id, mid) is None
    assert await balance(pool, account_id) == 4
    assert sample(REFUNDED) == before + 3


# --- receipts ----------------------------------------------------------------------------


async def test_receipts_counted_once_when_their_batch_goes_again_item_by_item(
    pool: asyncpg.Pool, amqp: Amqp
) -> None:
    """A receipt for a sent part, one for no known part (parked) and a poison MO (a NUL that
    PostgreSQL cannot store) in one events batch: the batch's transaction applies and parks,
    then fails on the MO and rolls back; item by item, the receipts commit and the MO is
    dead-lettered. The receipts are counted for the commit alone."""
    account_id = await funded_account(pool, 1)
    connector, scope = await new_connector(pool)
    mid = await message(pool, account_id, "sent", connector=connector)
    sent_id = f"s-{uuid.uuid4().hex[:8]}"
    await pool.execute(
        "INSERT INTO message_parts (message_id, seq, connector, carrier_id, status)"
        " VALUES ($1, 1, $2, $3, 'sent')",
        mid,
        connector,
        sent_id,
    )
    unknown_id = f"u-{uuid.uuid4().hex[:8]}"
    poison = InboundEvent(
        id=uuid.uuid4(),
        connector=connector,
        from_number="+14155550100",
        to_number="+14155550101",
        text="bad \x00 byte",
        concat=(7, 2, 1),
        received_at=datetime.now(UTC),
    )
    events = CarrierEvents(
        events=[
            ReceiptEvent(connector=connector, scope=scope, carrier_id=sent_id, state="DELIVRD"),
            ReceiptEvent(connector=connector, scope=scope, carrier_id=unknown_id, state="DELIVRD"),
            poison,
        ]
    )
    parked, latencies = sample(PARKED), sample(LATENCY_COUNT, connector=connector)
    dead = sample("smsbroker_dead_lettered_total", source="events")

    worker = EventsWorker(pool, amqp, sweep_every=3600)
    await worker.start()
    try:
        await amqp.publish(amqp.names.events, events)
        async with asyncio.timeout(20):
            while sample("smsbroker_dead_lettered_total", source="events") == dead:
                await asyncio.sleep(0.05)
    finally:
        await worker.stop()

    status = await pool.fetchval("SELECT status FROM messages WHERE id = $1", mid)
    assert status == "delivered"
    pending = await pool.fetchval(
        "SELECT count(*) FROM pending_receipts WHERE scope = $1 AND carrier_id = $2",
        scope,
        unknown_id,
    )
    assert pending == 1
    assert sample(PARKED) == parked + 1
    assert sample(LATENCY_COUNT, connector=connector) == latencies + 1


# --- the mechanism -----------------------------------------------------------------------


async def test_effects_run_once_the_outermost_transaction_commits(pool: asyncpg.Pool) -> None:
    ran: list[str] = []
    async with pool.acquire() as conn:
        async with transaction(conn):
            after_commit(conn, lambda: ran.append("outer"))
            async with transaction(conn):  # a savepoint, released
                after_commit(conn, lambda: ran.append("released"))
            with pytest.raises(StepFailed):
                async with transaction(conn):  # a savepoint, rolled back
                    after_commit(conn, lambda: ran.append("rolled back"))
                    raise StepFailed
            assert ran == []
        assert ran == ["outer", "released"]

        ran.clear()
        with pytest.raises(StepFailed):
            async with transaction(conn):
                async with transaction(conn):
                    after_commit(conn, lambda: ran.append("inner"))
                raise StepFailed
        assert ran == []

        # Outside a transaction what ran is committed already.
        after_commit(conn, lambda: ran.append("autocommit"))
        after_commit(pool, lambda: ran.append("pool"))
        assert ran == ["autocommit", "pool"]


async def test_after_commit_refused_in_a_bare_transaction(pool: asyncpg.Pool) -> None:
    """Nothing would tell it whether that transaction commits: it fails loudly, at once."""
    async with pool.acquire() as conn, conn.transaction():
        with pytest.raises(RuntimeError, match=r"broker\.db\.transaction"):
            after_commit(conn, lambda: None)
