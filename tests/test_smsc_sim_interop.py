"""The simulated carrier against an ESME we did not write: the PyPI package smpp34.

(A refused bind is covered by the raw-socket tests only: smpp34's connect() keeps retrying.)
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from broker.smpp.constants import Tag
from smsc_sim import SmscSimulator
from tests.test_smsc_sim_esme import (
    WAIT,
    fast_config,
    fresh_log_output,  # noqa: F401  (autouse)
)

smpp34 = pytest.importorskip("smpp34")


@pytest.fixture
async def sim() -> AsyncIterator[SmscSimulator]:
    simulator = SmscSimulator(fast_config())
    await simulator.start()
    yield simulator
    await simulator.stop()


async def connect(port: int) -> tuple[Any, Any]:
    client = smpp34.Client(
        host="127.0.0.1", port=port, system_id="smsbroker", password="secret", bind_type="TRX"
    )
    return client, await asyncio.wait_for(client.connect(), WAIT)


async def test_smpp34_bind_submit_receipt(sim: SmscSimulator) -> None:
    client, smsc = await connect(sim.port)
    try:
        resp = await asyncio.wait_for(
            smsc.submit_sm("4915112345678", b"hello", source_addr="Acme", registered_delivery=1),
            WAIT,
        )
        assert resp.is_success and resp.command_status == 0
        assert resp.message_id == sim.submitted[-1].message_id
        event = await asyncio.wait_for(smsc.next(), WAIT)
        assert isinstance(event, smpp34.DeliverSmEvent)
        assert event.esm_class == 0x04
        assert event.short_message.startswith(f"id:{resp.message_id} sub:001".encode())
        tlvs = {tlv.tag: tlv.value for tlv in event.tlvs}
        assert tlvs[Tag.RECEIPTED_MESSAGE_ID] == resp.message_id.encode() + b"\x00"
        assert tlvs[Tag.MESSAGE_STATE] == b"\x02"
        await asyncio.wait_for(smsc.unbind(), WAIT)
    finally:
        await client.stop()
    assert sim.stats["receipts_acknowledged"] == 1


async def test_smpp34_receives_mo_and_sees_submit_errors(sim: SmscSimulator) -> None:
    client, smsc = await connect(sim.port)
    try:
        await sim.inject_mo("4915112345678", "12345", "STOP")
        event = await asyncio.wait_for(smsc.next(), WAIT)
        assert (event.source_addr, event.short_message, event.esm_class) == (
            "4915112345678", b"STOP", 0,
        )  # fmt: skip
        sim.set_faults(submit_error=0x58, submit_error_count=1)
        resp = await asyncio.wait_for(smsc.submit_sm("4915112345678", b"x"), WAIT)
        assert (resp.is_success, resp.command_status) == (False, 0x58)
    finally:
        await client.stop()
