"""The README's first command: `smsbroker dev` starts, takes a message and delivers it.

Run as a real subprocess, so it also runs the way operators run it (uvloop, signals).
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import sys
import uuid
from pathlib import Path

import aiohttp
import asyncpg

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
            while "API key" not in banner:
                line = await process.stdout.readline()
                assert line, "smsbroker dev exited before printing its banner"
                banner += line.decode()
        match = re.search(r"API key\s+(\S+)", banner)
        assert match is not None
        headers = {"Authorization": f"Bearer {match.group(1)}"}
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
            async with http.get(f"{base}/v1/balance") as resp:
                assert (await resp.json())["balance"] == 999
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
