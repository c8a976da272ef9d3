"""The API server against raw TCP clients: malformed and slow requests get the error shape,
no request bytes (an API key) reach the answer or the log, and normal keep-alive still works."""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Any

import asyncpg
import pytest

from api.server import start_api
from broker import accounts
from broker.config import Settings
from broker.errors import InputError

HEAD_TIMEOUT = 0.5
BODY_TIMEOUT = 0.8


@dataclass
class Api:
    port: int
    key: str


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    def error(self) -> dict[str, Any]:
        doc = json.loads(self.body)
        assert set(doc) == {"error"}
        assert isinstance(doc["error"]["code"], str) and isinstance(doc["error"]["message"], str)
        err: dict[str, Any] = doc["error"]
        return err


@pytest.fixture(scope="module")
async def api(settings: Settings, pool: asyncpg.Pool) -> AsyncIterator[Api]:
    async with pool.acquire() as conn:
        account_id = await accounts.create_account(
            conn, f"srv-{uuid.uuid4().hex[:8]}", Decimal(10), "US"
        )
        key = await accounts.create_key(conn, account_id, rate_limit=100_000)
    fast = replace(settings, http_header_timeout=HEAD_TIMEOUT, http_body_timeout=BODY_TIMEOUT)
    runner = await start_api(fast, "127.0.0.1", 0)
    yield Api(runner.addresses[0][1], key.secret)
    await runner.cleanup()


async def read_answer(reader: asyncio.StreamReader) -> Answer:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {
        name.strip().lower(): value.strip()
        for name, _, value in (line.partition(":") for line in lines[1:] if line)
    }
    body = await reader.readexactly(int(headers["content-length"]))
    return Answer(status, headers, body)


async def exchange(port: int, *chunks: bytes, pause: float = 0.0) -> tuple[Answer, bytes]:
    """Send the chunks (``pause`` apart), read one answer, then whatever comes until EOF."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        for i, chunk in enumerate(chunks):
            if i and pause:
                await asyncio.sleep(pause)
            writer.write(chunk)
            await writer.drain()
        async with asyncio.timeout(10):
            answer = await read_answer(reader)
            rest = await reader.read()
        return answer, rest
    finally:
        writer.close()


@pytest.fixture
def logs(caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]) -> Any:
    """All log output of the test: stdlib records (aiohttp's loggers) and structlog's prints."""
    caplog.set_level(logging.DEBUG)

    def text() -> str:
        out, err = capfd.readouterr()
        records = "\n".join(
            f"{r.getMessage()} {r.exc_info[1] if r.exc_info else ''}" for r in caplog.records
        )
        return out + err + records

    return text


async def test_long_request_line_is_414_without_the_key(api: Api, logs: Any) -> None:
    target = f"/v1/balance?api_key={api.key}&pad={'x' * 9000}"
    request = f"GET {target} HTTP/1.1\r\nHost: x\r\n\r\n".encode()
    answer, rest = await exchange(api.port, request)
    assert answer.status == 414
    assert answer.error()["code"] == "URI_TOO_LONG"
    assert answer.headers["content-type"].startswith("application/json")
    assert rest == b"", "the connection is closed after the error"
    output = logs()
    assert "http request refused" in output  # the log was captured, and it names the problem
    assert api.key not in answer.body.decode() and api.key not in output
    assert api.key[:20] not in output


async def test_long_authorization_header_is_431_without_the_key(api: Api, logs: Any) -> None:
    value = f"Bearer {api.key}" + "A" * 9000
    request = f"GET /v1/balance HTTP/1.1\r\nHost: x\r\nAuthorization: {value}\r\n\r\n".encode()
    answer, _ = await exchange(api.port, request)
    assert answer.status == 431
    assert answer.error()["code"] == "HEADER_TOO_LARGE"
    output = logs()
    assert "http request refused" in output
    assert api.key not in answer.body.decode() and api.key not in output
    assert api.key[:20] not in output


async def test_too_many_headers_is_431(api: Api) -> None:
    fields = "".join(f"X-H{i}: {i}\r\n" for i in range(200))
    answer, _ = await exchange(api.port, f"GET / HTTP/1.1\r\nHost: x\r\n{fields}\r\n".encode())
    assert answer.status == 431
    assert answer.error()["code"] == "HEADER_TOO_LARGE"


async def test_garbage_is_400_without_echoing_it(api: Api, logs: Any) -> None:
    secret = api.key
    answer, _ = await exchange(api.port, f"{secret} /x HTTP/1.1\r\n\r\n".encode())
    assert answer.status == 400
    assert answer.error()["code"] == "BAD_REQUEST"
    assert secret not in answer.body.decode() and secret not in logs()


@pytest.mark.parametrize(
    "partial",
    [b"GET /v1/bal", b"GET /v1/balance HTTP/1.1\r\nHost: x\r\nAuthori"],
    ids=["half request line", "half headers"],
)
async def test_stalled_head_is_408(api: Api, partial: bytes) -> None:
    started = time.monotonic()
    answer, rest = await exchange(api.port, partial)
    elapsed = time.monotonic() - started
    assert answer.status == 408
    assert answer.error()["code"] == "REQUEST_TIMEOUT"
    assert rest == b""
    assert HEAD_TIMEOUT * 0.8 <= elapsed < HEAD_TIMEOUT + 3


async def test_trickled_head_is_timed_out_from_its_first_byte(api: Api) -> None:
    """More bytes do not extend the head's deadline."""
    request = b"GET /v1/balance HTTP/1.1\r\nHost: x\r\n"
    assert len(request) * 0.05 > HEAD_TIMEOUT + 1, "the trickle outlasts the deadline"
    reader, writer = await asyncio.open_connection("127.0.0.1", api.port)

    async def trickle() -> None:
        for byte in request:
            writer.write(bytes([byte]))
            await writer.drain()
            await asyncio.sleep(0.05)

    started = time.monotonic()
    sender = asyncio.create_task(trickle())
    try:
        async with asyncio.timeout(10):
            answer = await read_answer(reader)
    finally:
        sender.cancel()
        writer.close()
    assert answer.status == 408
    assert time.monotonic() - started < HEAD_TIMEOUT + 1


async def test_stalled_body_is_408_in_the_error_shape(api: Api) -> None:
    head = (
        "POST /v1/messages HTTP/1.1\r\nHost: x\r\n"
        f"Authorization: Bearer {api.key}\r\n"
        "Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n"
    ).encode()
    started = time.monotonic()
    answer, rest = await exchange(api.port, head + b'{"to": "+1')
    assert answer.status == 408
    assert answer.error()["code"] == "REQUEST_TIMEOUT"
    assert rest == b"", "the connection closes: the rest of the body is not a next request"
    assert time.monotonic() - started < BODY_TIMEOUT + 3


async def test_slow_but_timely_body_is_answered(api: Api) -> None:
    body = json.dumps({"url": "http://127.0.0.1:9/hook", "events": ["message.status"]}).encode()
    head = (
        "POST /v1/webhooks HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
        f"Authorization: Bearer {api.key}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode()
    answer, _ = await exchange(api.port, head, body[:10], body[10:], pause=BODY_TIMEOUT / 4)
    assert answer.status == 201, answer.body


async def test_idle_keep_alive_is_not_a_slow_client(api: Api) -> None:
    """Between requests a connection may idle longer than the head timeout."""
    request = f"GET /v1/balance HTTP/1.1\r\nHost: x\r\nX-API-Key: {api.key}\r\n\r\n".encode()
    reader, writer = await asyncio.open_connection("127.0.0.1", api.port)
    try:
        for _ in range(3):
            writer.write(request)
            await writer.drain()
            async with asyncio.timeout(10):
                answer = await read_answer(reader)
            assert answer.status == 200, answer.body
            assert json.loads(answer.body)["balance"] == 10
            await asyncio.sleep(HEAD_TIMEOUT * 2)
    finally:
        writer.close()


async def test_body_arriving_after_the_head_timeout_is_not_a_slow_head(api: Api) -> None:
    """The head deadline ends with the head: a body sent later is on the body's clock."""
    body = json.dumps({"url": "http://127.0.0.1:9/hook2", "events": ["message.status"]}).encode()
    head = (
        "POST /v1/webhooks HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
        f"X-API-Key: {api.key}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode()
    answer, _ = await exchange(api.port, head[:20], head[20:], body, pause=HEAD_TIMEOUT * 0.6)
    assert answer.status == 201, answer.body


def test_timeouts_are_settings_refused_when_invalid() -> None:
    defaults = Settings.from_env({})
    assert (defaults.http_header_timeout, defaults.http_body_timeout) == (10.0, 30.0)
    custom = Settings.from_env({"HTTP_HEADER_TIMEOUT": "2.5", "HTTP_BODY_TIMEOUT": "60"})
    assert (custom.http_header_timeout, custom.http_body_timeout) == (2.5, 60.0)
    for name in ("HTTP_HEADER_TIMEOUT", "HTTP_BODY_TIMEOUT"):
        for bad in ("0", "-1", "abc", "nan", "inf", "100000"):
            with pytest.raises(InputError) as err:
                Settings.from_env({name: bad})
            assert err.value.field == name
