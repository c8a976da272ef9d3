"""Opt-outs end to end on the real services: the API (add, list, read, remove, normalization,
bad input, tenants) and the keywords an inbound message (MO) from the simulated carrier acts on
(STOP opts out, START opts back in, HELP gets the account's help text back, once)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from urllib.parse import quote

import asyncpg
import pytest

from broker import accounts
from broker.config import Settings
from broker.inbound import Inbound, store_inbound
from broker.queue_messages import CarrierEvents, InboundEvent
from broker.queues import Amqp, QueueNames
from broker.segmentation.wire import decode_short_message
from smsc_sim import SmscSimulator
from tests.harness import (
    Customer,
    SimStack,
    ledger_consistent,
    sim_stack,
    verify_standard_webhook,
)


class Stack(SimStack):
    """The module's gateway, with the helpers its tests speak in."""

    async def call(
        self, customer: Customer, method: str, path: str, payload: Any = None
    ) -> tuple[int, Any]:
        async with self.http.request(
            method, f"{self.api}{path}", json=payload, headers=customer.headers
        ) as resp:
            body = await resp.json() if resp.status != 204 else None
            return resp.status, body

    async def number(self, customer: Customer) -> str:
        """A long number of the customer's (digits, no '+')."""
        number = f"1415556{uuid.uuid4().int % 10_000:04d}"
        async with self.pool.acquire() as conn:
            await accounts.add_number(conn, customer.account_id, number, "")
        return number

    async def inbound_hook(self, customer: Customer, body: str, **match: Any) -> dict[str, Any]:
        hits = await self.receiver.wait_for(
            lambda r: (
                r.path == customer.path
                and r.json["type"] == "message.inbound"
                and r.json["data"]["body"] == body
                and all(r.json["data"].get(k) == v for k, v in match.items())
            )
        )
        verify_standard_webhook(customer.webhook_secret, hits[0].headers, hits[0].body)
        data: dict[str, Any] = hits[0].json["data"]
        return data


@pytest.fixture(scope="module")
async def stack(settings: Settings, pool: asyncpg.Pool) -> AsyncIterator[Stack]:
    async with sim_stack(settings, pool, Stack, "optout") as stack:
        yield stack


def sender() -> str:
    """A random Ghanaian mobile number, as a carrier gives it (no '+')."""
    return f"23320555{uuid.uuid4().int % 10_000:04d}"


async def opt_out_rows(pool: asyncpg.Pool, account_id: uuid.UUID) -> list[asyncpg.Record]:
    return await pool.fetch(
        "SELECT phone, source, keyword, inbound_id FROM opt_outs WHERE account_id = $1"
        " ORDER BY phone",
        account_id,
    )


# --- the API ----------------------------------------------------------------------------


async def test_add_list_read_and_remove(stack: Stack) -> None:
    customer = await stack.customer()
    status, created = await stack.call(customer, "POST", "/v1/opt-outs", {"phone": "+14155552671"})
    assert status == 201, created
    assert created["phone"] == "+14155552671"
    assert created["source"] == "api" and created["keyword"] is None and created["created_at"]

    # Already opted out: 200 with the same opt-out, nothing changed.
    status, again = await stack.call(customer, "POST", "/v1/opt-outs", {"phone": "4155552671"})
    assert status == 200 and again == created

    status, page = await stack.call(customer, "GET", "/v1/opt-outs")
    assert status == 200 and page == {"data": [created], "next_cursor": None}
    status, one = await stack.call(customer, "GET", "/v1/opt-outs/%2B14155552671")
    assert status == 200 and one == created

    status, _ = await stack.call(customer, "DELETE", f"/v1/opt-outs/{quote('+14155552671')}")
    assert status == 204
    status, err = await stack.call(customer, "DELETE", "/v1/opt-outs/%2B14155552671")
    assert status == 404 and err["error"]["code"] == "NOT_FOUND"
    status, err = await stack.call(customer, "GET", "/v1/opt-outs/14155552671")
    assert status == 404
    assert await opt_out_rows(stack.pool, customer.account_id) == []


async def test_numbers_are_normalized_with_the_account_region(stack: Stack) -> None:
    customer = await stack.customer(region="GH")
    status, created = await stack.call(customer, "POST", "/v1/opt-outs", {"phone": "020 555 0368"})
    assert status == 201 and created["phone"] == "+233205550368"
    # The path takes the number with or without '+', or in its local form.
    for form in ("233205550368", quote("+233 20 555 0368"), quote("020 555 0368"), "0205550368"):
        status, one = await stack.call(customer, "GET", f"/v1/opt-outs/{form}")
        assert status == 200 and one["phone"] == "+233205550368", form
    status, _ = await stack.call(customer, "DELETE", "/v1/opt-outs/0205550368")
    assert status == 204
    assert await opt_out_rows(stack.pool, customer.account_id) == []


@pytest.mark.parametrize(
    "payload",
    [{"phone": "12"}, {"phone": "not a phone"}, {"phone": ""}, {}, {"phone": 14155552671}],
)
async def test_bad_phone_is_400_and_changes_nothing(stack: Stack, payload: Any) -> None:
    customer = await stack.customer()
    status, err = await stack.call(customer, "POST", "/v1/opt-outs", payload)
    assert status == 400, err
    assert err["error"]["code"] == "INVALID_PHONE_NUMBER" and err["error"]["field"] == "phone"
    for method in ("GET", "DELETE"):
        status, err = await stack.call(customer, method, "/v1/opt-outs/12")
        assert status == 400 and err["error"]["code"] == "INVALID_PHONE_NUMBER"
    assert await opt_out_rows(stack.pool, customer.account_id) == []


async def test_list_is_newest_first_with_a_cursor(stack: Stack) -> None:
    customer = await stack.customer()
    phones = [f"+1415555{2600 + i}" for i in range(5)]
    for phone in phones:
        status, _ = await stack.call(customer, "POST", "/v1/opt-outs", {"phone": phone})
        assert status == 201
    seen: list[str] = []
    cursor = None
    while True:
        query = "?limit=2" + (f"&cursor={cursor}" if cursor else "")
        status, page = await stack.call(customer, "GET", f"/v1/opt-outs{query}")
        assert status == 200 and len(page["data"]) <= 2
        seen += [o["phone"] for o in page["data"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == phones[::-1]
    status, err = await stack.call(customer, "GET", "/v1/opt-outs?cursor=nope")
    assert status == 400 and err["error"]["code"] == "INVALID_CURSOR"


async def test_another_accounts_opt_outs_are_never_seen_or_touched(stack: Stack) -> None:
    alice, bob = await stack.customer(), await stack.customer()
    status, _ = await stack.call(alice, "POST", "/v1/opt-outs", {"phone": "+14155552671"})
    assert status == 201
    status, page = await stack.call(bob, "GET", "/v1/opt-outs")
    assert page["data"] == []
    for method in ("GET", "DELETE"):
        status, _ = await stack.call(bob, method, "/v1/opt-outs/%2B14155552671")
        assert status == 404
    # Bob's own opt-out of the same number is his alone.
    status, _ = await stack.call(bob, "POST", "/v1/opt-outs", {"phone": "+14155552671"})
    assert status == 201
    status, _ = await stack.call(bob, "DELETE", "/v1/opt-outs/%2B14155552671")
    assert status == 204
    assert [r["phone"] for r in await opt_out_rows(stack.pool, alice.account_id)] == [
        "+14155552671"
    ]


# --- keywords in inbound messages ---------------------------------------------------------


async def test_stop_opts_the_sender_out_and_start_back_in(stack: Stack) -> None:
    customer = await stack.customer()
    number, phone = await stack.number(customer), sender()
    await stack.sim.inject_mo(phone, number, "  stop ")
    data = await stack.inbound_hook(customer, "  stop ")
    assert data["action"] == "opt_out" and data["action_keyword"] == "STOP"
    assert data["from"] == f"+{phone}" and data["to"] == f"+{number}"
    assert data["keyword"] is None and data["received_at"]  # the fields it always had
    [row] = await opt_out_rows(stack.pool, customer.account_id)
    assert (row["phone"], row["source"], row["keyword"]) == (f"+{phone}", "keyword", "STOP")
    assert str(row["inbound_id"]) == data["id"]
    status, page = await stack.call(customer, "GET", "/v1/opt-outs")
    assert [(o["phone"], o["source"], o["keyword"]) for o in page["data"]] == [
        (f"+{phone}", "keyword", "STOP")
    ]

    await stack.sim.inject_mo(phone, number, "Start")
    data = await stack.inbound_hook(customer, "Start")
    assert data["action"] == "opt_in" and data["action_keyword"] == "START"
    assert await opt_out_rows(stack.pool, customer.account_id) == []


async def test_an_ordinary_message_changes_nothing(stack: Stack) -> None:
    customer = await stack.customer()
    number, phone = await stack.number(customer), sender()
    await stack.sim.inject_mo(phone, number, "stop sending me these")
    data = await stack.inbound_hook(customer, "stop sending me these")
    assert data["action"] is None and data["action_keyword"] is None
    assert await opt_out_rows(stack.pool, customer.account_id) == []


async def test_a_keyword_to_another_accounts_number_leaves_this_account_alone(
    stack: Stack,
) -> None:
    alice, bob = await stack.customer(), await stack.customer()
    await stack.number(alice)
    bobs_number, phone = await stack.number(bob), sender()
    status, _ = await stack.call(alice, "POST", "/v1/opt-outs", {"phone": f"+{phone}"})
    assert status == 201
    await stack.sim.inject_mo(phone, bobs_number, "UNSUBSCRIBE")
    await stack.inbound_hook(bob, "UNSUBSCRIBE", action="opt_out")
    await stack.sim.inject_mo(phone, bobs_number, "unstop")
    await stack.inbound_hook(bob, "unstop", action="opt_in")
    await stack.sim.inject_mo(phone, bobs_number, "QUIT")
    await stack.inbound_hook(bob, "QUIT", action="opt_out")
    [row] = await opt_out_rows(stack.pool, alice.account_id)
    assert row["source"] == "api"  # alice's own opt-out, untouched by bob's keywords
    [row] = await opt_out_rows(stack.pool, bob.account_id)
    assert row["keyword"] == "QUIT"
    assert not [r for r in stack.receiver.received if r.path == alice.path]


def _submitted_to(sim: SmscSimulator, phone: str) -> list[tuple[str, str]]:
    """(source_addr, text) of every submit_sm the carrier got for ``phone``."""
    return [
        (
            r.source_addr,
            decode_short_message(
                r.short_message, r.data_coding, udhi=bool(r.esm_class & 0x40)
            ).text,
        )
        for r in sim.submitted
        if r.destination_addr == phone
    ]


async def test_help_gets_the_help_text_back_once_even_when_redelivered(stack: Stack) -> None:
    customer = await stack.customer(credits=5)
    await stack.pool.execute(
        "UPDATE accounts SET help_text = 'Acme alerts: reply STOP to end. help@acme.test'"
        " WHERE id = $1",
        customer.account_id,
    )
    number, phone = await stack.number(customer), sender()
    await stack.sim.inject_mo(phone, number, "HELP")
    data = await stack.inbound_hook(customer, "HELP")
    assert data["action"] == "help" and data["action_keyword"] == "HELP"
    reply = await stack.receiver.wait_for(
        lambda r: (
            r.path == customer.path
            and r.json["type"] == "message.status"
            and r.json["data"]["to"] == f"+{phone}"
        )
    )
    assert reply[0].json["data"]["status"] == "delivered"
    expected = [(number, "Acme alerts: reply STOP to end. help@acme.test")]
    assert _submitted_to(stack.sim, phone) == expected

    # The same inbound event again (as after a crash between commit and ack): no second reply.
    row = await stack.pool.fetchrow(
        "SELECT id, connector, received_at FROM inbound_messages WHERE id = $1",
        uuid.UUID(data["id"]),
    )
    event = InboundEvent(
        id=row["id"],
        connector=row["connector"],
        from_number=phone,
        to_number=number,
        text="HELP",
        received_at=row["received_at"],
    )
    amqp = Amqp(stack.settings.amqp_url, QueueNames(stack.settings.queue_prefix))
    await amqp.connect()
    try:
        for _ in range(2):
            await amqp.publish(amqp.names.events, CarrierEvents(events=[event]))
    finally:
        await amqp.close()
    # A marker MO after the redeliveries: once its webhook is out, they were processed.
    await stack.sim.inject_mo(phone, number, "marker")
    await stack.inbound_hook(customer, "marker")
    await asyncio.sleep(1.0)
    assert _submitted_to(stack.sim, phone) == expected
    count = await stack.pool.fetchval(
        "SELECT count(*) FROM messages WHERE account_id = $1", customer.account_id
    )
    assert count == 1
    assert await ledger_consistent(stack.pool, customer.account_id) == (Decimal(4), Decimal(4))
    hooks = [
        r
        for r in stack.receiver.received
        if r.path == customer.path and r.json["type"] == "message.inbound"
    ]
    assert len(hooks) == 2  # HELP and the marker: the redelivered one is not announced twice


async def test_help_without_a_help_text_gets_the_default_naming_stop(stack: Stack) -> None:
    customer = await stack.customer(credits=5)
    number, phone = await stack.number(customer), sender()
    await stack.sim.inject_mo(phone, number, " Help ")
    await stack.inbound_hook(customer, " Help ", action="help")
    async with asyncio.timeout(20):
        while not _submitted_to(stack.sim, phone):
            await asyncio.sleep(0.1)
    [(source, text)] = _submitted_to(stack.sim, phone)
    assert source == number and "STOP" in text
    # HELP does not opt anybody out.
    assert await opt_out_rows(stack.pool, customer.account_id) == []


async def test_store_inbound_replies_to_a_redelivered_help_with_the_same_id(
    conn: asyncpg.Connection,
) -> None:
    """What the events worker relies on: a redelivery changes nothing and announces nothing
    again, but its reply is made again (its first publish may have been lost) with the same
    message id, which the charge worker stores once."""
    account_id = await accounts.create_account(conn, "help-redelivery", Decimal(1), "US")
    number = f"1415557{uuid.uuid4().int % 10_000:04d}"
    await accounts.add_number(conn, account_id, number, "")
    mo = Inbound(uuid.uuid4(), "sim", "233205550368", number, "help", datetime.now(UTC))
    first = await store_inbound(conn, mo)
    again = await store_inbound(conn, mo)
    assert first.event is not None and again.event is None
    assert first.reply is not None and again.reply is not None
    assert first.reply.recipients == again.reply.recipients
    [(reply_id, to)] = first.reply.recipients
    assert to == "+233205550368" and reply_id != mo.id
    assert first.reply.sender == number and "STOP" in first.reply.body

    stop = Inbound(uuid.uuid4(), "sim", "233205550368", number, "STOP", datetime.now(UTC))
    assert (await store_inbound(conn, stop)).reply is None
    assert (await store_inbound(conn, stop)).reply is None
    assert [
        r["keyword"]
        for r in await conn.fetch("SELECT keyword FROM opt_outs WHERE account_id = $1", account_id)
    ] == ["STOP"]

    # Nobody's number: stored, no event, no opt-out, no reply.
    stray = Inbound(uuid.uuid4(), "sim", "233205550368", "19995550000", "HELP", datetime.now(UTC))
    assert await store_inbound(conn, stray) == type(first)()
