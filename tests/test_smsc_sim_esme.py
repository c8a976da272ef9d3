"""The simulated carrier over real TCP, driven by a minimal raw-socket ESME built on the codec.

The ``RawEsme`` here is reused by the other smsc_sim test modules.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator

import pytest
import structlog

from broker.smpp.constants import CommandId, MessageState, Status, Tag
from broker.smpp.pdu import FrameReader, Pdu, decode_pdu, encode_pdu, tlv_cstring, tlv_int
from smsc_sim import SimConfig, SmscSimulator

WAIT = 10.0  # generous bound so a broken simulator fails the test instead of hanging it

BIND = {
    "transmitter": CommandId.BIND_TRANSMITTER,
    "receiver": CommandId.BIND_RECEIVER,
    "transceiver": CommandId.BIND_TRANSCEIVER,
}


class RawEsme:
    """Just enough ESME to talk to the simulator: frames in, frames out, nothing hidden."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.frames = FrameReader()
        self.inbox: list[Pdu] = []
        self.sequence = 0

    @classmethod
    async def connect(cls, port: int) -> RawEsme:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        return cls(reader, writer)

    def send(self, pdu: Pdu) -> int:
        if pdu.sequence_number == 0:
            self.sequence += 1
            pdu.sequence_number = self.sequence
        self.writer.write(encode_pdu(pdu))
        return pdu.sequence_number

    async def read(self) -> Pdu:
        """The next PDU from the inbox or the wire; raises EOFError when the server closed."""
        while not self.inbox:
            data = await asyncio.wait_for(self.reader.read(65536), WAIT)
            if not data:
                raise EOFError
            self.inbox.extend(decode_pdu(frame) for frame in self.frames.feed(data))
        return self.inbox.pop(0)

    async def response_to(self, sequence: int) -> Pdu:
        """The response with ``sequence``; other PDUs read meanwhile stay in the inbox."""
        kept: list[Pdu] = []
        try:
            while True:
                pdu = await self.read()
                if pdu.command_id & 0x80000000 and pdu.sequence_number == sequence:
                    return pdu
                kept.append(pdu)
        finally:
            self.inbox[:0] = kept

    async def request(self, pdu: Pdu) -> Pdu:
        return await self.response_to(self.send(pdu))

    async def bind(self, mode: str = "transceiver", system_id: str = "smsbroker",
                   password: str = "secret") -> Pdu:  # fmt: skip
        body: dict[str, int | str | bytes] = {
            "system_id": system_id, "password": password, "interface_version": 0x34,
        }  # fmt: skip
        return await self.request(Pdu(BIND[mode], 0, 0, body))

    async def submit(
        self, destination: str = "4915112345678", text: bytes = b"hello world",
        *, registered_delivery: int = 1, **extra: int | str | bytes,
    ) -> Pdu:  # fmt: skip
        body: dict[str, int | str | bytes] = {
            "source_addr": "Acme", "source_addr_ton": 5, "dest_addr_ton": 1, "dest_addr_npi": 1,
            "destination_addr": destination, "registered_delivery": registered_delivery,
            "short_message": text, **extra,
        }  # fmt: skip
        return await self.request(Pdu(CommandId.SUBMIT_SM, 0, 0, body))

    async def deliver(self, *, ack: int | None = 0) -> Pdu:
        """The next deliver_sm; answered with ``ack`` as command_status (None: not answered)."""
        kept: list[Pdu] = []
        try:
            while True:
                pdu = await self.read()
                if pdu.command_id == CommandId.DELIVER_SM:
                    if ack is not None:
                        self.send(pdu.response(ack))
                    return pdu
                kept.append(pdu)
        finally:
            self.inbox[:0] = kept

    async def closed_by_server(self) -> bool:
        try:
            while True:
                await self.read()
        except (EOFError, ConnectionResetError):
            return True

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(ConnectionResetError, BrokenPipeError):
            await self.writer.wait_closed()


async def wait_until(predicate: object, what: str) -> None:
    """Poll a condition the simulator reaches asynchronously (bounded, not timed)."""
    assert callable(predicate)
    for _ in range(int(WAIT / 0.01)):
        if predicate():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"timed out waiting for {what}")


def fast_config(**overrides: object) -> SimConfig:
    settings: dict[str, object] = {"port": 0, "receipt_delay": (0.0, 0.01), "seed": 7}
    settings.update(overrides)
    return SimConfig(**settings)  # type: ignore[arg-type]


@pytest.fixture(autouse=True)
def fresh_log_output() -> None:
    """Undo a log configuration left by an in-process ``smsbroker`` run in an earlier test.

    ``main()`` points structlog at the ``sys.stderr`` of its moment, which under pytest's
    capture is a file closed after that test; the defaults resolve the stream at each write.
    """
    structlog.reset_defaults()


@pytest.fixture
async def sim() -> AsyncIterator[SmscSimulator]:
    simulator = SmscSimulator(fast_config())
    await simulator.start()
    yield simulator
    await simulator.stop()


@pytest.fixture
async def esme(sim: SmscSimulator) -> AsyncIterator[RawEsme]:
    client = await RawEsme.connect(sim.port)
    yield client
    await client.close()


RECEIPT = re.compile(
    r"id:(?P<id>\S+) sub:001 dlvrd:(?P<dlvrd>\d{3}) submit date:(?P<submit>\d{10}) "
    r"done date:(?P<done>\d{10}) stat:(?P<stat>[A-Z]{7}) err:(?P<err>\d{3}) text:(?P<text>.*)"
)


async def test_bind_submit_and_receipt(sim: SmscSimulator, esme: RawEsme) -> None:
    bound = await esme.bind()
    assert (bound.command_id, bound.command_status) == (CommandId.BIND_TRANSCEIVER_RESP, 0)
    assert bound.body["system_id"] == "smscsim"
    assert bound.tlvs[Tag.SC_INTERFACE_VERSION] == b"\x34"

    resp = await esme.submit(text=b"Your code is 123456, valid 5 minutes")
    assert (resp.command_id, resp.command_status) == (CommandId.SUBMIT_SM_RESP, 0)
    message_id = str(resp.body["message_id"])
    assert re.fullmatch(r"[0-9a-f]+", message_id)

    receipt = await esme.deliver()
    assert receipt.body["esm_class"] == 0x04
    assert receipt.body["source_addr"] == "4915112345678"
    assert (receipt.body["source_addr_ton"], receipt.body["dest_addr_ton"]) == (1, 5)
    assert receipt.body["destination_addr"] == "Acme"
    assert tlv_cstring(receipt, Tag.RECEIPTED_MESSAGE_ID) == message_id
    assert tlv_int(receipt, Tag.MESSAGE_STATE) == MessageState.DELIVERED
    match = RECEIPT.fullmatch(bytes(receipt.body["short_message"]).decode("ascii"))  # type: ignore[arg-type]
    assert match is not None
    assert match["id"] == message_id
    assert (match["stat"], match["err"], match["dlvrd"]) == ("DELIVRD", "000", "001")
    assert match["text"] == "Your code is 123456,"

    await wait_until(lambda: sim.stats["receipts_acknowledged"] == 1, "the receipt's ack")
    record = sim.submitted[-1]
    assert (record.message_id, record.destination_addr) == (message_id, "4915112345678")
    assert record.short_message == b"Your code is 123456, valid 5 minutes"
    assert record.outcome == "DELIVRD"


async def test_message_ids_are_unique(sim: SmscSimulator, esme: RawEsme) -> None:
    await esme.bind("transmitter")
    sequences = [
        esme.send(Pdu(CommandId.SUBMIT_SM, 0, 0, {"destination_addr": "1", "short_message": b"x"}))
        for _ in range(200)
    ]
    ids = [str((await esme.response_to(seq)).body["message_id"]) for seq in sequences]
    assert len(set(ids)) == 200


async def test_no_receipt_unless_asked(sim: SmscSimulator, esme: RawEsme) -> None:
    await esme.bind()
    assert (await esme.submit(registered_delivery=0)).command_status == 0
    # registered_delivery 2 asks for failures only; every outcome here is DELIVRD.
    assert (await esme.submit(registered_delivery=2)).command_status == 0
    marker = await esme.submit(registered_delivery=1)
    receipt = await esme.deliver()
    assert tlv_cstring(receipt, Tag.RECEIPTED_MESSAGE_ID) == marker.body["message_id"]
    assert sim.stats["receipts_sent"] == 1


@pytest.mark.parametrize(
    ("system_id", "password", "status"),
    [("smsbroker", "wrong", Status.ESME_RINVPASWD), ("nobody", "secret", Status.ESME_RINVSYSID)],
)
async def test_bad_credentials_are_refused_and_closed(
    sim: SmscSimulator, esme: RawEsme, system_id: str, password: str, status: int
) -> None:
    resp = await esme.bind("transceiver", system_id, password)
    assert resp.command_status == status
    assert await esme.closed_by_server()
    assert sim.stats["bind_rejects"] == 1


async def test_several_accounts() -> None:
    simulator = SmscSimulator(fast_config(accounts={"alpha": "pw1", "beta": "pw2"}))
    await simulator.start()
    try:
        for system_id, password in (("alpha", "pw1"), ("beta", "pw2")):
            client = await RawEsme.connect(simulator.port)
            assert (await client.bind("transmitter", system_id, password)).command_status == 0
            await client.close()
        client = await RawEsme.connect(simulator.port)
        assert (await client.bind("transmitter", "alpha", "pw2")).command_status == 0x0E
        await client.close()
    finally:
        await simulator.stop()


async def test_submit_needs_a_transmitting_bind(sim: SmscSimulator, esme: RawEsme) -> None:
    assert (await esme.submit()).command_status == Status.ESME_RINVBNDSTS
    await esme.bind("receiver")
    assert (await esme.submit()).command_status == Status.ESME_RINVBNDSTS
    assert (await esme.bind("transmitter")).command_status == Status.ESME_RALYBND


async def test_enquire_link_unknown_command_and_unbind(sim: SmscSimulator, esme: RawEsme) -> None:
    await esme.bind()
    link = await esme.request(Pdu(CommandId.ENQUIRE_LINK, 0))
    assert (link.command_id, link.command_status) == (CommandId.ENQUIRE_LINK_RESP, 0)
    nack = await esme.request(Pdu(0x00000777, 0))
    assert (nack.command_id, nack.command_status) == (CommandId.GENERIC_NACK, Status.ESME_RINVCMDID)
    still = await esme.request(Pdu(CommandId.ENQUIRE_LINK, 0))
    assert still.command_status == 0  # the bind survived the unknown command
    unbound = await esme.request(Pdu(CommandId.UNBIND, 0))
    assert unbound.command_id == CommandId.UNBIND_RESP
    assert await esme.closed_by_server()


async def test_malformed_body_gets_generic_nack(sim: SmscSimulator, esme: RawEsme) -> None:
    await esme.bind()
    # A submit_sm whose sm_length runs past the end of the PDU.
    frame = bytearray(encode_pdu(Pdu(CommandId.SUBMIT_SM, 41, 0, {"short_message": b"abc"})))
    frame[-4] = 200
    esme.writer.write(bytes(frame))
    nack = await esme.response_to(41)
    assert nack.command_id == CommandId.GENERIC_NACK
    assert nack.command_status != 0
    assert (await esme.request(Pdu(CommandId.ENQUIRE_LINK, 0))).command_status == 0
