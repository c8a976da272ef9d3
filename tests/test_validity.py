"""validity_period end to end: passed to the carrier as submit_sm validity_period (SMPP absolute
time, UTC), and a message not submitted by its expires_at ends failed EXPIRED, refunded. Also:
a job's plain text (an OTP's) is what the carrier gets, and a due scheduled message that a
job names is sent by it even when no scheduler marked it queued."""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import asyncpg

from broker.config import Settings
from broker.long_mode import LongMode
from broker.queue_messages import SubmitJob
from broker.queues import Amqp, QueueNames
from broker.smpp.constants import Status
from broker.submit_plan import plan_parts, smpp_absolute_time
from tests.fault_slice import Slice, api_server, fault_slice
from workers.runner import WorkerSet

SMPP_ABSOLUTE = re.compile(r"^\d{12}000\+$")


def test_smpp_absolute_time_is_utc() -> None:
    at = datetime(2027, 3, 4, 5, 6, 7, 890000, tzinfo=timezone(timedelta(hours=2)))
    assert smpp_absolute_time(at) == "270304030607000+"
    parts = plan_parts(
        uuid.uuid4(),
        "+61491570000",
        None,
        "x" * 200,
        LongMode(),
        validity_period="270304030607000+",
    )
    assert len(parts) == 2
    assert {p.body()["validity_period"] for p in parts} == {"270304030607000+"}
    [plain] = plan_parts(uuid.uuid4(), "+61491570000", None, "hi", LongMode())
    assert plain.body()["validity_period"] == ""


@asynccontextmanager
async def running(
    piece: Slice, roles: tuple[str, ...] = ("charge", "scheduler", "submit", "events", "webhooks")
) -> AsyncIterator[Slice]:
    started = WorkerSet(piece.settings, roles)
    await started.start()
    try:
        async with api_server(piece.settings) as piece.api:
            yield piece
    finally:
        await started.stop()


async def send(piece: Slice, i: int, **extra: Any) -> str:
    async with piece.http.post(
        f"{piece.api}/v1/messages",
        json={"to": piece.number(i), "body": f"validity {i}", **extra},
        headers=piece.headers,
    ) as resp:
        body = await resp.json()
        assert resp.status == 202, body
    mid: str = body["messages"][0]["id"]
    return mid


async def wait_row(piece: Slice, mid: str, *statuses: str, within: float = 30.0) -> asyncpg.Record:
    deadline = time.monotonic() + within
    while True:
        row = await piece.pool.fetchrow(
            "SELECT status, error_code, created_at, scheduled_at, expires_at FROM messages"
            " WHERE id = $1",
            uuid.UUID(mid),
        )
        if row is not None and row["status"] in statuses:
            return row
        assert time.monotonic() < deadline, f"{mid}: {row and row['status']} not in {statuses}"
        await asyncio.sleep(0.05)


async def ledger_rows(piece: Slice, mid: str) -> list[tuple[str, Decimal]]:
    rows = await piece.pool.fetch(
        "SELECT reason, amount FROM ledger WHERE message_id = $1 ORDER BY id", uuid.UUID(mid)
    )
    return [(r["reason"], r["amount"]) for r in rows]


def records(piece: Slice, body: str) -> list[Any]:
    return [r for r in piece.sim.submitted if r.short_message == body.encode()]


async def test_validity_period_reaches_the_carrier(settings: Settings, pool: asyncpg.Pool) -> None:
    async with fault_slice(settings, pool, "val-wire", "614915796") as piece, running(piece):
        with_validity = await send(piece, 1, validity_period=600)
        without = await send(piece, 2)
        row = await wait_row(piece, with_validity, "delivered")
        await wait_row(piece, without, "delivered")
        expires = row["expires_at"]
        assert expires is not None
        assert 590 <= (expires - row["created_at"]).total_seconds() <= 610
        [record] = records(piece, "validity 1")
        assert SMPP_ABSOLUTE.match(record.validity_period), record.validity_period
        assert record.validity_period == expires.astimezone(UTC).strftime("%y%m%d%H%M%S000+")
        [plain] = records(piece, "validity 2")
        assert plain.validity_period == ""


async def test_not_submitted_within_validity_fails_expired_and_refunded(
    settings: Settings, pool: asyncpg.Pool
) -> None:
    """The carrier throttles every submit, so the message waits; once its validity_period has
    passed, the next attempt fails it EXPIRED and refunds it."""
    async with fault_slice(settings, pool, "val-busy", "614915797") as piece, running(piece):
        piece.sim.set_faults(submit_error=int(Status.ESME_RTHROTTLED))
        mid = await send(piece, 3, validity_period=10)
        row = await wait_row(piece, mid, "failed", within=40)
        assert row["error_code"] == "EXPIRED"
        assert datetime.now(UTC) >= row["expires_at"]
        assert await ledger_rows(piece, mid) == [("charge", Decimal(-1)), ("refund", Decimal(1))]
        assert records(piece, "validity 3") == []
        balance = await pool.fetchval(
            "SELECT balance FROM accounts WHERE id = $1", piece.account_id
        )
        assert balance == piece.initial_credits


async def test_scheduled_message_past_its_expiry_is_never_sent(
    settings: Settings, pool: asyncpg.Pool
) -> None:
    """Schedulers were away until after the message's validity ended (made so in SQL)."""
    async with fault_slice(settings, pool, "val-late", "614915798") as piece, running(piece):
        due = datetime.now(UTC) + timedelta(seconds=60)
        mid = await send(piece, 4, scheduled_at=due.isoformat(), validity_period=30)
        row = await wait_row(piece, mid, "scheduled")
        assert row["expires_at"] == due + timedelta(seconds=30)
        await pool.execute(
            "UPDATE messages SET scheduled_at = now() - interval '40 seconds',"
            " expires_at = now() - interval '10 seconds' WHERE id = $1",
            uuid.UUID(mid),
        )
        row = await wait_row(piece, mid, "failed", within=10)
        assert row["error_code"] == "EXPIRED"
        assert await ledger_rows(piece, mid) == [("charge", Decimal(-1)), ("refund", Decimal(1))]
        assert records(piece, "validity 4") == []


async def test_validity_counts_from_when_a_message_is_due(
    settings: Settings, pool: asyncpg.Pool
) -> None:
    """Accepted three days ago but due now: not expired by the 48 h rule (it counts from the
    scheduled time, not from acceptance)."""
    async with fault_slice(settings, pool, "val-aged", "614915799") as piece, running(piece):
        due = datetime.now(UTC) + timedelta(seconds=60)
        mid = await send(piece, 5, scheduled_at=due.isoformat())
        await wait_row(piece, mid, "scheduled")
        await pool.execute(
            "UPDATE messages SET created_at = now() - interval '3 days', scheduled_at = now()"
            " WHERE id = $1",
            uuid.UUID(mid),
        )
        row = await wait_row(piece, mid, "delivered", within=10)
        assert row["error_code"] is None
        assert len(records(piece, "validity 5")) == 1


async def test_job_plain_text_is_sent_for_a_due_scheduled_message(
    settings: Settings, pool: asyncpg.Pool
) -> None:
    """No scheduler runs: a job published for a due scheduled message (as one a scheduler
    published before dying uncommitted) sends it, with the job's plain text, once."""
    async with (
        fault_slice(settings, pool, "val-plain", "614915789") as piece,
        running(piece, ("charge", "submit", "events", "webhooks")),
    ):
        due = datetime.now(UTC) + timedelta(seconds=60)
        mid = await send(piece, 6, scheduled_at=due.isoformat())
        await wait_row(piece, mid, "scheduled")
        await pool.execute(
            "UPDATE messages SET scheduled_at = now() - interval '1 second' WHERE id = $1",
            uuid.UUID(mid),
        )
        amqp = Amqp(piece.settings.amqp_url, QueueNames(piece.settings.queue_prefix))
        await amqp.connect()
        try:
            job = SubmitJob(ids=[uuid.UUID(mid)], plain_bodies={uuid.UUID(mid): "code 4821"})
            assert "4821" not in repr(job)
            queue = amqp.names.submit(piece.name)
            await amqp.publish(queue, job)
            await amqp.publish(queue, job)  # a second copy finds it taken
        finally:
            await amqp.close()
        await wait_row(piece, mid, "delivered", within=15)
        assert len(records(piece, "code 4821")) == 1
        assert records(piece, "validity 6") == []
        stored = await pool.fetchval("SELECT body FROM messages WHERE id = $1", uuid.UUID(mid))
        assert stored == "validity 6"
