"""The SMPP layer against an SMSC we did not write: the npm package ``smpp``.

The server script is tests/smsc_node/server.js; its packages are installed with
``npm ci --prefix tests/smsc_node``. Without them (or without node) these tests skip.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from broker.errors import BrokerError
from broker.smpp.client import ClientConfig, connect
from broker.smpp.connector import Connector, ConnectorConfig, SubmitOutcome, SubmitPart
from broker.smpp.constants import Status
from broker.smpp.pdu import Pdu
from broker.smpp.receipt import canonical_message_id, parse_receipt
from tests.smsc_peers import NodeSmsc, bound, connector_config, start_node_smsc

StartSmsc = Callable[..., Awaitable[NodeSmsc]]


@pytest.fixture
async def start_smsc() -> AsyncIterator[StartSmsc]:
    started: list[NodeSmsc] = []

    async def start(*args: str) -> NodeSmsc:
        smsc = await start_node_smsc(
            "--system-id", "gateway", "--password", "secret", "--receipt-delay-ms", "20", *args
        )
        started.append(smsc)
        return smsc

    yield start
    for smsc in started:
        await smsc.stop()


class Inbox:
    """What the gateway's deliver handler received."""

    def __init__(self) -> None:
        self.pdus: list[Pdu] = []
        self.fail_next = 0
        self._changed = asyncio.Event()

    async def __call__(self, name: str, pdu: Pdu) -> None:
        assert name == "node"
        if self.fail_next:
            self.fail_next -= 1
            raise BrokerError("not durable yet")
        self.pdus.append(pdu)
        self._changed.set()

    async def wait(self, count: int, timeout: float = 10.0) -> list[Pdu]:
        async with asyncio.timeout(timeout):
            while len(self.pdus) < count:
                self._changed.clear()
                await self._changed.wait()
        return self.pdus


def config(smsc: NodeSmsc, **overrides: Any) -> ConnectorConfig:
    return connector_config("node", smsc.port, **overrides)


PART = SubmitPart(
    source_addr="Bank", destination_addr="4915112345678", short_message=b"Hello", data_coding=0
)


@pytest.mark.parametrize(("bind_mode", "binds"), [("trx", 1), ("tx_rx", 2)])
async def test_submit_and_receipt(start_smsc: StartSmsc, bind_mode: str, binds: int) -> None:
    smsc = await start_smsc()
    inbox = Inbox()
    async with bound(Connector(config(smsc, bind_mode=bind_mode, binds=binds), inbox)) as conn:
        outcome = await conn.submit(PART)
        assert outcome.command_status == 0
        assert outcome.message_id
        (receipt_pdu,) = await inbox.wait(1)
        receipt = parse_receipt(receipt_pdu)
        assert receipt is not None
        assert receipt.message_id == outcome.message_id
        assert receipt.state == "DELIVRD"
        assert receipt.error == "000"
        assert receipt.done_date is not None
        await smsc.wait(lambda: bool(smsc.named("deliver_sm_resp")))
        assert smsc.named("deliver_sm_resp")[0]["command_status"] == 0
        (submitted,) = smsc.named("submit_sm")
        assert submitted["destination_addr"] == "4915112345678"
        assert bytes.fromhex(submitted["short_message_hex"]) == b"Hello"
    await smsc.wait(lambda: bool(smsc.named("unbind")))
    assert len(smsc.named("unbind")) == binds * (2 if bind_mode == "tx_rx" else 1)


async def test_receipt_text_form_only_when_tlvs_are_ignored(start_smsc: StartSmsc) -> None:
    smsc = await start_smsc("--receipt-stat", "UNDELIV")
    inbox = Inbox()
    async with bound(Connector(config(smsc), inbox)) as conn:
        outcome = await conn.submit(PART)
        (pdu,) = await inbox.wait(1)
        pdu.tlvs.clear()  # what a carrier sending the text form only would give
        receipt = parse_receipt(pdu)
        assert receipt is not None
        assert receipt.message_id == outcome.message_id
        assert receipt.state == "UNDELIV"
        assert receipt.text == "Hello"


@pytest.mark.parametrize("id_format", ["hex", "dec"])
async def test_message_id_formats(start_smsc: StartSmsc, id_format: str) -> None:
    smsc = await start_smsc("--id-format", id_format)
    inbox = Inbox()
    async with bound(Connector(config(smsc), inbox)) as conn:
        outcome = await conn.submit(PART)
        (pdu,) = await inbox.wait(1)
        receipt = parse_receipt(pdu)
        assert receipt is not None and outcome.message_id is not None
        assert receipt.message_id != outcome.message_id
        stored = canonical_message_id(outcome.message_id, fmt=id_format, from_receipt=False)  # type: ignore[arg-type]
        looked_up = canonical_message_id(receipt.message_id, fmt=id_format, from_receipt=True)  # type: ignore[arg-type]
        assert stored == looked_up


async def test_mo_messages(start_smsc: StartSmsc) -> None:
    smsc = await start_smsc()
    inbox = Inbox()
    async with bound(Connector(config(smsc), inbox)):
        await smsc.command("mo 491700000001 12345 STOP please")
        await smsc.command("mo 491700000002 12345 grüße ✓")
        first, second = await inbox.wait(2)
        assert parse_receipt(first) is None
        assert first.body["source_addr"] == "491700000001"
        assert first.body["destination_addr"] == "12345"
        assert first.body["data_coding"] == 0
        assert first.body["short_message"] == b"STOP please"
        assert second.body["data_coding"] == 8
        assert second.body["short_message"] == "grüße ✓".encode("utf-16-be")


async def test_concatenated_mo_raw(start_smsc: StartSmsc) -> None:
    smsc = await start_smsc()
    inbox = Inbox()
    async with bound(Connector(config(smsc), inbox)):
        await smsc.command("mo_raw 4917 12345 0 0x40 0500030a0201" + b"part one".hex())
        (pdu,) = await inbox.wait(1)
        assert pdu.body["esm_class"] == 0x40
        assert pdu.body["short_message"] == bytes.fromhex("0500030a0201") + b"part one"


async def test_failed_deliver_is_redelivered(start_smsc: StartSmsc) -> None:
    smsc = await start_smsc()
    inbox = Inbox()
    inbox.fail_next = 1
    async with bound(Connector(config(smsc), inbox)) as conn:
        outcome = await conn.submit(PART)
        (pdu,) = await inbox.wait(1)
        receipt = parse_receipt(pdu)
        assert receipt is not None and receipt.message_id == outcome.message_id
        await smsc.wait(lambda: len(smsc.named("deliver_sm_resp")) == 2)
        statuses = [e["command_status"] for e in smsc.named("deliver_sm_resp")]
        assert statuses == [Status.ESME_RX_T_APPN, 0]


async def test_throttling_and_vendor_status(start_smsc: StartSmsc) -> None:
    smsc = await start_smsc()
    inbox = Inbox()
    async with bound(Connector(config(smsc, tps=500), inbox)) as conn:
        await smsc.command("reject 0x58 2")
        outcome = await conn.submit(PART, timeout=10)
        assert outcome.command_status == 0 and outcome.message_id
        await smsc.wait(lambda: len(smsc.named("submit_sm")) == 3)
        statuses = [e["command_status"] for e in smsc.named("submit_sm")]
        assert statuses == [0x58, 0x58, 0]
        await smsc.command("reject 0x401")
        assert await conn.submit(PART) == SubmitOutcome(0x401, None)


async def test_wrong_password_never_binds(start_smsc: StartSmsc) -> None:
    smsc = await start_smsc()
    connector = Connector(config(smsc, password="nope"), Inbox())
    await connector.start()
    await smsc.wait(lambda: len(smsc.named("bind")) >= 2)  # it keeps retrying
    assert connector.bound_count == 0
    assert {e["command_status"] for e in smsc.named("bind")} == {Status.ESME_RINVPASWD}
    await connector.close()


async def test_reconnect_after_drop_and_pending_receipts(start_smsc: StartSmsc) -> None:
    smsc = await start_smsc("--receipt-delay-ms", "300")
    inbox = Inbox()
    async with bound(Connector(config(smsc), inbox)) as conn:
        outcome = await conn.submit(PART)
        await smsc.command("drop")
        await smsc.wait(lambda: len(smsc.named("bind")) >= 2)
        assert await conn.wait_bound(10)
        (pdu,) = await inbox.wait(1)  # queued by the SMSC while we were away
        receipt = parse_receipt(pdu)
        assert receipt is not None and receipt.message_id == outcome.message_id
        assert (await conn.submit(PART)).command_status == 0


async def test_enquire_link_with_node(start_smsc: StartSmsc) -> None:
    smsc = await start_smsc()
    client = await connect(
        ClientConfig(
            host="127.0.0.1",
            port=smsc.port,
            system_id="gateway",
            password="secret",
            enquire_link_interval=0.02,
            response_timeout=2.0,
        )
    )
    await smsc.wait(lambda: len(smsc.named("enquire_link")) >= 3)
    assert client.is_bound
    await client.close()


async def test_long_message_parts_arrive_intact(start_smsc: StartSmsc) -> None:
    smsc = await start_smsc()
    udh_part = SubmitPart(
        source_addr="Bank",
        destination_addr="4915112345678",
        short_message=bytes.fromhex("0500037f0201") + b"A" * 153,
        data_coding=0,
        esm_class=0x40,
        registered_delivery=0,
    )
    payload_part = SubmitPart(
        source_addr="Bank",
        destination_addr="4915112345678",
        short_message=b"",
        data_coding=8,
        registered_delivery=0,
        tlvs={0x0424: "ü".encode("utf-16-be") * 300},
    )
    async with bound(Connector(config(smsc), Inbox())) as conn:
        assert (await conn.submit(udh_part)).command_status == 0
        assert (await conn.submit(payload_part)).command_status == 0
        await smsc.wait(lambda: len(smsc.named("submit_sm")) == 2)
        first, second = smsc.named("submit_sm")
        assert bytes.fromhex(first["short_message_hex"]) == udh_part.short_message
        assert first["esm_class"] == 0x40
        assert bytes.fromhex(second["message_payload_hex"]) == "ü".encode("utf-16-be") * 300
        assert second["data_coding"] == 8
