"""The same end-to-end flow with an SMSC we did not write: the npm package `smpp`.

HTTP in, SMPP out to the node server, its receipts (message ids in hex on submit_sm_resp and
decimal in receipts, so the connector's id format is exercised) and MO back as signed webhooks.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Any

import aiohttp
import asyncpg
import pytest

from api.server import start_api
from broker import accounts
from broker.config import Settings
from tests.harness import (
    Customer,
    WebhookReceiver,
    add_connector,
    ledger_consistent,
    new_customer,
    verify_standard_webhook,
)
from tests.smsc_peers import NodeSmsc, start_node_smsc
from workers.runner import WorkerSet

ROUTE_PREFIX = "442079"  # London numbers go to the node SMSC in this module


@dataclass
class NodeStack:
    api: str
    http: aiohttp.ClientSession
    pool: asyncpg.Pool
    smsc: NodeSmsc
    receiver: WebhookReceiver

    async def send(self, customer: Customer, payload: dict[str, Any]) -> str:
        async with self.http.post(
            f"{self.api}/v1/messages", json=payload, headers=customer.headers
        ) as resp:
            body = await resp.json()
            assert resp.status == 202, body
            mid: str = body["messages"][0]["id"]
            return mid

    async def final(self, customer: Customer, message_id: str) -> dict[str, Any]:
        [hit] = await self.receiver.wait_for(
            lambda r: (
                r.path == customer.path
                and r.json["type"] == "message.status"
                and r.json["data"]["id"] == message_id
            )
        )
        verify_standard_webhook(customer.webhook_secret, hit.headers, hit.body)
        data: dict[str, Any] = hit.json["data"]
        return data


@pytest.fixture(scope="module")
async def node_stack(settings: Settings, pool: asyncpg.Pool) -> AsyncIterator[NodeStack]:
    smsc = await start_node_smsc(
        "--system-id",
        "gateway",
        "--password",
        "secret",
        "--receipt-delay-ms",
        "30",
        "--id-format",
        "hex",
    )
    await add_connector(
        pool, "node-smsc", smsc.port, system_id="gateway", dlr_id_format="hex", binds=2
    )
    async with pool.acquire() as conn:
        await accounts.add_route(conn, ROUTE_PREFIX, "node-smsc", Decimal(1))
    receiver = WebhookReceiver()
    await receiver.start()
    node_settings = replace(settings, queue_prefix="tnode")
    workers = WorkerSet(node_settings)
    await workers.start()
    runner = await start_api(node_settings, "127.0.0.1", 0)
    http = aiohttp.ClientSession()
    yield NodeStack(f"http://127.0.0.1:{runner.addresses[0][1]}", http, pool, smsc, receiver)
    await http.close()
    await runner.cleanup()
    await workers.stop()
    await receiver.stop()
    await smsc.stop()


def london() -> str:
    return f"+44207946{uuid.uuid4().int % 10_000:04d}"


async def customer(stack: NodeStack, credits: int = 10) -> Customer:
    return await new_customer(stack.pool, stack.http, stack.api, stack.receiver, credits=credits)


@pytest.mark.parametrize(
    ("text", "segments"), [("Hello from the gateway", 1), ("Ünïcødé ✓ " * 10, 2)]
)
async def test_delivered_through_node_smsc(node_stack: NodeStack, text: str, segments: int) -> None:
    c = await customer(node_stack)
    mid = await node_stack.send(c, {"to": london(), "body": text})
    data = await node_stack.final(c, mid)
    assert data["status"] == "delivered" and data["segments"] == segments
    submits = [
        e
        for e in node_stack.smsc.named("submit_sm")
        if e.get("destination_addr") == data["to"].lstrip("+")
    ]
    assert len(submits) == segments
    balance, total = await ledger_consistent(node_stack.pool, c.account_id)
    assert balance == total == Decimal(10 - segments)


async def test_undelivered_and_refused_through_node_smsc(node_stack: NodeStack) -> None:
    c = await customer(node_stack)
    await node_stack.smsc.command("stat UNDELIV")
    try:
        undelivered = await node_stack.send(c, {"to": london(), "body": "not reachable"})
        assert (await node_stack.final(c, undelivered))["status"] == "undelivered"
    finally:
        await node_stack.smsc.command("stat DELIVRD")
    await node_stack.smsc.command("reject 0x45 1")
    refused = await node_stack.send(c, {"to": london(), "body": "refused"})
    data = await node_stack.final(c, refused)
    assert data["status"] == "failed" and data["error"]["code"] == "SUBMIT_REJECTED"
    balance, total = await ledger_consistent(node_stack.pool, c.account_id)
    assert balance == total == Decimal(9)  # the undelivered one stays charged, the refused not


async def test_inbound_through_node_smsc(node_stack: NodeStack) -> None:
    c = await customer(node_stack)
    number = f"44207946{uuid.uuid4().int % 10_000:04d}"
    async with node_stack.pool.acquire() as conn:
        await accounts.add_number(conn, c.account_id, number, "")
    await node_stack.smsc.command(f"mo 33612345678 {number} Bonjour, ça va ?")
    [hit] = await node_stack.receiver.wait_for(
        lambda r: r.path == c.path and r.json["type"] == "message.inbound"
    )
    verify_standard_webhook(c.webhook_secret, hit.headers, hit.body)
    assert hit.json["data"]["body"] == "Bonjour, ça va ?"
    assert hit.json["data"]["from"] == "+33612345678"
