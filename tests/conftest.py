"""Real services for the suite: a database and a RabbitMQ vhost of this run's own, removed after."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import uuid
from collections.abc import AsyncIterator, Iterator

import asyncpg
import pytest

from broker.config import Settings
from broker.db import transaction
from broker.migrate import migrate
from broker.queues import Amqp, QueueNames

PG_ADMIN_DSN = os.environ.get("TEST_PG_ADMIN_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")
PG_BASE = PG_ADMIN_DSN.rsplit("/", 1)[0]
AMQP_BASE = os.environ.get("TEST_AMQP_BASE", "amqp://guest:guest@127.0.0.1:5672")
RUN_ID = uuid.uuid4().hex[:10]
# The suite's webhook receivers listen on 127.0.0.1; worker processes it starts inherit this.
os.environ.setdefault("WEBHOOK_ALLOW_PRIVATE", "1")


def _rabbitmqctl(*args: str) -> None:
    subprocess.run(["rabbitmqctl", "-q", *args], check=True, capture_output=True, timeout=60)


@pytest.fixture(scope="session")
def pg_dsn() -> Iterator[str]:
    name = f"smsb_test_{RUN_ID}"

    async def admin(sql: str) -> None:
        conn = await asyncpg.connect(PG_ADMIN_DSN)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(admin(f'CREATE DATABASE "{name}"'))
    dsn = f"{PG_BASE}/{name}"
    asyncio.run(migrate(dsn))
    yield dsn
    asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(scope="module")
def amqp_url() -> Iterator[str]:
    """A vhost per test module, deleted after it: RabbitMQ stays light over a long run
    (hundreds of quorum queues in one vhost made late connections time out)."""
    vhost = f"smsb_test_{RUN_ID}_{uuid.uuid4().hex[:6]}"
    _rabbitmqctl("add_vhost", vhost)
    _rabbitmqctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
    yield f"{AMQP_BASE}/{vhost}"
    _rabbitmqctl("delete_vhost", vhost)


@pytest.fixture(scope="module")
def settings(pg_dsn: str, amqp_url: str) -> Settings:
    return Settings(
        database_url=pg_dsn,
        amqp_url=amqp_url,
        queue_prefix="t",
        api_port=0,
        webhook_retry_delays=(0.2, 0.5, 1.0),
        webhook_timeout=2.0,
        auth_cache_seconds=0.0,
        webhook_allow_private=True,  # revocations must show at once in these tests
        # A loaded test machine can take longer than production's 0.1 s to connect; a
        # connect given up mid-way also leaves redis-py's socket to the garbage collector.
        redis_timeout=1.0,
    )


@pytest.fixture
async def amqp(settings: Settings) -> AsyncIterator[Amqp]:
    """A RabbitMQ client on queues of this test's own (a fresh prefix), topology declared."""
    client = Amqp(settings.amqp_url, QueueNames(f"t{uuid.uuid4().hex[:8]}"))
    await client.connect()
    await client.declare_topology(())
    yield client
    await client.close()


@pytest.fixture(scope="session")
async def pool(pg_dsn: str) -> AsyncIterator[asyncpg.Pool]:
    p = await asyncpg.create_pool(pg_dsn, min_size=1, max_size=5)
    assert p is not None
    yield p
    await p.close()


class _RolledBack(Exception):
    """Ends the conn fixture's transaction by a rollback."""


@pytest.fixture
async def conn(pool: asyncpg.Pool) -> AsyncIterator[asyncpg.Connection]:
    """A connection whose every write is rolled back after the test, and with them the
    metrics they would have counted on commit (broker.db.transaction)."""
    async with pool.acquire() as c:
        with contextlib.suppress(_RolledBack):
            async with transaction(c):
                yield c
                raise _RolledBack
