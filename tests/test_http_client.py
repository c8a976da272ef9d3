"""broker.http_client against real servers: aiohttp's, and raw sockets that answer the ways
servers in the wild do (chunked, until close, interim 100, closing kept-alive connections,
silence, garbage, TLS)."""

from __future__ import annotations

import asyncio
import shutil
import ssl
import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.abc import AbstractResolver, ResolveResult

from broker.http_client import (
    HttpClient,
    InvalidResponse,
    ServerDisconnected,
    parse_url,
    request_bytes,
)
from broker.webhooks.destinations import PublicOnlyResolver

Script = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


class RawServer:
    """A TCP server running ``script`` for each connection; counts connections."""

    def __init__(self, script: Script) -> None:
        self.script = script
        self.connections = 0
        self.server: asyncio.Server | None = None

    async def __aenter__(self) -> RawServer:
        async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            self.connections += 1
            try:
                await self.script(reader, writer)
            except (ConnectionError, asyncio.IncompleteReadError):
                pass
            finally:
                writer.close()

        self.server = await asyncio.start_server(on_connect, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()

    @property
    def url(self) -> str:
        assert self.server is not None
        port = self.server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}/hook?x=1"


async def read_request(reader: asyncio.StreamReader) -> tuple[bytes, bytes]:
    """(head, body) of one request with a content-length."""
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":", 1)[1])
    return head, await reader.readexactly(length)


def answering(*responses: bytes, then_close: bool = False) -> Script:
    """Answer each request on the connection with the next response."""

    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        for response in responses:
            await read_request(reader)
            writer.write(response)
            await writer.drain()
        if not then_close:
            await reader.read()  # until the client closes

    return script


OK_EMPTY = b"HTTP/1.1 204 No Content\r\n\r\n"


@pytest.fixture
async def client() -> AsyncIterator[HttpClient]:
    http = HttpClient()
    yield http
    await http.close()


@pytest.mark.parametrize(
    ("url", "path", "authority", "port"),
    [
        ("http://example.com", "/", "example.com", 80),
        ("https://example.com/a/b?c=1&d=2", "/a/b?c=1&d=2", "example.com", 443),
        ("HTTP://Example.COM:8080/x", "/x", "example.com:8080", 8080),
        ("https://[2001:db8::1]:8443/h", "/h", "[2001:db8::1]:8443", 8443),
        ("http://bücher.example/x", "/x", "xn--bcher-kva.example", 80),
        ("http://127.0.0.1:80/", "/", "127.0.0.1", 80),
    ],
)
def test_parse_url(url: str, path: str, authority: str, port: int) -> None:
    target = parse_url(url)
    assert (target.path, target.authority, target.port) == (path, authority, port)


@pytest.mark.parametrize(
    "url",
    [
        "ftp://example.com/",
        "example.com/x",
        "http:///nohost",
        "http://example.com/a b",
        "http://example.com/\r\nX-Injected: 1",
        "http://example.com:99999/",
    ],
)
def test_parse_url_refuses(url: str) -> None:
    with pytest.raises(ValueError):
        parse_url(url)


@pytest.mark.parametrize(
    "headers",
    [{"x-a": "1\r\nx-b: 2"}, {"x-a\r\nx-b": "2"}, {"x:a": "1"}],
)
def test_request_bytes_refuses_headers_that_break_framing(headers: dict[str, str]) -> None:
    with pytest.raises(ValueError):
        request_bytes(parse_url("http://example.com/"), b"{}", headers)


async def test_posts_body_and_headers_to_aiohttp_on_one_kept_alive_connection(
    client: HttpClient,
) -> None:
    seen: list[tuple[str, str, bytes, str | None]] = []
    peers: set[object] = set()

    async def handle(request: web.Request) -> web.Response:
        peers.add(request.transport.get_extra_info("peername") if request.transport else None)
        seen.append(
            (
                request.path_qs,
                request.headers["Host"],
                await request.read(),
                request.headers.get("X-Sig"),
            )
        )
        return web.json_response({"n": len(seen)}, status=201)

    app = web.Application()
    app.router.add_post("/hook", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        for i in range(30):
            answer = await client.post(
                f"http://127.0.0.1:{port}/hook?i={i}",
                b'{"i": %d}' % i,
                {"x-sig": "v1,abc"},
                timeout=5,
            )
            assert answer.status == 201 and answer.body == b'{"n": %d}' % (i + 1)
    finally:
        await runner.cleanup()
    assert seen[3] == ("/hook?i=3", f"127.0.0.1:{port}", b'{"i": 3}', "v1,abc")
    assert len(peers) == 1, "every request should reuse the first connection"


async def test_concurrent_posts_each_get_their_answer(client: HttpClient) -> None:
    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            _, body = await read_request(reader)
            await asyncio.sleep(0.01)
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n%s" % (len(body), body))

    async with RawServer(echo) as server:
        answers = await asyncio.gather(
            *(client.post(server.url, b"%d" % i, {}, timeout=5) for i in range(20))
        )
        assert [a.body for a in answers] == [b"%d" % i for i in range(20)]
        assert server.connections == 20
        await asyncio.gather(*(client.post(server.url, b"x", {}, timeout=5) for _ in range(20)))
        assert server.connections == 20, "the second round should reuse the pooled connections"


async def test_chunked_body_is_assembled(client: HttpClient) -> None:
    chunked = (
        b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n"
        b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
    )
    async with RawServer(answering(chunked, OK_EMPTY)) as server:
        assert (await client.post(server.url, b"{}", {}, timeout=5)).body == b"hello world"
        assert (await client.post(server.url, b"{}", {}, timeout=5)).status == 204
        assert server.connections == 1


async def test_body_until_close(client: HttpClient) -> None:
    response = b"HTTP/1.1 200 OK\r\nconnection: close\r\n\r\nall of it"
    async with RawServer(answering(response, then_close=True)) as server:
        first = await client.post(server.url, b"{}", {}, timeout=5)
        second = await client.post(server.url, b"{}", {}, timeout=5)
        assert (first.status, first.body) == (200, b"all of it") == (second.status, second.body)
        assert server.connections == 2


async def test_interim_100_is_skipped(client: HttpClient) -> None:
    response = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 202 Accepted\r\ncontent-length: 2\r\n\r\nok"
    async with RawServer(answering(response)) as server:
        answer = await client.post(server.url, b"{}", {}, timeout=5)
        assert (answer.status, answer.body) == (202, b"ok")


async def test_a_kept_alive_connection_the_server_closed_is_replaced(client: HttpClient) -> None:
    """The server answers keep-alive, then drops the connection while it sits idle (or as the
    next request is written): the next request goes out on a new connection."""
    async with RawServer(answering(OK_EMPTY, then_close=True)) as server:
        for _ in range(5):
            assert (await client.post(server.url, b"{}", {}, timeout=5)).status == 204
        assert server.connections == 5


async def test_a_connection_idle_past_the_keepalive_is_closed_not_reused() -> None:
    http = HttpClient(keepalive=0.2)
    try:
        async with RawServer(answering(OK_EMPTY, OK_EMPTY, OK_EMPTY)) as server:
            assert (await http.post(server.url, b"{}", {}, timeout=5)).status == 204
            assert (await http.post(server.url, b"{}", {}, timeout=5)).status == 204
            assert server.connections == 1
            await asyncio.sleep(0.3)
            assert (await http.post(server.url, b"{}", {}, timeout=5)).status == 204
            assert server.connections == 2
    finally:
        await http.close()


async def test_silence_times_out(client: HttpClient) -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()

    async with RawServer(silent) as server:
        with pytest.raises(TimeoutError):
            await client.post(server.url, b"{}", {}, timeout=0.3)


async def test_close_without_answer_on_a_new_connection(client: HttpClient) -> None:
    async def rude(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)

    async with RawServer(rude) as server:
        with pytest.raises(ServerDisconnected):
            await client.post(server.url, b"{}", {}, timeout=5)
        assert server.connections == 1, "a fresh connection that fails is not retried"


async def test_garbage_is_an_invalid_response(client: HttpClient) -> None:
    async with RawServer(answering(b"SMTP ready\r\n\r\n")) as server:
        with pytest.raises(InvalidResponse):
            await client.post(server.url, b"{}", {}, timeout=5)


async def test_long_body_is_cut_and_its_connection_not_reused() -> None:
    big = b"HTTP/1.1 200 OK\r\ncontent-length: 100000\r\n\r\n" + b"a" * 100_000
    http = HttpClient(max_body=1000)
    try:
        async with RawServer(answering(big, big)) as server:
            answer = await http.post(server.url, b"{}", {}, timeout=5)
            assert (answer.status, answer.body) == (200, b"a" * 1000)
            await http.post(server.url, b"{}", {}, timeout=5)
            assert server.connections == 2
    finally:
        await http.close()


async def test_refused_connection_is_an_os_error(client: HttpClient) -> None:
    async with RawServer(answering()) as server:
        url = server.url
    with pytest.raises(OSError):
        await client.post(url, b"{}", {}, timeout=5)


class FixedResolver(AbstractResolver):
    def __init__(self, *addresses: str) -> None:
        self.addresses = addresses
        self.calls = 0

    async def resolve(self, host: str, port: int = 0, family: int = 0) -> list[ResolveResult]:
        self.calls += 1
        return [
            ResolveResult(hostname=host, host=a, port=port, family=2, proto=0, flags=0)
            for a in self.addresses
        ]

    async def close(self) -> None:
        pass


async def test_names_are_resolved_by_the_resolver_and_remembered() -> None:
    resolver = FixedResolver("127.0.0.1")
    http = HttpClient(resolver)
    try:
        async with RawServer(answering(OK_EMPTY, OK_EMPTY, then_close=True)) as server:
            url = server.url.replace("127.0.0.1", "hooks.example.test")
            assert (await http.post(url, b"{}", {}, timeout=5)).status == 204
            assert (await http.post(url, b"{}", {}, timeout=5)).status == 204
            assert resolver.calls == 1
    finally:
        await http.close()


async def test_a_name_resolving_to_a_private_address_is_never_connected() -> None:
    http = HttpClient(PublicOnlyResolver(FixedResolver("127.0.0.1")))
    try:
        async with RawServer(answering(OK_EMPTY)) as server:
            url = server.url.replace("127.0.0.1", "internal.example.test")
            with pytest.raises(OSError, match="no public address"):
                await http.post(url, b"{}", {}, timeout=5)
            assert server.connections == 0
    finally:
        await http.close()


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command")
async def test_https(tmp_path: Path) -> None:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=DNS:localhost",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(cert, key)

    async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        _, body = await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n%s" % (len(body), body))
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(on_connect, "127.0.0.1", 0, ssl=server_ctx)
    port = server.sockets[0].getsockname()[1]
    trusting = ssl.create_default_context(cafile=str(cert))
    http = HttpClient(FixedResolver("127.0.0.1"), ssl_context=trusting)
    try:
        answer = await http.post(f"https://localhost:{port}/x", b"secret", {}, timeout=5)
        assert (answer.status, answer.body) == (200, b"secret")
        untrusting = HttpClient(FixedResolver("127.0.0.1"))
        with pytest.raises(ssl.SSLError):
            await untrusting.post(f"https://localhost:{port}/x", b"x", {}, timeout=5)
        await untrusting.close()
    finally:
        await http.close()
        server.close()


def test_under_uvloop() -> None:
    """The workers run on uvloop, whose transports are not asyncio's classes."""
    uvloop = pytest.importorskip("uvloop")

    async def scenario() -> None:
        http = HttpClient()
        try:
            async with RawServer(answering(OK_EMPTY, OK_EMPTY)) as server:
                for _ in range(2):
                    assert (await http.post(server.url, b"{}", {}, timeout=5)).status == 204
                assert server.connections == 1
            async with RawServer(answering(OK_EMPTY, then_close=True)) as server:
                for _ in range(3):
                    assert (await http.post(server.url, b"{}", {}, timeout=5)).status == 204
        finally:
            await http.close()

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(scenario())
