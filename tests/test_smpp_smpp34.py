"""The SMPP layer against a second independent SMSC: the server of the PyPI package smpp34.

smpp34.Server cannot report the port it bound, so the fixture picks a free port first
(bind to port 0, close, reuse the number); it accepts any system_id and password.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from broker.errors import BrokerError
from broker.smpp.connector import Connector, ConnectorConfig, SubmitOutcome, SubmitPart
from broker.smpp.constants import Status, Tag
from broker.smpp.pdu import Pdu, cstring_tlv, int_tlv
from broker.smpp.receipt import parse_receipt
from tests.smsc_peers import bound, connector_config

smpp34 = pytest.importorskip("smpp34")


class Smpp34Smsc:
    """Runs smpp34.Server and answers submit_sm through ``decide`` (default: accept)."""

    def __init__(self, port: int) -> None:
        self.server = smpp34.Server("127.0.0.1", port, system_id="smpp34")
        self.port = port
        self.esmes: list[Any] = []
        self.submits: list[Any] = []
        self.held: list[Any] = []
        self.unbound = 0
        self.decide: Callable[[Any], int | None] = lambda event: 0  # None: hold the event
        self._counter = 0
        self._changed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self.server.start()
        self._task = asyncio.create_task(self._serve())

    async def stop(self) -> None:
        await self.server.stop()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _serve(self) -> None:
        while True:
            event = await self.server.next()
            if isinstance(event, smpp34.Esme):
                self.esmes.append(event)
            elif isinstance(event, smpp34.SubmitSmEvent):
                self.submits.append(event)
                status = self.decide(event)
                if status is None:
                    self.held.append(event)
                else:
                    self.answer(event, status)
            elif isinstance(event, smpp34.Unbound):
                self.unbound += 1
            self._changed.set()

    def answer(self, event: Any, status: int = 0) -> None:
        if status:
            event.reject(status)
        else:
            self._counter += 1
            event.accept(f"s34-{self._counter}")

    async def wait(self, predicate: Callable[[], bool], timeout: float = 10.0) -> None:
        async with asyncio.timeout(timeout):
            while not predicate():
                self._changed.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._changed.wait(), 0.01)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@pytest.fixture
async def smsc() -> AsyncIterator[Smpp34Smsc]:
    server = Smpp34Smsc(free_port())
    await server.start()
    yield server
    await server.stop()


class Inbox:
    def __init__(self) -> None:
        self.pdus: list[Pdu] = []
        self.fail = False

    async def __call__(self, name: str, pdu: Pdu) -> None:
        if self.fail:
            raise BrokerError("cannot store the event now")
        self.pdus.append(pdu)


def config(smsc: Smpp34Smsc, **overrides: Any) -> ConnectorConfig:
    return connector_config("smpp34", smsc.port, **overrides)


PART = SubmitPart(
    source_addr="Bank", destination_addr="4915112345678", short_message=b"Hi", data_coding=0
)


async def test_submit_accepted(smsc: Smpp34Smsc) -> None:
    async with bound(Connector(config(smsc), Inbox())) as conn:
        assert await conn.submit(PART) == SubmitOutcome(0, "s34-1")
        (event,) = smsc.submits
        assert event.destination_addr == "4915112345678"
        assert event.source_addr == "Bank"
        assert event.short_message == b"Hi"
        assert event.registered_delivery == 1
    await smsc.wait(lambda: smsc.unbound == 1)


async def test_refusals_and_throttling(smsc: Smpp34Smsc) -> None:
    # smpp34 turns command_status values it does not know into ESME_RSYSERR, so vendor
    # values are exercised against the node SMSC and the scriptable one instead.
    statuses = [Status.ESME_RTHROTTLED, Status.ESME_RMSGQFUL, 0, Status.ESME_RINVDSTADR]
    smsc.decide = lambda event: statuses.pop(0)
    async with bound(Connector(config(smsc, tps=200), Inbox())) as conn:
        assert (await conn.submit(PART, timeout=10)).command_status == 0
        assert len(smsc.submits) == 3
        assert await conn.submit(PART) == SubmitOutcome(Status.ESME_RINVDSTADR, None)


async def test_window_with_smpp34(smsc: Smpp34Smsc) -> None:
    smsc.decide = lambda event: None
    async with bound(Connector(config(smsc, window=4), Inbox())) as conn:
        tasks = [asyncio.create_task(conn.submit(PART)) for _ in range(9)]
        answered = 0
        while answered < 9:
            expected = min(4, 9 - answered)
            await smsc.wait(lambda n=expected: len(smsc.held) >= n)  # type: ignore[misc]
            assert len(smsc.held) == expected
            batch = list(smsc.held)
            smsc.held.clear()
            for event in batch:
                smsc.answer(event)
            answered += len(batch)
        outcomes = await asyncio.gather(*tasks)
        assert sorted(o.message_id or "" for o in outcomes) == sorted(
            f"s34-{i}" for i in range(1, 10)
        )


async def test_receipt_and_mo_from_smpp34(smsc: Smpp34Smsc) -> None:
    inbox = Inbox()
    async with bound(Connector(config(smsc), inbox)):
        await smsc.wait(lambda: len(smsc.esmes) == 1)
        (esme,) = smsc.esmes
        assert esme.can_receive
        tlvs = [
            smpp34.Tlv(Tag.RECEIPTED_MESSAGE_ID, cstring_tlv("s34-7")),
            smpp34.Tlv(Tag.MESSAGE_STATE, int_tlv(2, 1)),
        ]
        text = (
            b"id:s34-7 sub:001 dlvrd:001 submit date:2401311530 done date:240131153112 "
            b"stat:DELIVRD err:000 text:Hi"
        )
        receipt_resp = await esme.deliver_sm(
            "Bank", text, source_addr="4915112345678", esm_class=0x04, tlvs=tlvs
        )
        mo_resp = await esme.deliver_sm("12345", b"STOP", source_addr="491700000001")
        assert receipt_resp.command_status == 0
        assert mo_resp.command_status == 0
        receipt_pdu, mo_pdu = inbox.pdus
        receipt = parse_receipt(receipt_pdu)
        assert receipt is not None
        assert (receipt.message_id, receipt.state) == ("s34-7", "DELIVRD")
        assert receipt.done_date is not None and receipt.done_date.second == 12
        assert parse_receipt(mo_pdu) is None
        assert mo_pdu.body["short_message"] == b"STOP"


async def test_deliver_callback_failure_seen_by_smpp34(smsc: Smpp34Smsc) -> None:
    inbox = Inbox()
    inbox.fail = True
    async with bound(Connector(config(smsc), inbox)):
        await smsc.wait(lambda: len(smsc.esmes) == 1)
        (esme,) = smsc.esmes
        response = await esme.deliver_sm("12345", b"hello", source_addr="491700000001")
        assert response.command_status == Status.ESME_RX_T_APPN
        inbox.fail = False
        response = await esme.deliver_sm("12345", b"hello", source_addr="491700000001")
        assert response.command_status == 0
        assert len(inbox.pdus) == 1


async def test_tx_rx_binds_with_smpp34(smsc: Smpp34Smsc) -> None:
    # Only submits here: smpp34's server answers a deliver_sm_resp on a receiver bind with
    # generic_nack ESME_RINVCMDID and then fails its own deliver_sm after 30 s (its defect;
    # the same deliver_sm_resp is accepted on a transceiver bind, see above).
    async with bound(Connector(config(smsc, bind_mode="tx_rx", binds=2), Inbox())) as conn:
        await smsc.wait(lambda: len(smsc.esmes) == 4)
        assert sorted(e.can_receive for e in smsc.esmes) == [False, False, True, True]
        outcomes = await asyncio.gather(*(conn.submit(PART) for _ in range(10)))
        assert {o.command_status for o in outcomes} == {0}
        assert len(smsc.submits) == 10
    await smsc.wait(lambda: smsc.unbound == 4)
