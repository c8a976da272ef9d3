"""deliver_sm → queue events: receipts with canonical ids, inbound text and concatenation."""

from __future__ import annotations

import asyncio
import json

import pytest

from broker.queue_messages import (
    InboundEvent,
    NotDecodable,
    ReceiptEvent,
    pack,
    to_json,
    unpack_carrier_events,
)
from broker.queues import Amqp
from broker.segmentation import build_udh
from broker.smpp.constants import CommandId, MessageState, Tag
from broker.smpp.pdu import Pdu, cstring_tlv, encode_pdu, int_tlv
from workers.forwarder import DELIVER_UNDECODABLE, DeliverForwarder, deliver_event


def deliver(body: dict[str, int | str | bytes], tlvs: dict[int, bytes] | None = None) -> Pdu:
    return Pdu(CommandId.DELIVER_SM, 7, 0, dict(body), dict(tlvs or {}))


@pytest.mark.parametrize(
    ("fmt", "submit_id", "receipt_id"),
    [("as-is", "abc123", "abc123"), ("hex", "1f", "31"), ("dec", "31", "1f")],
)
def test_receipt_ids_take_the_submit_form(fmt: str, submit_id: str, receipt_id: str) -> None:
    pdu = deliver(
        {"esm_class": 0x04, "short_message": f"id:{receipt_id} stat:DELIVRD err:000".encode()},
        {
            Tag.RECEIPTED_MESSAGE_ID: cstring_tlv(receipt_id),
            Tag.MESSAGE_STATE: int_tlv(MessageState.DELIVERED, 1),
        },
    )
    event = deliver_event("c1", fmt, pdu)  # type: ignore[arg-type]
    assert isinstance(event, ReceiptEvent)
    assert (event.kind, event.connector) == ("receipt", "c1")
    assert (event.carrier_id, event.state) == (submit_id, "DELIVRD")
    assert event.error in (None, "000")


def test_receipt_text_form_only() -> None:
    text = (
        b"id:42 sub:001 dlvrd:000 submit date:2611221200 done date:2611221201 stat:UNDELIV err:0B"
    )
    event = deliver_event("c1", "as-is", deliver({"esm_class": 0x04, "short_message": text}))
    assert isinstance(event, ReceiptEvent)
    assert (event.carrier_id, event.state, event.error) == ("42", "UNDELIV", "0B")


def test_plain_mo() -> None:
    event = deliver_event(
        "c1",
        "as-is",
        deliver(
            {
                "source_addr": "233205550368",
                "destination_addr": "1234",
                "data_coding": 8,
                "short_message": "Ça va".encode("utf-16-be"),
            }
        ),
    )
    assert isinstance(event, InboundEvent)
    assert event.kind == "mo" and event.text == "Ça va" and event.concat is None
    assert (event.from_number, event.to_number) == ("233205550368", "1234")


def test_concatenated_mo_by_udh() -> None:
    data = build_udh(9, 2, 1) + b"Hello"
    event = deliver_event(
        "c1", "as-is", deliver({"esm_class": 0x40, "data_coding": 0, "short_message": data})
    )
    assert isinstance(event, InboundEvent)
    assert event.text == "Hello" and event.concat == (9, 2, 1)


def test_concatenated_mo_by_sar_tlvs() -> None:
    event = deliver_event(
        "c1",
        "as-is",
        deliver(
            {"short_message": b"part two"},
            {
                Tag.SAR_MSG_REF_NUM: int_tlv(300, 2),
                Tag.SAR_TOTAL_SEGMENTS: int_tlv(2, 1),
                Tag.SAR_SEGMENT_SEQNUM: int_tlv(2, 1),
            },
        ),
    )
    assert isinstance(event, InboundEvent)
    assert event.concat == (300, 2, 2)


def test_mo_in_message_payload() -> None:
    event = deliver_event(
        "c1", "as-is", deliver({"short_message": b""}, {Tag.MESSAGE_PAYLOAD: b"long " * 50})
    )
    assert isinstance(event, InboundEvent)
    assert event.text == "long " * 50


def test_receipt_carries_the_carrier_account_scope() -> None:
    pdu = deliver({"esm_class": 0x04, "short_message": b"id:9 stat:DELIVRD err:000"})
    event = deliver_event("c1", "as-is", pdu, scope="10.0.0.1:2775/acme")
    assert isinstance(event, ReceiptEvent) and event.scope == "10.0.0.1:2775/acme"


def test_events_survive_the_queue_round_trip() -> None:
    """What the forwarder packs is what the events worker unpacks, field for field."""
    mo = deliver_event("c1", "as-is", deliver({"source_addr": "1", "short_message": b"hi"}))
    receipt = deliver_event(
        "c1", "as-is", deliver({"esm_class": 0x04, "short_message": b"id:9 stat:DELIVRD err:000"})
    )
    body = pack("events", [to_json(mo), to_json(receipt)])
    assert unpack_carrier_events(body).items == [mo, receipt]


def test_sar_fragment_missing_a_value_is_kept_whole() -> None:
    """Before: the event carried a None in concat and the events worker dropped the MO."""
    event = deliver_event(
        "c1",
        "as-is",
        deliver({"short_message": b"text"}, {Tag.SAR_MSG_REF_NUM: int_tlv(300, 2)}),
    )
    assert isinstance(event, InboundEvent) and event.concat is None and event.text == "text"


def test_bad_carrier_events_are_set_aside_one_by_one() -> None:
    """A packed message with one event of an unknown version and one broken event keeps the
    good one; each bad one is rejected alone, the unknown version named."""
    receipt = deliver_event(
        "c1", "as-is", deliver({"esm_class": 0x04, "short_message": b"id:9 stat:DELIVRD err:000"})
    )
    future = {**receipt.model_dump(mode="json"), "v": 2}
    broken = {"kind": "receipt", "connector": "c1"}
    body = pack("events", [to_json(receipt), to_json(future), to_json(broken)])
    found = unpack_carrier_events(body)
    assert found.items == [receipt]
    assert [r.version for r in found.rejected] == [2, None]
    assert found.rejected[0].reason == "unknown version 2"
    with pytest.raises(NotDecodable, match="unknown version 3"):
        unpack_carrier_events(b'{"v": 3, "events": []}')


async def test_an_unreadable_deliver_sm_is_accepted_and_set_aside_with_its_raw_pdu(
    amqp: Amqp,
) -> None:
    """Before: the InputError of an unknown data_coding asked the carrier to resend, forever.
    Now the deliver_sm is accepted (ESME_ROK) once its raw PDU is dead-lettered, and counted."""
    forwarder = DeliverForwarder(amqp)
    pdu = deliver(
        {
            "source_addr": "233205550368",
            "destination_addr": "1234",
            "data_coding": 0x05,
            "short_message": b"\x01\x02\x03",
        }
    )
    before = DELIVER_UNDECODABLE.labels("c9")._value.get()
    await forwarder.on_deliver("c9", pdu)
    assert DELIVER_UNDECODABLE.labels("c9")._value.get() == before + 1
    channel = await amqp.connection.channel()
    try:
        queue = await channel.get_queue(amqp.names.dead, ensure=False)
        async with asyncio.timeout(10):
            while (message := await queue.get(fail=False)) is None:
                await asyncio.sleep(0.05)
        await message.ack()
    finally:
        await channel.close()
    dead = json.loads(message.body)
    assert dead["source"] == "deliver_sm" and "0x05" in dead["error"]
    assert dead["item"] == {"connector": "c9", "pdu": encode_pdu(pdu).hex()}
