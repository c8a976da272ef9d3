"""Keywords of inbound WhatsApp messages, end to end: a whole gateway with an SMS route to the
simulated carrier and a WhatsApp route to the fake Cloud API (whatsapp_sim), both over real
TCP/HTTP. HELP sent on WhatsApp is answered on WhatsApp, never by SMS; HELP sent by SMS is
still answered by SMS."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import asyncpg
import pytest

from broker import accounts
from broker.config import Settings
from broker.inbound import Inbound, store_inbound
from broker.opt_outs import help_reply_id
from broker.store.connectors import WhatsAppSpec
from tests.harness import Customer, SimStack, ledger_consistent, sim_stack
from whatsapp_sim import WhatsAppSimConfig, WhatsAppSimulator

#: The WhatsApp route's price per message (the SMS route's is 1 per part).
PRICE = Decimal("0.5")
#: The WhatsApp route covers Ghanaian numbers only, so a US sender has no WhatsApp route.
WA_PREFIX = "233"
HELP_TEXT = "Acme alerts on WhatsApp: reply STOP to end."


class Stack(SimStack):
    wa: WhatsAppSimulator
    connector: str

    async def whatsapp_number(self, customer: Customer) -> str:
        """A fresh display number of the fake's WhatsApp number, owned by ``customer``."""
        number = f"1555{uuid.uuid4().int % 10_000_000:07d}"
        self.wa.config.display_number = number
        async with self.pool.acquire() as conn:
            await accounts.add_number(conn, customer.account_id, number, "")
        return number

    async def inbound_hook(self, customer: Customer, body: str) -> dict[str, Any]:
        hit = await self.receiver.event(
            customer.path, "message.inbound", lambda d: d["body"] == body
        )
        data: dict[str, Any] = hit.json["data"]
        return data

    def whatsapp_sent_to(self, phone: str) -> list[str]:
        """The texts the fake Cloud API took for ``phone``."""
        return [r.body["text"]["body"] for r in self.wa.sent if r.body["to"] == phone.lstrip("+")]

    def sms_submitted_to(self, phone: str) -> list[str]:
        """Destinations of what the SMS carrier took for ``phone`` (any part)."""
        digits = phone.lstrip("+")
        return [r.destination_addr for r in self.sim.submitted if r.destination_addr == digits]


@pytest.fixture(scope="module")
async def stack(settings: Settings, pool: asyncpg.Pool) -> AsyncIterator[Stack]:
    """The fake Cloud API as a WhatsApp connector routed for +233, added before the gateway
    starts; the route is removed after (tests/test_whatsapp.py expects no other module's)."""
    wa = WhatsAppSimulator(WhatsAppSimConfig(status_delay=0.05))
    await wa.start()
    name = f"wa-kw-{uuid.uuid4().hex[:6]}"
    spec = WhatsAppSpec(
        name, wa.base_url, wa.config.phone_number_id, wa.config.token, wa.config.app_secret, "v"
    )
    async with pool.acquire() as conn:
        await accounts.add_whatsapp_connector(conn, spec)
        await accounts.add_route(conn, WA_PREFIX, name, PRICE, "whatsapp")
    try:
        async with sim_stack(settings, pool, Stack, "wa-kw-sms") as s:
            s.wa, s.connector = wa, name
            wa.config.callback_url = f"{s.api}/webhooks/whatsapp/{name}"
            yield s
    finally:
        await pool.execute("DELETE FROM routes WHERE connector = $1", name)
        await wa.stop()


def ghana_phone() -> str:
    return f"+23320555{uuid.uuid4().int % 10_000:04d}"


async def test_whatsapp_help_is_answered_on_whatsapp_not_by_sms(stack: Stack) -> None:
    customer = await stack.customer(credits=5)
    await stack.pool.execute(
        "UPDATE accounts SET help_text = $2 WHERE id = $1", customer.account_id, HELP_TEXT
    )
    number, phone = await stack.whatsapp_number(customer), ghana_phone()
    await stack.wa.inject_inbound(phone, "help")
    data = await stack.inbound_hook(customer, "help")
    assert data["action"] == "help" and data["to"] == f"+{number}"

    async with asyncio.timeout(20):
        while not stack.whatsapp_sent_to(phone):
            await asyncio.sleep(0.05)
    reply_id = str(help_reply_id(uuid.UUID(data["id"])))
    assert (await stack.final_webhook(customer, reply_id))["status"] == "delivered"
    assert stack.whatsapp_sent_to(phone) == [HELP_TEXT]
    [posted] = [r for r in stack.wa.sent if r.body["to"] == phone.lstrip("+")]
    assert posted.path.endswith(f"/{stack.wa.config.phone_number_id}/messages")

    row = await stack.pool.fetchrow(
        "SELECT channel, connector, sender, cost, status FROM messages WHERE id = $1",
        uuid.UUID(reply_id),
    )
    assert dict(row) == {
        "channel": "whatsapp",
        "connector": stack.connector,
        "sender": number,
        "cost": PRICE,
        "status": "delivered",
    }
    # Charged once, at the WhatsApp route's price; and nothing went to the SMS carrier.
    assert await ledger_consistent(stack.pool, customer.account_id) == (
        Decimal(5) - PRICE,
        Decimal(5) - PRICE,
    )
    count = await stack.pool.fetchval(
        "SELECT count(*) FROM messages WHERE account_id = $1", customer.account_id
    )
    assert count == 1
    assert stack.sms_submitted_to(phone) == []


async def test_whatsapp_help_without_a_whatsapp_route_is_no_reply_at_all(stack: Stack) -> None:
    """A WhatsApp user whose number no WhatsApp route covers gets nothing (never an SMS): the
    reply ends failed NO_ROUTE, uncharged, which the account sees in its status webhook."""
    customer = await stack.customer(credits=5)
    await stack.whatsapp_number(customer)
    phone = f"+1415555{uuid.uuid4().int % 10_000:04d}"  # the SMS default route covers it
    await stack.wa.inject_inbound(phone, "HELP")
    data = await stack.inbound_hook(customer, "HELP")
    reply_id = str(help_reply_id(uuid.UUID(data["id"])))
    status = await stack.final_webhook(customer, reply_id)
    assert status["status"] == "failed"
    row = await stack.pool.fetchrow(
        "SELECT channel, error_code, cost FROM messages WHERE id = $1", uuid.UUID(reply_id)
    )
    assert dict(row) == {"channel": "whatsapp", "error_code": "NO_ROUTE", "cost": Decimal(0)}
    assert await ledger_consistent(stack.pool, customer.account_id) == (Decimal(5), Decimal(5))
    await asyncio.sleep(0.5)
    assert stack.sms_submitted_to(phone) == [] and stack.whatsapp_sent_to(phone) == []


async def test_sms_help_is_still_answered_by_sms(stack: Stack) -> None:
    """The sender's number has a WhatsApp route too: the channel the HELP came on decides."""
    customer = await stack.customer(credits=5)
    number = f"1415558{uuid.uuid4().int % 10_000:04d}"
    async with stack.pool.acquire() as conn:
        await accounts.add_number(conn, customer.account_id, number, "")
    phone = ghana_phone()
    await stack.sim.inject_mo(phone.lstrip("+"), number, "HELP")
    data = await stack.inbound_hook(customer, "HELP")
    reply_id = str(help_reply_id(uuid.UUID(data["id"])))
    assert (await stack.final_webhook(customer, reply_id))["status"] == "delivered"
    assert "STOP" in await stack.carrier_text(phone)
    row = await stack.pool.fetchrow(
        "SELECT channel, sender, cost FROM messages WHERE id = $1", uuid.UUID(reply_id)
    )
    assert dict(row) == {"channel": "sms", "sender": number, "cost": Decimal(1)}
    assert stack.whatsapp_sent_to(phone) == []


async def test_a_redelivered_whatsapp_help_is_replied_to_on_whatsapp_again(
    stack: Stack, conn: asyncpg.Connection
) -> None:
    """The reply made again for a redelivered HELP (its first publish may have been lost)
    keeps the channel, as it keeps the message id."""
    account_id = await accounts.create_account(conn, "wa-help-redelivery", Decimal(1), "US")
    number = f"1555{uuid.uuid4().int % 10_000_000:07d}"
    await accounts.add_number(conn, account_id, number, "")
    mo = Inbound(uuid.uuid4(), stack.connector, "233205550368", number, "HELP", datetime.now(UTC))
    first = await store_inbound(conn, mo)
    again = await store_inbound(conn, mo)
    assert first.reply is not None and again.reply is not None
    assert first.reply.channel == again.reply.channel == "whatsapp"
    assert first.reply.recipients == again.reply.recipients
