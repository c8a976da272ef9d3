"""Scheduled sends end to end: accepted and charged at once, submitted when due (within 2 s),
canceled and refunded before that, and handed on exactly once by any number of schedulers,
across a kill -9 of a scheduler process.

Each test has its own slice (tests/fault_slice.py): account, connector, simulated carrier and
route prefix, so the carrier's records are this test's alone.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import aio_pika
import asyncpg

from broker import accounts
from broker.config import Settings
from broker.queue_messages import SubmitJob, decode
from broker.queues import Amqp, QueueNames
from tests.fault_slice import Slice, WorkerProcess, api_server, fault_slice, workers
from tests.harness import WebhookReceiver, verify_standard_webhook
from workers.scheduler import Scheduler


def at(seconds: float) -> datetime:
    return datetime.now(UTC) + timedelta(seconds=seconds)


async def send(piece: Slice, i: int, when: datetime, **extra: Any) -> tuple[int, Any]:
    async with piece.http.post(
        f"{piece.api}/v1/messages",
        json={
            "to": piece.number(i),
            "body": f"scheduled {i}",
            "scheduled_at": when.isoformat(),
            **extra,
        },
        headers=piece.headers,
    ) as resp:
        return resp.status, await resp.json()


async def send_one(piece: Slice, i: int, when: datetime, **extra: Any) -> str:
    status, body = await send(piece, i, when, **extra)
    assert status == 202, body
    [msg] = body["messages"]
    assert msg["status"] == "scheduled"
    mid: str = msg["id"]
    return mid


async def cancel(piece: Slice, mid: str, key: str | None = None) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {key}"} if key else piece.headers
    async with piece.http.post(f"{piece.api}/v1/messages/{mid}/cancel", headers=headers) as resp:
        return resp.status, await resp.json()


async def row(piece: Slice, mid: str) -> asyncpg.Record:
    found = await piece.pool.fetchrow(
        "SELECT status, error_code, done_at, scheduled_at, expires_at FROM messages WHERE id = $1",
        uuid.UUID(mid),
    )
    assert found is not None
    return found


async def wait_status(piece: Slice, mid: str, *statuses: str, within: float = 20.0) -> str:
    deadline = time.monotonic() + within
    while True:
        status = await piece.pool.fetchval(
            "SELECT status FROM messages WHERE id = $1", uuid.UUID(mid)
        )
        if status in statuses:
            return str(status)
        assert time.monotonic() < deadline, f"{mid} is {status}, not {statuses}"
        await asyncio.sleep(0.05)


async def ledger_rows(piece: Slice, mid: str) -> list[tuple[str, Decimal]]:
    rows = await piece.pool.fetch(
        "SELECT reason, amount FROM ledger WHERE message_id = $1 ORDER BY id", uuid.UUID(mid)
    )
    return [(r["reason"], r["amount"]) for r in rows]


async def balance(piece: Slice) -> Decimal:
    value: Decimal = await piece.pool.fetchval(
        "SELECT balance FROM accounts WHERE id = $1", piece.account_id
    )
    return value


def submitted(piece: Slice, body: str) -> list[Any]:
    return [r for r in piece.sim.submitted if r.short_message == body.encode()]


@asynccontextmanager
async def running(piece: Slice) -> AsyncIterator[Slice]:
    async with workers(piece.settings), api_server(piece.settings) as piece.api:
        yield piece


async def test_scheduled_send_is_charged_at_once_and_submitted_when_due(
    settings: Settings, pool: asyncpg.Pool
) -> None:
    async with fault_slice(settings, pool, "sch-due", "614915790") as piece, running(piece):
        due = at(4)
        mid = await send_one(piece, 1, due)
        assert await wait_status(piece, mid, "scheduled") == "scheduled"
        assert await ledger_rows(piece, mid) == [("charge", Decimal(-1))]
        assert await balance(piece) == piece.initial_credits - 1
        stored = await row(piece, mid)
        assert abs((stored["scheduled_at"] - due).total_seconds()) < 0.001
        async with piece.http.get(f"{piece.api}/v1/messages/{mid}", headers=piece.headers) as resp:
            resource = await resp.json()
        assert resource["status"] == "scheduled" and resource["scheduled_at"]
        # Nothing reaches the carrier before it is due.
        while datetime.now(UTC) < due - timedelta(seconds=0.2):
            assert submitted(piece, "scheduled 1") == []
            await asyncio.sleep(0.1)
        await wait_status(piece, mid, "delivered", within=10)
        [record] = submitted(piece, "scheduled 1")
        late = record.submitted_at - due.timestamp()
        assert 0 <= late <= 2.0, late
        history = await pool.fetch(
            "SELECT status FROM message_events WHERE message_id = $1 ORDER BY id",
            uuid.UUID(mid),
        )
        assert [h["status"] for h in history] == [
            "scheduled",
            "queued",
            "sending",
            "sent",
            "delivered",
        ]
        assert await ledger_rows(piece, mid) == [("charge", Decimal(-1))]


async def test_cancel_refunds_and_notifies(settings: Settings, pool: asyncpg.Pool) -> None:
    receiver = WebhookReceiver()
    await receiver.start()
    try:
        async with (
            fault_slice(settings, pool, "sch-cancel", "614915791") as piece,
            running(piece),
        ):
            async with piece.http.post(
                f"{piece.api}/v1/webhooks",
                json={"url": receiver.url("/hooks"), "events": ["message.status"]},
                headers=piece.headers,
            ) as resp:
                assert resp.status == 201
                secret = (await resp.json())["secret"]
            mid = await send_one(piece, 2, at(60))
            # At once after the 202: the charge worker may not have stored it yet.
            status, body = await cancel(piece, mid)
            assert status == 200, body
            assert body["id"] == mid and body["status"] == "canceled"
            assert body["error"]["code"] == "CANCELED" and body["done_at"]
            assert await ledger_rows(piece, mid) == [
                ("charge", Decimal(-1)),
                ("refund", Decimal(1)),
            ]
            assert await balance(piece) == piece.initial_credits
            [hit] = await receiver.wait_for(
                lambda r: r.json["type"] == "message.status" and r.json["data"]["id"] == mid
            )
            verify_standard_webhook(secret, hit.headers, hit.body)
            assert hit.json["data"]["status"] == "canceled"
            history = await pool.fetch(
                "SELECT status FROM message_events WHERE message_id = $1 ORDER BY id",
                uuid.UUID(mid),
            )
            assert [h["status"] for h in history] == ["scheduled", "canceled"]

            # Canceling again: 409, and still refunded once.
            status, body = await cancel(piece, mid)
            assert status == 409 and body["error"]["code"] == "NOT_CANCELABLE"
            assert await ledger_rows(piece, mid) == [
                ("charge", Decimal(-1)),
                ("refund", Decimal(1)),
            ]
            # Another account's key, an unknown id and a malformed one: 404.
            async with pool.acquire() as conn:
                other = await accounts.create_account(conn, "sch-other", Decimal(5), "AU")
                other_key = (await accounts.create_key(conn, other)).secret
            mine = await send_one(piece, 3, at(60))
            await wait_status(piece, mine, "scheduled")
            status, body = await cancel(piece, mine, other_key)
            assert status == 404 and body["error"]["code"] == "NOT_FOUND"
            assert (await row(piece, mine))["status"] == "scheduled"
            status, _ = await cancel(piece, str(uuid.uuid4()))
            assert status == 404
            status, _ = await cancel(piece, "not-a-uuid")
            assert status == 404
            # The owner still can; nothing of this reached the carrier.
            status, body = await cancel(piece, mine)
            assert status == 200 and body["status"] == "canceled"
            assert list(piece.sim.submitted) == []
            assert await balance(piece) == piece.initial_credits
    finally:
        await receiver.stop()


async def test_cancel_once_queued_is_refused(settings: Settings, pool: asyncpg.Pool) -> None:
    async with fault_slice(settings, pool, "sch-late", "614915792") as piece, running(piece):
        mid = await send_one(piece, 4, at(1.5))
        await wait_status(piece, mid, "queued", "sending", "sent", "delivered")
        before = await row(piece, mid)
        status, body = await cancel(piece, mid)
        assert status == 409, body
        assert body["error"]["code"] == "NOT_CANCELABLE"
        assert await wait_status(piece, mid, "delivered") == "delivered"
        assert await ledger_rows(piece, mid) == [("charge", Decimal(-1))]
        assert before["error_code"] is None
        assert len(submitted(piece, "scheduled 4")) == 1


async def test_concurrent_schedulers_hand_each_message_on_once(
    settings: Settings, pool: asyncpg.Pool
) -> None:
    """Four schedulers, small batches, all at once on the same due rows: every id is
    published exactly once (read back from the submit queue) and every row is queued."""
    async with fault_slice(settings, pool, "sch-skip", "614915793") as piece:
        async with api_server(piece.settings) as piece.api, workers(piece.settings):
            # Only the charge worker matters here; the in-process scheduler would compete.
            ids = [await send_one(piece, i, at(60)) for i in range(40)]
            for mid in ids:
                await wait_status(piece, mid, "scheduled")
        await pool.execute(
            "UPDATE messages SET scheduled_at = now() - interval '1 second'"
            " WHERE id = ANY($1::uuid[])",
            [uuid.UUID(i) for i in ids],
        )
        prefix = f"sch-skip-{uuid.uuid4().hex[:6]}"
        amqp = Amqp(settings.amqp_url, QueueNames(prefix))
        await amqp.connect()
        try:
            schedulers = [Scheduler(pool, amqp, batch=3) for _ in range(4)]

            async def drain(s: Scheduler) -> int:
                total = 0
                while n := await s.run_once():
                    total += n
                return total

            counts = await asyncio.gather(*(drain(s) for s in schedulers))
            assert sum(counts) >= len(ids)
            published = await _read_jobs(settings.amqp_url, amqp.names.submit(piece.name))
        finally:
            await amqp.close()
        mine = [p for p in published if str(p) in set(ids)]
        assert Counter(mine) == Counter(uuid.UUID(i) for i in ids)
        statuses = await pool.fetch(
            "SELECT DISTINCT status FROM messages WHERE id = ANY($1::uuid[])",
            [uuid.UUID(i) for i in ids],
        )
        assert [r["status"] for r in statuses] == ["queued"]
        # Leave nothing scheduled or queued behind for other tests' workers.
        await pool.execute(
            "UPDATE messages SET status = 'canceled' WHERE id = ANY($1::uuid[])",
            [uuid.UUID(i) for i in ids],
        )


async def _read_jobs(amqp_url: str, queue_name: str) -> list[uuid.UUID]:
    connection = await aio_pika.connect(amqp_url)
    try:
        channel = await connection.channel()
        queue = await channel.get_queue(queue_name)
        ids: list[uuid.UUID] = []
        while (message := await queue.get(no_ack=True, fail=False)) is not None:
            ids.extend(decode(SubmitJob, message.body).ids)
        await queue.delete(if_unused=False, if_empty=False)
        return ids
    finally:
        await connection.close()


SPREAD = 120  # messages, due one every 50 ms


async def _schedule_spread(piece: Slice, start: float) -> tuple[list[str], datetime]:
    first = at(start)
    gate = asyncio.Semaphore(10)

    async def one(i: int) -> str:
        async with gate:
            return await send_one(piece, i, first + timedelta(seconds=0.05 * i))

    return list(await asyncio.gather(*(one(i) for i in range(SPREAD)))), first


async def _assert_each_submitted_once(piece: Slice, ids: list[str]) -> None:
    statuses = await piece.wait_final(ids)
    assert set(statuses.values()) == {"delivered"}
    per_body = Counter(r.short_message.decode() for r in piece.sim.submitted)
    assert per_body == Counter(f"scheduled {i}" for i in range(SPREAD))
    await piece.assert_charged_once(ids)
    await piece.assert_parts_unique(ids)


async def test_scheduler_killed_mid_run_sends_each_once(
    settings: Settings, pool: asyncpg.Pool, tmp_path: Path
) -> None:
    """kill -9 of a scheduler process while messages fall due; what fell due meanwhile goes
    once a scheduler is back, each message submitted exactly once at the carrier."""
    async with fault_slice(settings, pool, "sch-kill", "614915794") as piece:
        others = WorkerProcess(
            piece.settings, ("charge", "submit", "events", "webhooks"), tmp_path / "others.log"
        )
        first = WorkerProcess(piece.settings, ("scheduler",), tmp_path / "scheduler-1.log")
        second = WorkerProcess(piece.settings, ("scheduler",), tmp_path / "scheduler-2.log")
        try:
            async with api_server(piece.settings) as piece.api:
                await others.start()
                ids, start = await _schedule_spread(piece, 4)
                await first.start()
                # Kill it once a third is out: the rest falls due while no scheduler runs.
                await piece.wait_submits(SPREAD // 3, worker=others)
                await first.kill()
                killed_at = time.time()
                await asyncio.sleep(1.5)
                await second.start()
                restarted_at = time.time()
                await _assert_each_submitted_once(piece, ids)
                # Those due before the restart went soon after it; the rest on time.
                for i, record in enumerate(_by_index(piece)):
                    due = start.timestamp() + 0.05 * i
                    lag = record.submitted_at - max(due, restarted_at)
                    assert lag <= 6.0, (i, lag, killed_at)
        finally:
            for proc in (first, second, others):
                await proc.kill()


async def _started(proc: WorkerProcess, within: float = 30.0) -> None:
    """Until every role of the process logged its start."""
    deadline = time.monotonic() + within
    while True:
        text = proc.log_path.read_text(errors="replace") if proc.log_path.exists() else ""
        if all(f"role={role}" in text for role in proc.roles):
            return
        assert proc.running, proc.log_tail()
        assert time.monotonic() < deadline, proc.log_tail()
        await asyncio.sleep(0.1)


def _by_index(piece: Slice) -> list[Any]:
    found = {r.short_message.decode(): r for r in piece.sim.submitted}
    return [found[f"scheduled {i}"] for i in range(SPREAD)]


async def test_two_scheduler_processes_never_double_send(
    settings: Settings, pool: asyncpg.Pool, tmp_path: Path
) -> None:
    async with fault_slice(settings, pool, "sch-two", "614915795") as piece:
        others = WorkerProcess(
            piece.settings, ("charge", "submit", "events", "webhooks"), tmp_path / "others.log"
        )
        one = WorkerProcess(piece.settings, ("scheduler",), tmp_path / "scheduler-1.log")
        two = WorkerProcess(piece.settings, ("scheduler",), tmp_path / "scheduler-2.log")
        try:
            async with api_server(piece.settings) as piece.api:
                for proc in (others, one, two):
                    await proc.start()
                for proc in (others, one, two):
                    await _started(proc)
                ids, start = await _schedule_spread(piece, 4)
                assert datetime.now(UTC) < start, "scheduling took too long to test timing"
                await _assert_each_submitted_once(piece, ids)
                for i, record in enumerate(_by_index(piece)):
                    late = record.submitted_at - (start.timestamp() + 0.05 * i)
                    assert -0.05 <= late <= 2.0, (i, late)
        finally:
            for proc in (one, two, others):
                await proc.kill()
