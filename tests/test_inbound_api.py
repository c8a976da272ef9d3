"""GET /v1/inbound and /v1/inbound/{id} end to end: MO injected at the simulated carrier, read
back over HTTP, newest first with a cursor, filtered, and only by the account that owns them."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

import asyncpg
import pytest

from broker import accounts
from broker.config import Settings
from tests.harness import (
    Customer,
    SimStack,
    sim_stack,
)


class Stack(SimStack):
    """The module's gateway, with the helpers its tests speak in."""

    async def get(self, customer: Customer, path: str) -> tuple[int, Any]:
        async with self.http.get(f"{self.api}{path}", headers=customer.headers) as resp:
            return resp.status, await resp.json()

    async def number(self, customer: Customer) -> str:
        number = f"1415558{uuid.uuid4().int % 10_000:04d}"
        async with self.pool.acquire() as conn:
            await accounts.add_number(conn, customer.account_id, number, "")
        return number

    async def mo(self, customer: Customer, source: str, number: str, text: str) -> str:
        """Inject one MO and wait for its webhook; its id."""
        await self.sim.inject_mo(source, number, text)
        [hit] = await self.receiver.wait_for(
            lambda r: (
                r.path == customer.path
                and r.json["type"] == "message.inbound"
                and r.json["data"]["body"] == text
            )
        )
        mid: str = hit.json["data"]["id"]
        return mid


@pytest.fixture(scope="module")
async def stack(settings: Settings, pool: asyncpg.Pool) -> AsyncIterator[Stack]:
    async with sim_stack(settings, pool, Stack, "inbound") as stack:
        yield stack


async def test_list_newest_first_with_a_cursor_and_read_one(stack: Stack) -> None:
    customer = await stack.customer()
    number = await stack.number(customer)
    ids = [await stack.mo(customer, "233205550368", number, f"message {i}") for i in range(5)]

    seen: list[str] = []
    cursor = None
    while True:
        query = "?limit=2" + (f"&cursor={cursor}" if cursor else "")
        status, page = await stack.get(customer, f"/v1/inbound{query}")
        assert status == 200, page
        assert len(page["data"]) <= 2
        seen += [m["id"] for m in page["data"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == ids[::-1]

    status, one = await stack.get(customer, f"/v1/inbound/{ids[0]}")
    assert status == 200
    assert one == {
        "id": ids[0],
        "from": "+233205550368",
        "to": f"+{number}",
        "body": "message 0",
        "keyword": None,
        "action": None,
        "action_keyword": None,
        "received_at": one["received_at"],
    }
    assert datetime.fromisoformat(one["received_at"]) > datetime.now(UTC) - timedelta(minutes=5)
    status, page = await stack.get(customer, "/v1/inbound?limit=1")
    [newest] = page["data"]
    assert newest == {
        **one,
        "id": ids[-1],
        "body": "message 4",
        "received_at": newest["received_at"],
    }
    stamps = [datetime.fromisoformat(m["received_at"]) for m in (newest, one)]
    assert stamps[0] > stamps[1]


async def test_filters_by_from_to_and_since(stack: Stack) -> None:
    customer = await stack.customer()
    first, second = await stack.number(customer), await stack.number(customer)
    a = await stack.mo(customer, "233205551111", first, "from a")
    b = await stack.mo(customer, "233205552222", second, "from b")
    status, page = await stack.get(customer, "/v1/inbound?from=233205551111")
    assert status == 200 and [m["id"] for m in page["data"]] == [a]
    status, page = await stack.get(customer, f"/v1/inbound?from={quote('+233205552222')}")
    assert [m["id"] for m in page["data"]] == [b]
    status, page = await stack.get(customer, f"/v1/inbound?to={second}")
    assert [m["id"] for m in page["data"]] == [b]
    status, one = await stack.get(customer, f"/v1/inbound/{b}")
    since = quote(one["received_at"])
    status, page = await stack.get(customer, f"/v1/inbound?since={since}")
    assert [m["id"] for m in page["data"]] == [b]
    later = quote((datetime.now(UTC) + timedelta(hours=1)).isoformat())
    status, page = await stack.get(customer, f"/v1/inbound?since={later}")
    assert page == {"data": [], "next_cursor": None}


@pytest.mark.parametrize(
    ("query", "code"),
    [
        ("cursor=nope", "INVALID_CURSOR"),
        ("limit=0", "INVALID_INPUT"),
        ("limit=201", "INVALID_INPUT"),
        ("since=yesterday", "INVALID_INPUT"),
        ("since=2026-01-01T00:00:00", "INVALID_TIMESTAMP"),
    ],
)
async def test_bad_queries_are_400(stack: Stack, query: str, code: str) -> None:
    customer = await stack.customer()
    status, err = await stack.get(customer, f"/v1/inbound?{query}")
    assert status == 400 and err["error"]["code"] == code, err


async def test_keyword_messages_show_their_action(stack: Stack) -> None:
    customer = await stack.customer()
    number = await stack.number(customer)
    mid = await stack.mo(customer, "233205553333", number, " Stop ")
    status, one = await stack.get(customer, f"/v1/inbound/{mid}")
    assert status == 200 and one["action"] == "opt_out" and one["action_keyword"] == "STOP"


async def test_tenants_see_only_their_own_and_nobodys_stays_hidden(stack: Stack) -> None:
    alice, bob = await stack.customer(), await stack.customer()
    number = await stack.number(alice)
    mid = await stack.mo(alice, "233205554444", number, "for alice")
    # An MO to a number nobody owns is stored, but belongs to no account.
    stray = uuid.uuid4().hex[:8]
    await stack.sim.inject_mo("233205554444", "19995550123", f"stray {stray}")
    async with asyncio.timeout(20):
        while not await stack.pool.fetchval(
            "SELECT id FROM inbound_messages WHERE body = $1", f"stray {stray}"
        ):
            await asyncio.sleep(0.1)
    stray_id = await stack.pool.fetchval(
        "SELECT id FROM inbound_messages WHERE body = $1", f"stray {stray}"
    )

    status, err = await stack.get(bob, f"/v1/inbound/{mid}")
    assert status == 404 and err["error"]["code"] == "NOT_FOUND"
    status, page = await stack.get(bob, "/v1/inbound")
    assert page == {"data": [], "next_cursor": None}
    for who in (alice, bob):
        status, _ = await stack.get(who, f"/v1/inbound/{stray_id}")
        assert status == 404
    status, page = await stack.get(alice, "/v1/inbound")
    assert [m["id"] for m in page["data"]] == [mid]
    status, _ = await stack.get(alice, "/v1/inbound/not-a-uuid")
    assert status == 404
