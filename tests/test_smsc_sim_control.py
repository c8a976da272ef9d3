"""The simulator's HTTP control API and the `smsbroker smsc-sim` command, over real sockets."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
from collections.abc import AsyncIterator

import aiohttp
import pytest

from broker.smpp.constants import Status
from cli.main import build_parser, main
from smsc_sim import SmscSimulator
from smsc_sim.control import ControlServer
from tests.test_smsc_sim_esme import (
    WAIT,
    RawEsme,
    fast_config,
    fresh_log_output,  # noqa: F401  (autouse)
)


@pytest.fixture
async def control() -> AsyncIterator[tuple[SmscSimulator, str]]:
    simulator = SmscSimulator(fast_config())
    await simulator.start()
    server = ControlServer(simulator)
    await server.start()
    yield simulator, f"http://127.0.0.1:{server.port}"
    await server.stop()
    await simulator.stop()


async def test_mo_over_http(control: tuple[SmscSimulator, str]) -> None:
    sim, base = control
    esme = await RawEsme.connect(sim.port)
    try:
        await esme.bind("receiver")
        async with aiohttp.ClientSession() as http:
            body = {"from": "+4915112345678", "to": "12345", "text": "HELP"}
            async with http.post(f"{base}/mo", json=body) as resp:
                assert resp.status == 202
                assert await resp.json() == {"parts": 1}
        mo = await esme.deliver()
        assert (mo.body["destination_addr"], mo.body["short_message"]) == ("12345", b"HELP")
    finally:
        await esme.close()


async def test_faults_and_stats_over_http(control: tuple[SmscSimulator, str]) -> None:
    sim, base = control
    esme = await RawEsme.connect(sim.port)
    try:
        await esme.bind()
        async with aiohttp.ClientSession() as http:
            fault = {"submit_error": "0x14", "submit_error_count": 1}
            async with http.post(f"{base}/faults", json=fault) as resp:
                assert resp.status == 200
                assert (await resp.json())["faults"]["submit_error"] == Status.ESME_RMSGQFUL
            assert (await esme.submit()).command_status == Status.ESME_RMSGQFUL
            async with http.post(f"{base}/faults", json={"submit_error": 88}) as resp:
                assert resp.status == 200
            async with http.delete(f"{base}/faults") as resp:
                assert (await resp.json())["faults"]["submit_error"] is None
            accepted = await esme.submit("4915100000042")
            async with http.get(f"{base}/stats") as resp:
                stats = await resp.json()
            assert (stats["submits"], stats["submit_errors"]) == (2, 1)
            assert stats["bound"]["transceiver"] == 1
            async with http.get(f"{base}/submitted", params={"limit": "1"}) as resp:
                (record,) = (await resp.json())["submitted"]
            assert record["message_id"] == accepted.body["message_id"]
            assert record["destination_addr"] == "4915100000042"
            assert bytes.fromhex(record["short_message"]) == b"hello world"
    finally:
        await esme.close()


@pytest.mark.parametrize(("method", "path", "payload", "status", "code"), [
    ("post", "/mo", b"{not json", 400, "INVALID_JSON"),
    ("post", "/mo", b"[1, 2]", 400, "INVALID_JSON"),
    ("post", "/mo", b'{"from": "1", "to": "2"}', 400, "INVALID_FIELD"),
    ("post", "/mo", b'{"from": "1", "to": "2", "text": ""}', 400, "EMPTY_BODY"),
    ("post", "/mo", b'{"from": "1", "to": 2, "text": "x"}', 400, "INVALID_FIELD"),
    ("post", "/mo", b'{"from": "1", "to": "2", "text": "x", "cc": "3"}', 400, "UNKNOWN_FIELD"),
    ("post", "/faults", b'{"melt": true}', 400, "UNKNOWN_FAULT"),
    ("post", "/faults", b'{"submit_error": "0xZZ"}', 400, "BAD_STATUS"),
    ("get", "/submitted?limit=zero", b"", 400, "INVALID_FIELD"),
    ("get", "/nowhere", b"", 404, "HTTP_404"),
])  # fmt: skip
async def test_bad_input_gets_a_json_error(
    control: tuple[SmscSimulator, str], method: str, path: str, payload: bytes, status: int,
    code: str,
) -> None:  # fmt: skip
    sim, base = control
    async with (
        aiohttp.ClientSession() as http,
        http.request(
            method, f"{base}{path}", data=payload, headers={"Content-Type": "application/json"}
        ) as resp,
    ):
        assert resp.status == status
        error = (await resp.json())["error"]
    assert error["code"] == code
    assert error["message"]
    assert sim.stats["faults"]["submit_error"] is None  # type: ignore[index]


def test_help(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        main(["smsc-sim", "--help"])
    assert done.value.code == 0
    out = capsys.readouterr().out
    for option in ("--port", "--account", "--receipt-delay", "--outcomes", "--control-port"):
        assert option in out


@pytest.mark.parametrize("argv", [
    ["--port", "70000"], ["--port", "x"], ["--receipt-delay", "0.5-0.1"],
    ["--receipt-delay", "soon"], ["--outcomes", "DELIVRD=much"], ["--outcomes", "LOST=1"],
    ["--outcomes", "DELIVRD=0"], ["--account", "nopassword"], ["--outcome-rule", "00=FINE"],
    ["--submit-status-rule", "13=0"], ["--message-id-format", "base64"],
])  # fmt: skip
def test_bad_options_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        main(["smsc-sim", *argv])
    assert done.value.code == 2
    assert "error:" in capsys.readouterr().err


@pytest.mark.parametrize("argv", [
    ["--system-id", "alone"], ["--receipt-id-decimal", "--message-id-format", "uuid"],
    ["--system-id", "much-too-long-system-id", "--password", "pw"],
])  # fmt: skip
def test_inconsistent_options_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    # Parsed and run without main(), which would point log output at the captured stderr.
    args = build_parser().parse_args(["smsc-sim", *argv])
    assert args.func(args) == 2
    assert "error:" in capsys.readouterr().err


async def test_cli_serves_smpp_and_control_until_sigterm() -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "cli.main", "smsc-sim", "--port", "0", "--control-port", "0",
        "--account", "shop:pw1,bank:pw2", "--receipt-delay", "0",
        stderr=asyncio.subprocess.PIPE, env={**os.environ, "LOG_FORMAT": "console"},
    )  # fmt: skip
    assert proc.stderr is not None
    ports: dict[str, int] = {}
    try:
        while len(ports) < 2:
            line = (await asyncio.wait_for(proc.stderr.readline(), WAIT)).decode()
            assert line, "the simulator exited before listening"
            found = re.search(r"smsc_sim\.(listening|control_listening).*port=(\d+)", line)
            if found:
                ports[found[1]] = int(found[2])
        esme = await RawEsme.connect(ports["listening"])
        assert (await esme.bind("transceiver", "bank", "pw2")).command_status == 0
        assert (await esme.submit()).command_status == 0
        await esme.deliver()
        await esme.close()
        async with aiohttp.ClientSession() as http:
            url = f"http://127.0.0.1:{ports['control_listening']}/stats"
            async with http.get(url) as resp:
                assert (await resp.json())["submits"] == 1
    finally:
        proc.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(proc.wait(), WAIT)
    assert code == 0
