"""SMSCs we did not write, as the tests drive them, and what connecting to one takes."""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from broker.smpp.connector import Connector, ConnectorConfig

NODE_DIR = Path(__file__).parent / "smsc_node"
Event = dict[str, Any]


class NodeSmsc:
    """The node SMSC as a child process: JSON events from stdout, commands to stdin."""

    def __init__(self, process: asyncio.subprocess.Process, port: int) -> None:
        self.process = process
        self.port = port
        self.events: list[Event] = []
        self._changed = asyncio.Event()
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        assert self.process.stdout is not None
        while line := await self.process.stdout.readline():
            with contextlib.suppress(json.JSONDecodeError):
                self.events.append(json.loads(line))
                self._changed.set()

    def named(self, name: str) -> list[Event]:
        return [e for e in self.events if e["event"] == name]

    async def wait(self, predicate: Callable[[], bool], timeout: float = 10.0) -> None:
        async with asyncio.timeout(timeout):
            while not predicate():
                self._changed.clear()
                await self._changed.wait()

    async def command(self, line: str) -> None:
        assert self.process.stdin is not None
        acks = len(self.named("ack"))
        self.process.stdin.write(line.encode() + b"\n")
        await self.process.stdin.drain()
        await self.wait(lambda: len(self.named("ack")) > acks)
        assert self.named("ack")[-1]["ok"], self.named("ack")[-1]

    async def stop(self) -> None:
        if self.process.returncode is None:
            self.process.terminate()
        await self.process.wait()
        await self._reader


async def start_node_smsc(*args: str) -> NodeSmsc:
    """The npm `smpp` server script on an ephemeral port; skips the test if it is missing."""
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed")
    if not (NODE_DIR / "node_modules" / "smpp").is_dir():
        pytest.skip("npm package smpp missing: run `npm ci --prefix tests/smsc_node`")
    process = await asyncio.create_subprocess_exec(
        node,
        str(NODE_DIR / "server.js"),
        "--port",
        "0",
        *args,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    assert process.stdout is not None
    first = json.loads(await asyncio.wait_for(process.stdout.readline(), 10))
    assert first["event"] == "listening"
    return NodeSmsc(process, int(first["port"]))


def connector_config(name: str, port: int, **overrides: Any) -> ConnectorConfig:
    """A connector to a local test SMSC (system_id gateway), reconnecting quickly."""
    values: dict[str, Any] = {
        "name": name,
        "host": "127.0.0.1",
        "port": port,
        "system_id": "gateway",
        "password": "secret",
        "reconnect_min": 0.05,
        "reconnect_max": 0.2,
    }
    values.update(overrides)
    return ConnectorConfig(**values)


@contextlib.asynccontextmanager
async def bound(connector: Connector) -> AsyncIterator[Connector]:
    await connector.start()
    try:
        assert await connector.wait_bound(10, all_binds=True)
        yield connector
    finally:
        await connector.close()
