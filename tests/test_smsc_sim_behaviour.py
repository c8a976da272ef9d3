"""Receipt options, retries, queued receipts, MO injection and faults, over real TCP."""

from __future__ import annotations

import asyncio
import re

import pytest

from broker.errors import InputError
from broker.segmentation import decode_short_message
from broker.smpp.constants import CommandId, MessageState, Status, Tag
from broker.smpp.pdu import Pdu, tlv_cstring, tlv_int
from smsc_sim import SmscSimulator
from tests.test_smsc_sim_esme import (
    RECEIPT,
    RawEsme,
    fast_config,
    fresh_log_output,  # noqa: F401  (autouse)
    wait_until,
)


async def started(**overrides: object) -> SmscSimulator:
    simulator = SmscSimulator(fast_config(**overrides))
    await simulator.start()
    return simulator


def receipt_text(pdu: Pdu) -> str:
    raw = pdu.body["short_message"]
    assert isinstance(raw, bytes)
    return raw.decode("ascii")


# --- receipts ------------------------------------------------------------------------------


async def test_outcome_rules_by_destination_suffix() -> None:
    sim = await started(
        outcome_rules={"0000": "UNDELIV", "10000": "EXPIRED"}, outcomes={"DELIVRD": 1}
    )
    esme = await RawEsme.connect(sim.port)
    try:
        await esme.bind()
        expected = {"4915110000": "EXPIRED", "4915120000": "UNDELIV", "4915120001": "DELIVRD"}
        states = {"EXPIRED": MessageState.EXPIRED, "UNDELIV": MessageState.UNDELIVERABLE,
                  "DELIVRD": MessageState.DELIVERED}  # fmt: skip
        ids = {}
        for destination in expected:
            ids[str((await esme.submit(destination)).body["message_id"])] = destination
        for _ in expected:
            receipt = await esme.deliver()
            destination = ids[tlv_cstring(receipt, Tag.RECEIPTED_MESSAGE_ID) or ""]
            match = RECEIPT.fullmatch(receipt_text(receipt))
            assert match is not None
            assert match["stat"] == expected[destination]
            assert match["dlvrd"] == ("001" if expected[destination] == "DELIVRD" else "000")
            assert tlv_int(receipt, Tag.MESSAGE_STATE) == states[expected[destination]]
    finally:
        await esme.close()
        await sim.stop()


async def test_failure_only_receipts_come_for_failures() -> None:
    sim = await started(outcome_rules={"9": "REJECTD"})
    esme = await RawEsme.connect(sim.port)
    try:
        await esme.bind()
        await esme.submit("4910", registered_delivery=2)
        failed = await esme.submit("4919", registered_delivery=2)
        receipt = await esme.deliver()
        assert tlv_cstring(receipt, Tag.RECEIPTED_MESSAGE_ID) == failed.body["message_id"]
        assert "stat:REJECTD" in receipt_text(receipt)
        assert sim.stats["receipts_sent"] == 1
    finally:
        await esme.close()
        await sim.stop()


async def test_receipt_variants_for_parser_coverage() -> None:
    sim = await started(receipt_tlvs=False, receipt_seconds=True, receipt_id_decimal=True)
    esme = await RawEsme.connect(sim.port)
    try:
        await esme.bind()
        message_id = str((await esme.submit()).body["message_id"])
        receipt = await esme.deliver()
        assert receipt.tlvs == {}
        text = receipt_text(receipt)
        assert re.fullmatch(r"id:\d+ .*submit date:\d{12} done date:\d{12} stat:DELIVRD.*", text)
        assert f"id:{int(message_id, 16)} " in text
    finally:
        await esme.close()
        await sim.stop()


UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}"


@pytest.mark.parametrize(("fmt", "pattern"), [("dec", r"\d+"), ("uuid", UUID)])
async def test_message_id_formats(fmt: str, pattern: str) -> None:
    sim = await started(message_id_format=fmt)
    esme = await RawEsme.connect(sim.port)
    try:
        await esme.bind()
        message_id = str((await esme.submit()).body["message_id"])
        assert re.fullmatch(pattern, message_id)
        assert tlv_cstring(await esme.deliver(), Tag.RECEIPTED_MESSAGE_ID) == message_id
    finally:
        await esme.close()
        await sim.stop()


async def test_receipt_waits_for_a_receiver_bind() -> None:
    sim = await started()
    sender = await RawEsme.connect(sim.port)
    receiver = await RawEsme.connect(sim.port)
    try:
        await sender.bind("transmitter")
        message_id = (await sender.submit()).body["message_id"]
        await wait_until(lambda: sim.stats["queued"] == 1, "the receipt to be queued")
        assert sim.stats["receipts_sent"] == 0
        assert (await receiver.bind("receiver")).command_status == 0
        receipt = await receiver.deliver()
        assert tlv_cstring(receipt, Tag.RECEIPTED_MESSAGE_ID) == message_id
        await wait_until(lambda: sim.stats["receipts_acknowledged"] == 1, "the ack")
    finally:
        await sender.close()
        await receiver.close()
        await sim.stop()


async def test_receipts_go_only_to_binds_of_the_same_system_id() -> None:
    sim = await started(accounts={"alpha": "pw", "beta": "pw"})
    alpha = await RawEsme.connect(sim.port)
    beta = await RawEsme.connect(sim.port)
    try:
        await alpha.bind("transmitter", "alpha", "pw")
        await beta.bind("receiver", "beta", "pw")
        await alpha.submit()
        await wait_until(lambda: sim.stats["queued"] == 1, "alpha's receipt to wait for alpha")
        assert sim.stats["receipts_sent"] == 0
    finally:
        await alpha.close()
        await beta.close()
        await sim.stop()


async def test_refused_receipt_is_retried_then_given_up() -> None:
    sim = await started(receipt_retry_delay=0.0, receipt_max_attempts=3)
    esme = await RawEsme.connect(sim.port)
    try:
        await esme.bind()
        message_id = (await esme.submit()).body["message_id"]
        first = await esme.deliver(ack=Status.ESME_RX_T_APPN)
        second = await esme.deliver(ack=0x0400)  # a vendor status is an error too
        third = await esme.deliver(ack=Status.ESME_RSYSERR)
        for pdu in (first, second, third):
            assert tlv_cstring(pdu, Tag.RECEIPTED_MESSAGE_ID) == message_id
        await wait_until(lambda: sim.stats["receipts_failed"] == 1, "the receipt to be given up")
        assert (sim.stats["receipts_sent"], sim.stats["receipts_retried"]) == (3, 2)
    finally:
        await esme.close()
        await sim.stop()


async def test_unanswered_receipt_is_resent_after_the_timeout() -> None:
    sim = await started(response_timeout=0.05, receipt_retry_delay=0.0)
    esme = await RawEsme.connect(sim.port)
    try:
        await esme.bind()
        message_id = (await esme.submit()).body["message_id"]
        silent = await esme.deliver(ack=None)
        again = await esme.deliver(ack=0)
        assert tlv_cstring(silent, Tag.RECEIPTED_MESSAGE_ID) == message_id
        assert tlv_cstring(again, Tag.RECEIPTED_MESSAGE_ID) == message_id
        assert again.sequence_number != silent.sequence_number
        await wait_until(lambda: sim.stats["receipts_acknowledged"] == 1, "the ack")
    finally:
        await esme.close()
        await sim.stop()


async def test_receipt_in_flight_on_a_lost_connection_is_sent_again() -> None:
    sim = await started()
    first = await RawEsme.connect(sim.port)
    try:
        await first.bind()
        message_id = (await first.submit()).body["message_id"]
        await first.deliver(ack=None)
        await first.close()
        await wait_until(lambda: sim.stats["queued"] == 1, "the receipt to go back to the queue")
        second = await RawEsme.connect(sim.port)
        await second.bind("receiver")
        receipt = await second.deliver()
        assert tlv_cstring(receipt, Tag.RECEIPTED_MESSAGE_ID) == message_id
        await second.close()
    finally:
        await sim.stop()


async def test_window_bounds_unanswered_deliveries() -> None:
    sim = await started(deliver_window=2)
    esme = await RawEsme.connect(sim.port)
    try:
        await esme.bind()
        for _ in range(5):
            await esme.submit()
        await wait_until(lambda: sim.stats["queued"] == 3, "three receipts held back")
        assert sim.stats["in_flight"] == 2
        for _ in range(5):
            await esme.deliver()
        await wait_until(lambda: sim.stats["receipts_acknowledged"] == 5, "every ack")
    finally:
        await esme.close()
        await sim.stop()


# --- MO ------------------------------------------------------------------------------------


async def test_inject_single_mo() -> None:
    sim = await started()
    esme = await RawEsme.connect(sim.port)
    try:
        await esme.bind("receiver")
        assert await sim.inject_mo("+4915112345678", "12345", "STOP") == 1
        mo = await esme.deliver()
        assert (mo.body["esm_class"], mo.body["data_coding"]) == (0, 0)
        assert (mo.body["source_addr"], mo.body["source_addr_ton"]) == ("4915112345678", 1)
        assert mo.body["destination_addr"] == "12345"
        assert mo.body["short_message"] == b"STOP"
        await wait_until(lambda: sim.stats["mo_acknowledged"] == 1, "the MO ack")
    finally:
        await esme.close()
        await sim.stop()


@pytest.mark.parametrize(("text", "data_coding"), [("ab" * 100, 0), ("Привет " * 20, 8)])
async def test_inject_concatenated_mo(text: str, data_coding: int) -> None:
    sim = await started()
    esme = await RawEsme.connect(sim.port)
    try:
        await esme.bind()
        parts = await sim.inject_mo("4915112345678", "12345", text)
        assert parts >= 2
        decoded = []
        for _ in range(parts):
            mo = await esme.deliver()
            assert (mo.body["esm_class"], mo.body["data_coding"]) == (0x40, data_coding)
            raw = mo.body["short_message"]
            assert isinstance(raw, bytes) and raw[:3] == b"\x05\x00\x03"
            decoded.append(decode_short_message(raw, data_coding, udhi=True))
        assert [d.concat.seq for d in decoded if d.concat] == list(range(1, parts + 1))
        assert {d.concat.total for d in decoded if d.concat} == {parts}
        assert len({d.concat.reference for d in decoded if d.concat}) == 1
        assert "".join(d.text for d in decoded) == text
    finally:
        await esme.close()
        await sim.stop()


async def test_mo_waits_for_a_receiver_and_bad_input_is_refused() -> None:
    sim = await started(accounts={"alpha": "pw", "beta": "pw"})
    try:
        with pytest.raises(InputError) as no_receiver:
            await sim.inject_mo("1", "2", "hi")
        assert no_receiver.value.code == "NO_RECEIVER"
        with pytest.raises(InputError):
            await sim.inject_mo("1", "2", "hi", system_id="gamma")
        with pytest.raises(InputError):
            await sim.inject_mo("1", "2", "", system_id="beta")
        assert await sim.inject_mo("1", "2", "queued", system_id="beta") == 1
        esme = await RawEsme.connect(sim.port)
        await esme.bind("transceiver", "beta", "pw")
        assert (await esme.deliver()).body["short_message"] == b"queued"
        await esme.close()
    finally:
        await sim.stop()


# --- faults --------------------------------------------------------------------------------


async def test_submit_error_for_the_next_n_submits() -> None:
    sim = await started()
    esme = await RawEsme.connect(sim.port)
    try:
        await esme.bind()
        sim.set_faults(submit_error=Status.ESME_RTHROTTLED, submit_error_count=2)
        statuses = [(await esme.submit()).command_status for _ in range(3)]
        assert statuses == [Status.ESME_RTHROTTLED, Status.ESME_RTHROTTLED, 0]
        sim.set_faults(submit_error="0x400")
        refused = [await esme.submit() for _ in range(3)]
        assert [r.command_status for r in refused] == [0x400] * 3
        assert all("message_id" not in r.body for r in refused)
        sim.clear_faults()
        assert (await esme.submit()).command_status == 0
        assert sim.stats["submit_errors"] == 5
    finally:
        await esme.close()
        await sim.stop()


async def test_submit_status_rules() -> None:
    sim = await started(submit_status_rules={"13": Status.ESME_RINVDSTADR})
    esme = await RawEsme.connect(sim.port)
    try:
        await esme.bind()
        assert (await esme.submit("4915113")).command_status == Status.ESME_RINVDSTADR
        assert (await esme.submit("4915114")).command_status == 0
    finally:
        await esme.close()
        await sim.stop()


async def test_reject_binds_fault() -> None:
    sim = await started()
    try:
        sim.set_faults(reject_binds=Status.ESME_RBINDFAIL)
        esme = await RawEsme.connect(sim.port)
        assert (await esme.bind()).command_status == Status.ESME_RBINDFAIL
        assert await esme.closed_by_server()
        await esme.close()
        sim.set_faults(reject_binds=None)
        esme = await RawEsme.connect(sim.port)
        assert (await esme.bind()).command_status == 0
        await esme.close()
    finally:
        await sim.stop()


async def test_drop_closes_every_connection() -> None:
    sim = await started()
    clients = [await RawEsme.connect(sim.port) for _ in range(3)]
    try:
        for client in clients:
            await client.bind()
        sim.set_faults(drop=True)
        for client in clients:
            assert await client.closed_by_server()
        await wait_until(lambda: sim.stats["connections"] == 0, "the connections to close")
        again = await RawEsme.connect(sim.port)
        assert (await again.bind()).command_status == 0
        await again.close()
    finally:
        for client in clients:
            await client.close()
        await sim.stop()


async def test_stall_holds_answers_until_it_ends() -> None:
    sim = await started()
    esme = await RawEsme.connect(sim.port)
    try:
        await esme.bind()
        sim.set_faults(stall=60)
        sequence = esme.send(Pdu(CommandId.ENQUIRE_LINK, 0))
        assert sim.stats["stalled"]
        with pytest.raises(TimeoutError):  # nothing is answered while stalled
            await asyncio.wait_for(esme.response_to(sequence), 0.2)
        sim.clear_faults()
        assert (await esme.response_to(sequence)).command_id == CommandId.ENQUIRE_LINK_RESP
    finally:
        await esme.close()
        await sim.stop()


async def test_submit_delay_lets_the_receipt_overtake_the_response() -> None:
    sim = await started(receipt_delay=(0.0, 0.0))
    esme = await RawEsme.connect(sim.port)
    try:
        await esme.bind()
        sim.set_faults(submit_delay=0.3)
        sequence = esme.send(Pdu(CommandId.SUBMIT_SM, 0, 0, {
            "destination_addr": "1", "registered_delivery": 1, "short_message": b"x",
        }))  # fmt: skip
        first = await esme.read()
        assert first.command_id == CommandId.DELIVER_SM
        resp = await esme.response_to(sequence)
        assert tlv_cstring(first, Tag.RECEIPTED_MESSAGE_ID) == resp.body["message_id"]
    finally:
        await esme.close()
        await sim.stop()


@pytest.mark.parametrize("faults", [
    {"nonsense": 1}, {"submit_error": 0}, {"submit_error": "bad"}, {"submit_error": True},
    {"submit_error_count": 3}, {"submit_error": 88, "submit_error_count": 0},
    {"submit_delay": -1}, {"stall": "long"}, {"drop": "yes"}, {"reject_binds": 2**32},
])  # fmt: skip
async def test_bad_faults_are_refused_and_change_nothing(
    faults: dict[str, object],
) -> None:
    sim = await started()
    try:
        with pytest.raises(InputError):
            sim.set_faults(**faults)
        assert sim.stats["faults"] == {
            "reject_binds": None, "submit_error": None, "submit_error_count": None,
            "submit_delay": 0.0,
        }  # fmt: skip
        assert not sim.stats["stalled"]
    finally:
        await sim.stop()
