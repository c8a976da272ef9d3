"""The README's first command: `smsbroker dev` starts, takes a message and delivers it.

Run as a real subprocess, so it also runs the way operators run it (uvloop, signals).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import socket
import subprocess
import sys
import uuid
from pathlib import Path

import aiohttp
import asyncpg
import pytest

from broker.phone import to_e164
from tests.conftest import PG_ADMIN_DSN, PG_BASE

SMSBROKER = str(Path(sys.executable).with_name("smsbroker"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


async def test_dev_runs_the_whole_gateway(amqp_url: str) -> None:
    db = f"smsb_dev_{uuid.uuid4().hex[:8]}"
    api_port, smsc_port = free_port(), free_port()
    env = {
        **os.environ,
        "DATABASE_URL": f"{PG_BASE}/{db}",
        "AMQP_URL": amqp_url,
        "QUEUE_PREFIX": f"dev{uuid.uuid4().hex[:6]}",
    }
    process = await asyncio.create_subprocess_exec(
        SMSBROKER,
        "dev",
        "--port",
        str(api_port),
        "--smsc-port",
        str(smsc_port),
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        assert process.stdout is not None
        banner = ""
        async with asyncio.timeout(30):
            while "/v1/balance" not in banner:
                line = await process.stdout.readline()
                assert line, "smsbroker dev exited before printing its banner"
                banner += line.decode()
        match = re.search(r"API key\s+(\S+)", banner)
        assert match is not None
        headers = {"Authorization": f"Bearer {match.group(1)}"}
        # The banner says the demo account's region and credits ...
        region = re.search(r"region\s+([A-Z]{2})\b", banner)
        assert region is not None and region.group(1) == "US"
        assert re.search(r"credits\s+1000\b", banner)
        # ... and its example request works on that account as printed.
        example = re.search(r"-d '(\{.*\})'", banner)
        assert example is not None
        payload = json.loads(example.group(1))
        expected = [to_e164(n, region.group(1)) for n in payload["to"]]
        assert None not in expected and len(set(expected)) == len(payload["to"]) == 2
        base = f"http://127.0.0.1:{api_port}"
        async with aiohttp.ClientSession(headers=headers) as http:
            async with http.post(
                f"{base}/v1/messages", json={"to": "+14155552671", "body": "Hello"}
            ) as resp:
                assert resp.status == 202
                mid = (await resp.json())["messages"][0]["id"]
            status = None
            async with asyncio.timeout(30):
                while status != "delivered":
                    await asyncio.sleep(0.2)
                    async with http.get(f"{base}/v1/messages/{mid}") as resp:
                        if resp.status == 200:
                            status = (await resp.json())["status"]
            async with http.post(f"{base}/v1/messages", json=payload) as resp:
                assert resp.status == 202, await resp.text()
                accepted = (await resp.json())["messages"]
                assert [m["to"] for m in accepted] == expected
            balance = None
            async with asyncio.timeout(30):  # charged by the worker, after the 202
                while balance != 1000 - 1 - len(expected):
                    async with http.get(f"{base}/v1/balance") as resp:
                        balance = (await resp.json())["balance"]
                    await asyncio.sleep(0.1)
        process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(process.wait(), 30) == 0
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
        conn = await asyncpg.connect(PG_ADMIN_DSN)
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
        finally:
            await conn.close()


async def database_exists(name: str) -> bool:
    conn = await asyncpg.connect(PG_ADMIN_DSN)
    try:
        return bool(await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name))
    finally:
        await conn.close()


async def run_dev(env: dict[str, str], *args: str) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        SMSBROKER,
        "dev",
        *args,
        env={**os.environ, **env},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(process.communicate(), 60)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise AssertionError("smsbroker dev kept running instead of refusing to start") from None
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


@pytest.mark.parametrize("taken", ["--port", "--smsc-port"])
async def test_port_in_use_is_one_line_before_anything_is_created(
    amqp_url: str, taken: str
) -> None:
    db = f"smsb_dev_{uuid.uuid4().hex[:8]}"
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        busy = holder.getsockname()[1]
        ports = {"--port": free_port(), "--smsc-port": free_port(), taken: busy}
        code, out, err = await run_dev(
            {"DATABASE_URL": f"{PG_BASE}/{db}", "AMQP_URL": amqp_url},
            *(str(v) for item in ports.items() for v in item),
        )
    assert code != 0
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert "already in use" in lines[0] and str(busy) in lines[0] and taken in lines[0]
    assert out == ""
    assert not await database_exists(db), "the database was created before the port check"


@pytest.mark.parametrize("service", ["DATABASE_URL", "AMQP_URL"])
async def test_unreachable_service_is_one_line(amqp_url: str, service: str) -> None:
    db = f"smsb_dev_{uuid.uuid4().hex[:8]}"
    closed = free_port()  # nothing listens there once free_port() let go of it
    env = {"DATABASE_URL": f"{PG_BASE}/{db}", "AMQP_URL": amqp_url}
    env[service] = (
        f"postgresql://postgres@127.0.0.1:{closed}/{db}"
        if service == "DATABASE_URL"
        else f"amqp://guest:guest@127.0.0.1:{closed}/"
    )
    code, out, err = await run_dev(env, "--port", str(free_port()), "--smsc-port", "0")
    assert code == 3
    lines = err.splitlines()
    assert len(lines) == 1, err
    name = "PostgreSQL" if service == "DATABASE_URL" else "RabbitMQ"
    assert lines[0].startswith(f"error: {name} unreachable at 127.0.0.1:{closed}")
    assert service in lines[0]
    assert not await database_exists(db)


async def test_same_port_twice_is_refused(amqp_url: str) -> None:
    db = f"smsb_dev_{uuid.uuid4().hex[:8]}"
    port = str(free_port())
    env = {"DATABASE_URL": f"{PG_BASE}/{db}", "AMQP_URL": amqp_url}
    code, _, err = await run_dev(env, "--port", port, "--smsc-port", port)
    assert code == 2
    assert err.splitlines() == ["error: --port and --smsc-port must be different ports"]
    assert not await database_exists(db)


def test_make_dev_passes_options_through() -> None:
    root = Path(__file__).resolve().parents[1]
    result = subprocess.run(
        [
            "make",
            "-n",
            "--no-print-directory",
            "-C",
            str(root),
            "dev",
            "ARGS=--smsc-port 2776 --credits 5",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert result.stdout.splitlines()[-1].endswith("smsbroker dev --smsc-port 2776 --credits 5")


async def test_api_command_port_in_use_is_one_line(pg_dsn: str, amqp_url: str) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        busy = holder.getsockname()[1]
        process = await asyncio.create_subprocess_exec(
            SMSBROKER,
            "api",
            "--port",
            str(busy),
            env={**os.environ, "DATABASE_URL": pg_dsn, "AMQP_URL": amqp_url},
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        _, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 1
    errors = [line for line in err.decode().splitlines() if line.startswith("error:")]
    assert errors == [
        f"error: API port 127.0.0.1:{busy} is already in use; "
        "choose another with --port or API_PORT"
    ]
    assert "Traceback" not in err.decode()
