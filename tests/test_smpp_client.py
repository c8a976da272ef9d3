"""The SMPP client and connector over real TCP against a small scriptable SMSC in this file."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

import pytest

from broker.errors import BrokerError, InputError
from broker.smpp.client import ClientConfig, SmppClient, connect
from broker.smpp.connector import (
    Connector,
    ConnectorConfig,
    SubmitOutcome,
    SubmitPart,
    SubmitUnavailable,
)
from broker.smpp.constants import CommandId, Status, Tag
from broker.smpp.errors import SmppBindError, SmppTimeout
from broker.smpp.pdu import FrameReader, Pdu, SmppCodecError, decode_pdu, encode_pdu

SubmitHook = Callable[["SmscConnection", Pdu], Awaitable[None]]


@dataclass
class SmscConnection:
    """One ESME connection as the test SMSC sees it."""

    writer: asyncio.StreamWriter
    mode: str = ""
    received: list[Pdu] = field(default_factory=list)
    next_seq: int = 1000

    def send(self, pdu: Pdu) -> None:
        self.writer.write(encode_pdu(pdu))

    def send_request(self, command_id: int, **body: int | str | bytes) -> Pdu:
        self.next_seq += 1
        pdu = Pdu(command_id, self.next_seq, 0, dict(body))
        self.send(pdu)
        return pdu

    def drop(self) -> None:
        self.writer.transport.abort()


class TestSmsc:
    """A scriptable SMSC: binds, answers submit_sm per a hook, records everything."""

    __test__ = False

    def __init__(self, *, system_id: str = "esme", password: str = "pw") -> None:
        self.system_id = system_id
        self.password = password
        self.connections: list[SmscConnection] = []
        self.binds = 0
        self.submits: list[tuple[SmscConnection, Pdu]] = []
        self.responses: asyncio.Queue[Pdu] = asyncio.Queue()  # responses the ESME sent us
        self.unbinds = 0
        self.answer_enquire_link = True
        self.enquire_links = 0
        self.submit_statuses: list[int] = []  # consumed first; then message ids
        #: Read everything, answer nothing (binds, submits, enquire_link): a carrier gone quiet.
        self.silent = False
        self.on_submit: SubmitHook | None = None
        self.changed = asyncio.Event()
        self._server: asyncio.Server | None = None
        self._counter = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self.port = 0

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        for conn in self.connections:
            conn.drop()
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=5)
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    def bound(self, mode: str | None = None) -> list[SmscConnection]:
        return [c for c in self.connections if c.mode and (mode is None or c.mode == mode)]

    async def wait_for(self, predicate: Callable[[], bool], timeout: float = 5.0) -> None:
        """Wait until ``predicate`` holds, re-checking on every SMSC event and every 10 ms."""
        async with asyncio.timeout(timeout):
            while not predicate():
                self.changed.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.changed.wait(), 0.01)

    def _note(self) -> None:
        self.changed.set()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = SmscConnection(writer)
        self.connections.append(conn)
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        frames = FrameReader()
        try:
            while data := await reader.read(65536):
                for frame in frames.feed(data):
                    await self._handle(conn, decode_pdu(frame))
        except (ConnectionError, SmppCodecError):
            pass
        finally:
            self.connections.remove(conn)
            writer.close()
            self._note()

    async def _handle(self, conn: SmscConnection, pdu: Pdu) -> None:
        conn.received.append(pdu)
        cid = pdu.command_id
        if self.silent:
            if cid == CommandId.SUBMIT_SM:
                self.submits.append((conn, pdu))
            self._note()
            return
        if cid in (CommandId.BIND_TRANSCEIVER, CommandId.BIND_TRANSMITTER, CommandId.BIND_RECEIVER):
            ok = pdu.body["system_id"] == self.system_id and pdu.body["password"] == self.password
            status = 0 if ok else Status.ESME_RINVPASWD
            conn.send(pdu.response(status, system_id="TESTSMSC"))
            if ok:
                conn.mode = {1: "rx", 2: "tx", 9: "trx"}[cid]
                self.binds += 1
        elif cid == CommandId.SUBMIT_SM:
            self.submits.append((conn, pdu))
            if self.on_submit is not None:
                await self.on_submit(conn, pdu)
            else:
                conn.send(self.answer_submit(pdu))
        elif cid == CommandId.ENQUIRE_LINK:
            self.enquire_links += 1
            if self.answer_enquire_link:
                conn.send(pdu.response())
        elif cid == CommandId.UNBIND:
            self.unbinds += 1
            conn.send(pdu.response())
            conn.mode = ""
        elif cid & 0x80000000:
            await self.responses.put(pdu)
        self._note()

    def answer_submit(self, pdu: Pdu) -> Pdu:
        if self.submit_statuses:
            return pdu.response(self.submit_statuses.pop(0))
        self._counter += 1
        return pdu.response(message_id=f"m{self._counter}")


@pytest.fixture
async def smsc() -> AsyncIterator[TestSmsc]:
    server = TestSmsc()
    await server.start()
    yield server
    await server.stop()


def client_config(smsc: TestSmsc, **overrides: object) -> ClientConfig:
    values: dict[str, object] = {
        "host": "127.0.0.1",
        "port": smsc.port,
        "system_id": "esme",
        "password": "pw",
        "response_timeout": 5.0,
    }
    values.update(overrides)
    return ClientConfig(**values)  # type: ignore[arg-type]


def connector_config(smsc: TestSmsc, **overrides: object) -> ConnectorConfig:
    values: dict[str, object] = {
        "name": "test",
        "host": "127.0.0.1",
        "port": smsc.port,
        "system_id": "esme",
        "password": "pw",
        "response_timeout": 5.0,
        "reconnect_min": 0.01,
        "reconnect_max": 0.05,
    }
    values.update(overrides)
    return ConnectorConfig(**values)  # type: ignore[arg-type]


PART = SubmitPart(
    source_addr="Bank", destination_addr="4915112345678", short_message=b"hi", data_coding=0
)


async def no_delivers(name: str, pdu: Pdu) -> None:
    raise AssertionError(f"unexpected deliver_sm on {name}: {pdu}")


@contextlib.asynccontextmanager
async def running(connector: Connector) -> AsyncIterator[Connector]:
    await connector.start()
    try:
        assert await connector.wait_bound(5.0, all_binds=True)
        yield connector
    finally:
        await connector.close()


# --- one client ----------------------------------------------------------------------------


async def test_bind_and_submit(smsc: TestSmsc) -> None:
    client = await connect(client_config(smsc))
    assert client.is_bound and client.can_transmit
    response = await client.submit_sm({"destination_addr": "1", "short_message": b"x"})
    assert response.command_status == 0
    assert response.body["message_id"] == "m1"
    await client.close()
    assert client.closed
    assert smsc.unbinds == 1


async def test_bind_refused_keeps_the_status(smsc: TestSmsc) -> None:
    with pytest.raises(SmppBindError) as info:
        await connect(client_config(smsc, password="wrong"))
    assert info.value.command_status == Status.ESME_RINVPASWD


async def test_window_bounds_submits_in_flight(smsc: TestSmsc) -> None:
    held: list[tuple[SmscConnection, Pdu]] = []
    most = 0

    async def hold(conn: SmscConnection, pdu: Pdu) -> None:
        nonlocal most
        held.append((conn, pdu))
        most = max(most, len(held))

    smsc.on_submit = hold
    client = await connect(client_config(smsc, window=3))
    tasks = [asyncio.create_task(client.submit_sm({"destination_addr": str(i)})) for i in range(10)]
    answered = 0
    while answered < 10:
        expected = min(3, 10 - answered)
        await smsc.wait_for(lambda n=expected: len(held) >= n)  # type: ignore[misc]
        batch = list(held)
        held.clear()
        for conn, pdu in batch:
            conn.send(smsc.answer_submit(pdu))
        answered += len(batch)
    results = await asyncio.gather(*tasks)
    assert most == 3
    assert sorted(r.body["message_id"] for r in results) == sorted(f"m{i}" for i in range(1, 11))
    await client.close()


async def test_unknown_pdu_gets_generic_nack_and_bind_survives(smsc: TestSmsc) -> None:
    client = await connect(client_config(smsc))
    (conn,) = smsc.bound()
    conn.send(Pdu(0x00000077, 4242))
    nack = await asyncio.wait_for(smsc.responses.get(), 5)
    assert nack == Pdu(CommandId.GENERIC_NACK, 4242, Status.ESME_RINVCMDID)
    response = await client.submit_sm({"destination_addr": "1"})
    assert response.command_status == 0
    assert client.is_bound
    await client.close()


async def test_malformed_deliver_sm_gets_generic_nack(smsc: TestSmsc) -> None:
    client = await connect(client_config(smsc))
    (conn,) = smsc.bound()
    # a deliver_sm, seq 9, whose body ends in the middle of its mandatory fields
    broken_tlv = bytes.fromhex("00000018 00000005 00000000 00000009 001e0009 61620000")
    conn.writer.write(broken_tlv)
    nack = await asyncio.wait_for(smsc.responses.get(), 5)
    assert nack.command_id == CommandId.GENERIC_NACK
    assert nack.sequence_number == 9
    assert nack.command_status != 0
    assert client.is_bound
    await client.close()


async def test_vendor_status_is_kept(smsc: TestSmsc) -> None:
    smsc.submit_statuses = [0x00000400]
    client = await connect(client_config(smsc))
    response = await client.submit_sm({"destination_addr": "1"})
    assert response.command_status == 0x400
    assert client.is_bound
    await client.close()


async def test_enquire_link_sent_when_idle(smsc: TestSmsc) -> None:
    client = await connect(client_config(smsc, enquire_link_interval=0.02))
    await smsc.wait_for(lambda: smsc.enquire_links >= 2)
    assert client.is_bound
    await client.close()


async def test_missing_enquire_link_resp_closes_the_connection(smsc: TestSmsc) -> None:
    smsc.answer_enquire_link = False
    client = await connect(client_config(smsc, enquire_link_interval=0.02, response_timeout=0.1))
    await asyncio.wait_for(client.wait_closed(), 5)
    assert smsc.enquire_links >= 1
    assert not client.is_bound


async def test_response_timeout(smsc: TestSmsc) -> None:
    async def ignore(conn: SmscConnection, pdu: Pdu) -> None:
        return None

    smsc.on_submit = ignore
    client = await connect(client_config(smsc, response_timeout=0.05))
    with pytest.raises(SmppTimeout):
        await client.submit_sm({"destination_addr": "1"})
    assert client.in_flight == 0
    await client.close()


async def test_unbind_from_smsc_is_answered(smsc: TestSmsc) -> None:
    client = await connect(client_config(smsc))
    (conn,) = smsc.bound()
    request = conn.send_request(CommandId.UNBIND)
    response = await asyncio.wait_for(smsc.responses.get(), 5)
    assert response == Pdu(CommandId.UNBIND_RESP, request.sequence_number)
    await asyncio.wait_for(client.wait_closed(), 5)


async def test_enquire_link_from_smsc_is_answered(smsc: TestSmsc) -> None:
    client = await connect(client_config(smsc))
    (conn,) = smsc.bound()
    request = conn.send_request(CommandId.ENQUIRE_LINK)
    response = await asyncio.wait_for(smsc.responses.get(), 5)
    assert response == Pdu(CommandId.ENQUIRE_LINK_RESP, request.sequence_number)
    await client.close()


async def test_empty_message_id_is_none(smsc: TestSmsc) -> None:
    async def empty(conn: SmscConnection, pdu: Pdu) -> None:
        conn.send(pdu.response(message_id=""))

    smsc.on_submit = empty
    async with running(Connector(connector_config(smsc), no_delivers)) as connector:
        assert await connector.submit(PART) == SubmitOutcome(0, None)


async def test_deliver_sm_resp_only_after_the_callback(smsc: TestSmsc) -> None:
    release = asyncio.Event()
    seen: list[Pdu] = []

    async def on_deliver(pdu: Pdu) -> None:
        seen.append(pdu)
        assert smsc.responses.empty()  # nothing answered while the event is not durable
        await release.wait()
        assert smsc.responses.empty()

    client = await connect(client_config(smsc), on_deliver)
    (conn,) = smsc.bound()
    sent = conn.send_request(CommandId.DELIVER_SM, source_addr="491", short_message=b"hello")
    await smsc.wait_for(lambda: bool(seen))
    release.set()
    response = await asyncio.wait_for(smsc.responses.get(), 5)
    assert response == Pdu(CommandId.DELIVER_SM_RESP, sent.sequence_number, 0, {"message_id": ""})
    assert seen[0].body["short_message"] == b"hello"
    await client.close()


async def test_deliver_callback_failure_asks_for_redelivery(smsc: TestSmsc) -> None:
    async def on_deliver(pdu: Pdu) -> None:
        raise BrokerError("database unavailable")

    client = await connect(client_config(smsc), on_deliver)
    (conn,) = smsc.bound()
    sent = conn.send_request(CommandId.DELIVER_SM, short_message=b"x")
    response = await asyncio.wait_for(smsc.responses.get(), 5)
    assert response.sequence_number == sent.sequence_number
    assert response.command_status == Status.ESME_RX_T_APPN == 0x64
    assert client.is_bound
    await client.close()


async def test_deliver_sm_on_transmitter_is_refused(smsc: TestSmsc) -> None:
    client = await connect(client_config(smsc, mode="tx"))
    (conn,) = smsc.bound()
    conn.send_request(CommandId.DELIVER_SM, short_message=b"x")
    response = await asyncio.wait_for(smsc.responses.get(), 5)
    assert response.command_status == Status.ESME_RINVBNDSTS
    await client.close()


async def test_close_waits_for_running_callbacks(smsc: TestSmsc) -> None:
    release = asyncio.Event()
    entered = asyncio.Event()

    async def on_deliver(pdu: Pdu) -> None:
        entered.set()
        await release.wait()

    client = await connect(client_config(smsc), on_deliver)
    (conn,) = smsc.bound()
    conn.send_request(CommandId.DELIVER_SM, short_message=b"x")
    await entered.wait()
    closing = asyncio.create_task(client.close())
    await asyncio.sleep(0)
    release.set()
    await closing
    response = await asyncio.wait_for(smsc.responses.get(), 5)
    assert response.command_id == CommandId.DELIVER_SM_RESP
    assert response.command_status == 0
    assert smsc.unbinds == 1


# --- connector -----------------------------------------------------------------------------


async def test_connector_submit(smsc: TestSmsc) -> None:
    async with running(Connector(connector_config(smsc), no_delivers)) as connector:
        outcome = await connector.submit(PART)
        assert outcome == SubmitOutcome(0, "m1")
        assert connector.bound_count == 1
        (_, pdu) = smsc.submits[0]
        assert pdu.body["source_addr"] == "Bank"
        assert pdu.body["destination_addr"] == "4915112345678"
        assert pdu.body["registered_delivery"] == 1
        assert pdu.body["dest_addr_ton"] == 1
    assert smsc.unbinds == 1
    assert connector.bound_count == 0


async def test_connector_keeps_vendor_status(smsc: TestSmsc) -> None:
    smsc.submit_statuses = [0x000000C1, 0x0000FFFE]
    async with running(Connector(connector_config(smsc), no_delivers)) as connector:
        assert await connector.submit(PART) == SubmitOutcome(0xC1, None)
        assert await connector.submit(PART) == SubmitOutcome(0xFFFE, None)


async def test_connector_retries_throttled_submits(smsc: TestSmsc) -> None:
    smsc.submit_statuses = [Status.ESME_RTHROTTLED, Status.ESME_RMSGQFUL, Status.ESME_RTHROTTLED]
    async with running(Connector(connector_config(smsc, tps=1000), no_delivers)) as connector:
        outcome = await connector.submit(PART, timeout=10)
        assert outcome == SubmitOutcome(0, "m1")
        assert len(smsc.submits) == 4


async def test_connector_returns_throttling_when_it_persists(smsc: TestSmsc) -> None:
    smsc.submit_statuses = [Status.ESME_RTHROTTLED] * 100
    async with running(Connector(connector_config(smsc), no_delivers)) as connector:
        outcome = await connector.submit(PART, timeout=0.3)
        assert outcome == SubmitOutcome(Status.ESME_RTHROTTLED, None)
        assert 1 <= len(smsc.submits) < 100


async def test_connector_spreads_over_binds(smsc: TestSmsc) -> None:
    async with running(Connector(connector_config(smsc, binds=3), no_delivers)) as connector:
        assert connector.bound_count == 3
        outcomes = await asyncio.gather(*(connector.submit(PART) for _ in range(30)))
        assert all(o.command_status == 0 for o in outcomes)
        assert len({id(conn) for conn, _ in smsc.submits}) == 3


async def test_connector_window_across_binds(smsc: TestSmsc) -> None:
    held: list[tuple[SmscConnection, Pdu]] = []

    async def hold(conn: SmscConnection, pdu: Pdu) -> None:
        held.append((conn, pdu))

    smsc.on_submit = hold
    config = connector_config(smsc, binds=2, window=2)
    async with running(Connector(config, no_delivers)) as connector:
        tasks = [asyncio.create_task(connector.submit(PART)) for _ in range(6)]
        await smsc.wait_for(lambda: len(held) == 4)
        per_connection = {id(conn) for conn, _ in held}
        assert len(per_connection) == 2
        smsc.on_submit = None
        for conn, pdu in held:
            conn.send(smsc.answer_submit(pdu))
        outcomes = await asyncio.gather(*tasks)
        assert len(smsc.submits) == 6
        assert {o.command_status for o in outcomes} == {0}


async def test_connector_reconnects_after_drop(smsc: TestSmsc) -> None:
    async with running(Connector(connector_config(smsc, binds=2), no_delivers)) as connector:
        first = list(smsc.bound())
        for conn in first:
            conn.drop()
        await smsc.wait_for(lambda: smsc.binds == 4 and len(smsc.bound()) == 2)
        assert await connector.wait_bound(5, all_binds=True)
        assert (await connector.submit(PART)).command_status == 0


async def test_bind_lost_with_submit_in_flight(smsc: TestSmsc) -> None:
    async def drop(conn: SmscConnection, pdu: Pdu) -> None:
        conn.drop()

    smsc.on_submit = drop
    async with running(Connector(connector_config(smsc), no_delivers)) as connector:
        with pytest.raises(SubmitUnavailable):
            await connector.submit(PART)


async def test_no_bound_session_is_unavailable() -> None:
    probe = TestSmsc()
    await probe.start()
    await probe.stop()  # a port where nobody listens any more
    config = connector_config(probe, reconnect_min=0.05, reconnect_max=0.1)
    connector = Connector(config, no_delivers)
    await connector.start()
    assert not await connector.wait_bound(0.1)
    with pytest.raises(SubmitUnavailable):
        await connector.submit(PART, timeout=0.1)
    await connector.close()


async def test_connector_tx_rx_delivers_on_the_receiver(smsc: TestSmsc) -> None:
    delivered: list[tuple[str, Pdu]] = []

    async def on_deliver(name: str, pdu: Pdu) -> None:
        delivered.append((name, pdu))

    config = connector_config(smsc, bind_mode="tx_rx")
    async with running(Connector(config, on_deliver)) as connector:
        assert sorted(c.mode for c in smsc.bound()) == ["rx", "tx"]
        assert (await connector.submit(PART)).message_id == "m1"
        assert all(conn.mode == "tx" for conn, _ in smsc.submits)
        (rx,) = smsc.bound("rx")
        rx.send_request(CommandId.DELIVER_SM, esm_class=4, short_message=b"id:m1 stat:DELIVRD")
        response = await asyncio.wait_for(smsc.responses.get(), 5)
        assert response.command_status == 0
        assert delivered[0][0] == "test"
        assert delivered[0][1].body["short_message"] == b"id:m1 stat:DELIVRD"


async def test_connector_passes_tlvs(smsc: TestSmsc) -> None:
    part = SubmitPart(
        source_addr="1",
        destination_addr="2",
        short_message=b"",
        data_coding=8,
        tlvs={Tag.MESSAGE_PAYLOAD: b"\x00h\x00i"},
    )
    async with running(Connector(connector_config(smsc), no_delivers)) as connector:
        await connector.submit(part)
        (_, pdu) = smsc.submits[0]
        assert pdu.tlvs == {Tag.MESSAGE_PAYLOAD: b"\x00h\x00i"}


@pytest.mark.parametrize(
    ("field_name", "value"),
    [
        ("port", 0),
        ("system_id", "x" * 16),
        ("password", "123456789"),
        ("binds", 0),
        ("window", 0),
        ("tps", 0.0),
        ("reconnect_min", 0.0),
        ("bind_mode", "rx"),
    ],
)
def test_connector_config_refuses_bad_values(field_name: str, value: object) -> None:
    values: dict[str, object] = {
        "name": "c",
        "host": "h",
        "port": 2775,
        "system_id": "s",
        "password": "p",
    }
    values[field_name] = value
    with pytest.raises(InputError) as info:
        ConnectorConfig(**values)  # type: ignore[arg-type]
    assert info.value.field == field_name


async def test_client_load_counts_waiters(smsc: TestSmsc) -> None:
    held: list[tuple[SmscConnection, Pdu]] = []

    async def hold(conn: SmscConnection, pdu: Pdu) -> None:
        held.append((conn, pdu))

    smsc.on_submit = hold
    client: SmppClient = await connect(client_config(smsc, window=1))
    first = asyncio.create_task(client.submit_sm({"destination_addr": "1"}))
    second = asyncio.create_task(client.submit_sm({"destination_addr": "2"}))
    await smsc.wait_for(lambda: len(held) == 1)
    assert client.load == 2
    assert client.in_flight == 1
    with pytest.raises(SmppTimeout):
        await client.submit_sm({"destination_addr": "3"}, queue_timeout=0.01)
    smsc.on_submit = None
    conn, pdu = held[0]
    conn.send(smsc.answer_submit(pdu))
    assert (await first).command_status == 0
    assert (await second).command_status == 0
    assert client.load == 0
    await client.close()


async def test_a_silent_carrier_gets_at_most_one_window_more(smsc: TestSmsc) -> None:
    """Before: each response timeout only freed its slot, so every timeout period another
    full window went into the dead bind until enquire_link dropped it (dozens of duplicates).
    Now the first unanswered submit makes the bind suspect: no more submits on it, an
    enquire_link probe, and the bind dropped when that goes unanswered too."""
    config = connector_config(smsc, window=10, response_timeout=0.3, enquire_link_interval=30.0)
    connector = Connector(config, no_delivers)

    async def submit_until_taken(i: int) -> None:
        part = SubmitPart(
            source_addr="Bank",
            destination_addr=f"49151{i:07d}",
            short_message=b"hi",
            data_coding=0,
        )
        while True:  # as the submit worker does: an unavailable connector means try again
            try:
                outcome = await connector.submit(part, timeout=1.0)
            except SubmitUnavailable:
                await asyncio.sleep(0.05)
                continue
            assert outcome.command_status == 0
            return

    async with running(connector):
        smsc.silent = True
        sending = asyncio.gather(*(submit_until_taken(i) for i in range(40)))
        await asyncio.sleep(3.0)  # ten response timeouts of silence
        during = len(smsc.submits)
        smsc.silent = False
        await asyncio.wait_for(sending, 30)
    assert during <= config.window, f"{during} submit_sm went into a silent bind"
    destinations = [pdu.body["destination_addr"] for _, pdu in smsc.submits]
    assert len(set(destinations)) == 40
    assert len(destinations) - 40 <= config.window, "at most one window sent twice"
