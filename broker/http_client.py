"""POST over keep-alive HTTP/1.1 connections, for the hot paths that only need an answer's status
(webhook deliveries) or a small body (the bench's load).

aiohttp's client costs about 100 µs of CPU per request in its request and response objects,
timers, cookie and redirect handling, none of which a webhook needs; that was a sixth of the
worker's CPU. Here a request is one write of bytes built from the URL, and the answer is read by
httptools (llhttp, the parser Node.js uses) straight into a status and at most ``max_body``
bytes. Connections are pooled per (scheme, host, port) and reused while the server keeps them
alive; names are resolved by an aiohttp resolver (so broker.webhooks.destinations keeps
deciding which addresses may be reached), remembered for ``DNS_TTL`` seconds.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import ssl
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import cast
from urllib.parse import urlsplit

import httptools
from aiohttp.abc import AbstractResolver
from aiohttp.resolver import DefaultResolver

DNS_TTL = 10.0
#: Idle connections kept per (scheme, host, port); more are closed when they come back.
MAX_IDLE_PER_HOST = 256
_DEFAULT_PORTS = {"http": 80, "https": 443}
_FORBIDDEN_IN_URL = frozenset(" \t\r\n\x00")


class HttpClientError(OSError):
    """A request that got no usable answer (the connection failed, closed or spoke nonsense)."""


class ServerDisconnected(HttpClientError):
    """The server closed the connection before its answer's headers were complete."""


class InvalidResponse(HttpClientError):
    """What came back is not an HTTP/1.x response."""


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    #: The first ``max_body`` bytes of the body (a longer one is cut and its connection closed).
    body: bytes


@dataclass(frozen=True, slots=True)
class Target:
    """What a URL says about where and how to send."""

    scheme: str
    host: str
    port: int
    #: The request line's target: path and query.
    path: str
    #: The Host header's value.
    authority: str
    #: The host is an IP address literal: nothing to resolve.
    literal: bool

    @property
    def key(self) -> tuple[str, str, int]:
        return self.scheme, self.host, self.port


@lru_cache(maxsize=4096)
def parse_url(url: str) -> Target:
    """The target of ``url``; ValueError for anything but an absolute http(s) URL."""
    if _FORBIDDEN_IN_URL.intersection(url):
        raise ValueError("the URL contains whitespace or a control character")
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS:
        raise ValueError(f"not an http or https URL (scheme {scheme[:20]!r})")
    host = parts.hostname
    if not host:
        raise ValueError("the URL has no host")
    try:
        literal = bool(ipaddress.ip_address(host))
    except ValueError:
        literal = False
        host = host.encode("idna").decode("ascii")  # UnicodeError is a ValueError
    port = parts.port or _DEFAULT_PORTS[scheme]
    shown = f"[{host}]" if literal and ":" in host else host
    authority = shown if port == _DEFAULT_PORTS[scheme] else f"{shown}:{port}"
    path = parts.path or "/"
    if parts.query:
        path = f"{path}?{parts.query}"
    return Target(scheme, host, port, path, authority, literal)


def request_bytes(target: Target, body: bytes, headers: Mapping[str, str]) -> bytes:
    """A POST with ``body``; ValueError if a header would break the request's framing."""
    lines = [
        f"POST {target.path} HTTP/1.1",
        f"host: {target.authority}",
        f"content-length: {len(body)}",
    ]
    for name, value in headers.items():
        if "\r" in value or "\n" in value or "\r" in name or "\n" in name or ":" in name:
            raise ValueError(f"header {name!r} cannot be sent")
        lines.append(f"{name}: {value}")
    lines.append("\r\n")
    return "\r\n".join(lines).encode("latin-1") + body


class _Connection(asyncio.Protocol):
    """One TCP (or TLS) connection and the answer it is reading, one request at a time."""

    def __init__(self, max_body: int) -> None:
        self._max_body = max_body
        self._parser = httptools.HttpResponseParser(self)
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.idle_since = 0.0
        self._waiter: asyncio.Future[Answer] | None = None
        self._status = 0
        self._chunks: list[bytes] = []
        self._size = 0
        self._headers_done = False
        self._received = False
        #: Read when the answer completes (llhttp forgets it once the next message begins).
        self._keep_alive = False

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, but have its methods.
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self._received = True
        if self._waiter is None or self._waiter.done():  # a server talking out of turn
            self.close()
            return
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(InvalidResponse(f"invalid HTTP response: {exc}"))
        except httptools.HttpParserUpgrade:
            self._finish()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self._waiter is None or self._waiter.done():
            return
        if self._headers_done:
            self._finish()  # a body that ends at close (no length given): what came is it
        else:
            self._fail(ServerDisconnected("the server closed the connection without answering"))

    # httptools callbacks
    def on_headers_complete(self) -> None:
        self._status = self._parser.get_status_code()
        self._headers_done = True

    def on_body(self, body: bytes) -> None:
        if self._status < 200:
            return
        room = self._max_body - self._size
        if len(body) > room:
            self._chunks.append(body[:room])
            self._size = self._max_body
            self._finish()
            self.close()  # the rest is not wanted; the connection cannot be reused
            return
        self._chunks.append(body)
        self._size += len(body)

    def on_message_complete(self) -> None:
        if 100 <= self._status < 200 and self._status != 101:
            self._headers_done = False  # an interim answer: the real one follows
            return
        self._keep_alive = self._parser.should_keep_alive()
        self._finish()

    # the client's side
    def send(self, payload: bytes) -> asyncio.Future[Answer]:
        assert self.transport is not None
        self._waiter = asyncio.get_running_loop().create_future()
        self._status, self._chunks, self._size = 0, [], 0
        self._headers_done = self._received = self._keep_alive = False
        self.transport.write(payload)
        return self._waiter

    @property
    def answered_nothing(self) -> bool:
        """Not a byte came back to the request in flight."""
        return not self._received

    @property
    def reusable(self) -> bool:
        return not self.closed and self._keep_alive

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()

    def abort(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.abort()

    def _finish(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(Answer(self._status, b"".join(self._chunks)))

    def _fail(self, exc: HttpClientError) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_exception(exc)
        self.abort()


class HttpClient:
    """POSTs on pooled keep-alive connections; one instance per process and purpose."""

    def __init__(
        self,
        resolver: AbstractResolver | None = None,
        *,
        keepalive: float = 30.0,
        max_body: int = 64 * 1024,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self._resolver = resolver if resolver is not None else DefaultResolver()
        self._keepalive = keepalive
        self._max_body = max_body
        self._ssl = ssl_context
        self._idle: dict[tuple[str, str, int], deque[_Connection]] = {}
        self._busy: set[_Connection] = set()
        self._dns: dict[tuple[str, int], tuple[float, list[str]]] = {}
        self._last_sweep = time.monotonic()

    async def post(
        self, url: str, body: bytes, headers: Mapping[str, str], *, timeout: float
    ) -> Answer:
        """The answer to POST ``body`` to ``url``. Raises ValueError (a URL or header that
        cannot be sent), TimeoutError (no answer within ``timeout`` seconds, connecting
        included) or OSError (HttpClientError among them: no usable answer)."""
        target = parse_url(url)
        payload = request_bytes(target, body, headers)
        async with asyncio.timeout(timeout):
            while True:
                conn = self._checkout(target)
                reused = conn is not None
                if conn is None:
                    conn = await self._connect(target)
                self._busy.add(conn)
                try:
                    answer = await conn.send(payload)
                except ServerDisconnected:
                    # A kept-alive connection the server closed as we wrote: once more, new.
                    if reused and conn.answered_nothing:
                        continue
                    raise
                except BaseException:
                    conn.abort()
                    raise
                finally:
                    self._busy.discard(conn)
                self._checkin(target, conn)
                return answer

    async def close(self) -> None:
        """Close every connection, idle or busy (a request in flight fails)."""
        for pool in self._idle.values():
            for conn in pool:
                conn.close()
        self._idle.clear()
        for conn in list(self._busy):
            conn.abort()
        self._busy.clear()
        await self._resolver.close()

    def _checkout(self, target: Target) -> _Connection | None:
        now = time.monotonic()
        if now - self._last_sweep > self._keepalive:
            self._sweep(now)
        pool = self._idle.get(target.key)
        while pool:
            conn = pool.pop()
            if self._fresh(conn, now):
                return conn
            conn.close()
        return None

    def _fresh(self, conn: _Connection, now: float) -> bool:
        """Still open, and idle for less than the keep-alive time."""
        return not conn.closed and now - conn.idle_since < self._keepalive

    def _checkin(self, target: Target, conn: _Connection) -> None:
        if not conn.reusable:
            conn.close()
            return
        pool = self._idle.setdefault(target.key, deque())
        if len(pool) >= MAX_IDLE_PER_HOST:
            conn.close()
            return
        conn.idle_since = time.monotonic()
        pool.append(conn)

    def _sweep(self, now: float) -> None:
        """Close connections idle longer than the keep-alive time."""
        self._last_sweep = now
        for key, pool in list(self._idle.items()):
            kept: deque[_Connection] = deque()
            for conn in pool:
                if self._fresh(conn, now):
                    kept.append(conn)
                else:
                    conn.close()
            if kept:
                self._idle[key] = kept
            else:
                del self._idle[key]

    async def _connect(self, target: Target) -> _Connection:
        loop = asyncio.get_running_loop()
        tls = target.scheme == "https"
        context = await self._ssl_context() if tls else None
        last: OSError | None = None
        for address in await self._addresses(target):
            try:
                _, conn = await loop.create_connection(
                    self._new_connection,
                    address,
                    target.port,
                    ssl=context,
                    server_hostname=target.host if tls else None,
                )
            except OSError as exc:
                last = exc
                continue
            return conn
        raise last if last is not None else OSError(f"{target.host} has no address")

    def _new_connection(self) -> _Connection:
        return _Connection(self._max_body)

    async def _addresses(self, target: Target) -> list[str]:
        if target.literal:
            return [target.host]
        key = (target.host, target.port)
        now = time.monotonic()
        cached = self._dns.get(key)
        if cached is not None and cached[0] > now:
            return cached[1]
        found = await self._resolver.resolve(target.host, target.port, socket.AF_UNSPEC)
        addresses = [r["host"] for r in found]
        if len(self._dns) > 4096:
            self._dns.clear()
        self._dns[key] = (now + DNS_TTL, addresses)
        return addresses

    async def _ssl_context(self) -> ssl.SSLContext:
        if self._ssl is None:
            # Reading the system's CA certificates takes a while: not on the event loop.
            self._ssl = await asyncio.to_thread(ssl.create_default_context)
        return self._ssl
