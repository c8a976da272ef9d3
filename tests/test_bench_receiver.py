"""The bench's webhook receiver speaks enough HTTP/1.1 for the gateway's sender and for odd clients:
keep-alive, pipelining, bodies split across reads, `Connection: close`, HTTP/1.0 and garbage."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from types import SimpleNamespace
from typing import Any

import aiohttp
import pytest

from bench.receiver import STATUS_EVENT, WebhookReceiver
from broker.http_client import HttpClient


@pytest.fixture
async def receiver() -> AsyncIterator[WebhookReceiver]:
    r = WebhookReceiver()
    await r.start()
    yield r
    await r.stop()


def status_event(message_id: str, status: str = "delivered", cost: Any = "0.05") -> bytes:
    # Padded to about the size of the gateway's real status event.
    data = {
        "id": message_id,
        "status": status,
        "cost": cost,
        "to": "+15550000000",
        "pad": "x" * 400,
    }
    return json.dumps({"type": STATUS_EVENT, "data": data}).encode()


def post(body: bytes, *, extra: str = "", version: str = "1.1") -> bytes:
    head = (
        f"POST /hooks/bench HTTP/{version}\r\nHost: 127.0.0.1\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n{extra}\r\n"
    )
    return head.encode() + body


async def connect(
    receiver: WebhookReceiver,
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection("127.0.0.1", receiver.port)


async def close(writer: asyncio.StreamWriter) -> None:
    writer.close()
    with contextlib.suppress(ConnectionError):  # the receiver may have dropped it first
        await writer.wait_closed()


async def read_head(reader: asyncio.StreamReader) -> bytes:
    return await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)


async def test_many_requests_on_one_aiohttp_connection(receiver: WebhookReceiver) -> None:
    created = 0

    async def on_create(*_: object) -> None:
        nonlocal created
        created += 1

    trace = aiohttp.TraceConfig()
    trace.on_connection_create_end.append(on_create)
    ids = [f"m{i}" for i in range(200)]
    waiting = asyncio.create_task(receiver.wait_for(ids))
    async with aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=1), trace_configs=[trace]
    ) as http:
        for i, mid in enumerate(ids):
            status = "failed" if i % 2 else "delivered"
            cost = None if i == 0 else "0.05"
            async with http.post(receiver.url, data=status_event(mid, status, cost)) as resp:
                assert resp.status == 204
                assert await resp.read() == b""
        async with http.post(receiver.url, data=status_event("m3")) as resp:  # a repeat
            assert resp.status == 204
        await asyncio.wait_for(waiting, 5)
    assert created == 1
    assert len(receiver.outcomes) == 200 and receiver.duplicates == 1
    assert receiver.outcomes["m0"].cost == 0 and receiver.outcomes["m1"].cost == 0.05
    assert receiver.outcomes["m1"].status == "failed"  # the repeat did not overwrite it
    assert receiver.outcomes["m3"].status == "failed"
    assert receiver.outcomes["m0"].at <= receiver.outcomes["m199"].at
    assert receiver.missing(["m5", "nope"]) == ["nope"]
    await asyncio.wait_for(receiver.wait_for(["m7"]), 1)  # already in: returns at once


async def test_the_gateways_own_client_keeps_one_connection(receiver: WebhookReceiver) -> None:
    """What the webhook sender posts with: 204 without a length is read as an empty answer."""
    client = HttpClient()
    try:
        for i in range(50):
            answer = await client.post(receiver.url, status_event(f"g{i}"), {}, timeout=5)
            assert (answer.status, answer.body) == (204, b"")
        assert len(receiver._transports) == 1
    finally:
        await client.close()
    assert len(receiver.outcomes) == 50


async def test_concurrent_aiohttp_connections(receiver: WebhookReceiver) -> None:
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=20)) as http:

        async def send(i: int) -> int:
            async with http.post(receiver.url, data=status_event(f"c{i}")) as resp:
                return resp.status

        statuses = await asyncio.gather(*(send(i) for i in range(300)))
    assert set(statuses) == {204}
    assert len(receiver.outcomes) == 300 and receiver.duplicates == 0


async def test_unreadable_and_other_events_are_counted(receiver: WebhookReceiver) -> None:
    bodies = [
        b"not json",
        b"",
        b"[1, 2]",
        b'"a string"',
        json.dumps({"type": STATUS_EVENT}).encode(),
        json.dumps({"type": STATUS_EVENT, "data": {"id": "x", "status": "sent"}}).encode(),
        json.dumps(
            {"type": STATUS_EVENT, "data": {"id": "x", "status": "s", "cost": "z"}}
        ).encode(),
        b"\xff\xfe",
        json.dumps({"type": "message.inbound", "data": {}}).encode(),
        json.dumps({"type": "message.inbound", "data": {}}).encode(),
        json.dumps({"type": "otp.verified", "data": {}}).encode(),
    ]
    async with aiohttp.ClientSession() as http:
        for body in bodies:
            async with http.post(receiver.url, data=body) as resp:
                assert resp.status == 204
    assert receiver.unreadable == 8
    assert receiver.other_events == {"message.inbound": 2, "otp.verified": 1}
    assert receiver.outcomes == {} and receiver.duplicates == 0


async def test_a_body_split_over_several_writes(receiver: WebhookReceiver) -> None:
    request = post(status_event("split"))
    reader, writer = await connect(receiver)
    try:
        for start in range(0, len(request), 97):
            writer.write(request[start : start + 97])
            await writer.drain()
            await asyncio.sleep(0.01)
        assert await read_head(reader) == b"HTTP/1.1 204 No Content\r\n\r\n"
        assert receiver.outcomes["split"].status == "delivered"
        # Still open for the next one: a chunked body this time.
        body = status_event("chunked")
        writer.write(
            b"POST /h HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
            + f"{100:x}\r\n".encode()
            + body[:100]
            + b"\r\n"
            + f"{len(body) - 100:x}\r\n".encode()
            + body[100:]
            + b"\r\n0\r\n\r\n"
        )
        assert await read_head(reader) == b"HTTP/1.1 204 No Content\r\n\r\n"
        assert "chunked" in receiver.outcomes
    finally:
        await close(writer)


async def test_pipelined_requests_are_answered_in_order(receiver: WebhookReceiver) -> None:
    reader, writer = await connect(receiver)
    try:
        writer.write(post(status_event("p1")) + post(status_event("p2", "failed")))
        assert await read_head(reader) == b"HTTP/1.1 204 No Content\r\n\r\n"
        assert await read_head(reader) == b"HTTP/1.1 204 No Content\r\n\r\n"
        assert receiver.outcomes["p1"].status == "delivered"
        assert receiver.outcomes["p2"].status == "failed"
    finally:
        await close(writer)


CLOSE = SimpleNamespace(extra="Connection: close\r\n", version="1.1")
HTTP_1_0 = SimpleNamespace(extra="", version="1.0")


@pytest.mark.parametrize("how", [CLOSE, HTTP_1_0], ids=["connection-close", "http-1.0"])
async def test_a_request_that_does_not_keep_alive_closes(
    receiver: WebhookReceiver, how: SimpleNamespace
) -> None:
    reader, writer = await connect(receiver)
    try:
        # A second request after it is ignored: the connection is over.
        writer.write(
            post(status_event("last"), extra=how.extra, version=how.version)
            + post(status_event("ignored"))
        )
        answer = await asyncio.wait_for(reader.read(), 5)
        assert answer == b"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n"
        assert "last" in receiver.outcomes and "ignored" not in receiver.outcomes
    finally:
        await close(writer)


async def test_http_1_0_keep_alive_is_kept(receiver: WebhookReceiver) -> None:
    reader, writer = await connect(receiver)
    try:
        for mid in ("k1", "k2"):
            writer.write(post(status_event(mid), extra="Connection: keep-alive\r\n", version="1.0"))
            assert await read_head(reader) == b"HTTP/1.1 204 No Content\r\n\r\n"
        assert {"k1", "k2"} <= receiver.outcomes.keys()
    finally:
        await close(writer)


GARBAGE = [
    b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",  # a TLS client hello
    b"POST / HTTP/1.1\r\nContent-Length: x\r\n\r\n",
]


@pytest.mark.parametrize("garbage", GARBAGE, ids=["tls-hello", "bad-length"])
async def test_garbage_gets_400_and_the_connection_closed(
    receiver: WebhookReceiver, garbage: bytes
) -> None:
    reader, writer = await connect(receiver)
    try:
        writer.write(garbage)
        answer = await asyncio.wait_for(reader.read(), 5)
        assert answer.startswith(b"HTTP/1.1 400 Bad Request\r\n")
        assert b"Connection: close\r\n" in answer
    finally:
        await close(writer)
    assert receiver.unreadable == 0 and receiver.outcomes == {}


async def test_garbage_after_a_good_request_on_the_same_connection(
    receiver: WebhookReceiver,
) -> None:
    reader, writer = await connect(receiver)
    try:
        writer.write(post(status_event("good")) + b"BREW /pot HTCPCP/1.0\r\n\r\n")
        answer = await asyncio.wait_for(reader.read(), 5)
        assert answer.startswith(b"HTTP/1.1 204 No Content\r\n\r\nHTTP/1.1 400 Bad Request\r\n")
        assert "good" in receiver.outcomes
    finally:
        await close(writer)


async def test_stop_closes_the_listener_and_open_connections() -> None:
    receiver = WebhookReceiver()
    await receiver.start()
    assert receiver.url == f"http://127.0.0.1:{receiver.port}/hooks/bench"
    reader, writer = await connect(receiver)
    idle_reader, idle_writer = await connect(receiver)
    try:
        writer.write(post(status_event("before-stop")))
        await read_head(reader)
        await receiver.stop()
        for r in (reader, idle_reader):
            with contextlib.suppress(ConnectionResetError):  # dropped, not closed: as good
                assert await asyncio.wait_for(r.read(), 5) == b""
        with pytest.raises(OSError):
            await connect(receiver)
        await receiver.stop()  # twice is harmless
    finally:
        await close(writer)
        await close(idle_writer)
    assert "before-stop" in receiver.outcomes


def test_under_uvloop() -> None:
    """The bench runs on uvloop, whose transports are not asyncio's classes: the same cases."""
    uvloop = pytest.importorskip("uvloop")

    async def each_on_a_fresh_receiver() -> None:
        cases: list[Callable[[WebhookReceiver], Awaitable[None]]] = [
            test_many_requests_on_one_aiohttp_connection,
            test_concurrent_aiohttp_connections,
            test_the_gateways_own_client_keeps_one_connection,
            test_a_body_split_over_several_writes,
            test_pipelined_requests_are_answered_in_order,
            functools.partial(test_a_request_that_does_not_keep_alive_closes, how=CLOSE),
            functools.partial(test_garbage_gets_400_and_the_connection_closed, garbage=GARBAGE[0]),
            test_garbage_after_a_good_request_on_the_same_connection,
        ]
        for case in cases:
            receiver = WebhookReceiver()
            await receiver.start()
            try:
                await case(receiver)
            finally:
                await receiver.stop()
        await test_stop_closes_the_listener_and_open_connections()

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(each_on_a_fresh_receiver())
