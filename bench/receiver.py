"""The customer's webhook endpoint, in the bench process: when did each message's outcome arrive.

A bare asyncio protocol with httptools rather than an aiohttp application: the bench shares the
machine with the gateway it measures, and aiohttp's server machinery cost the bench ~17% of its
CPU for requests whose only answer is 204.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from typing import cast

import httptools

STATUS_EVENT = "message.status"

_NO_CONTENT = b"HTTP/1.1 204 No Content\r\n\r\n"
_NO_CONTENT_CLOSE = b"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n"
_BAD_REQUEST = b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"


@dataclass(frozen=True, slots=True)
class Outcome:
    at: float
    status: str
    cost: float


class _Connection(asyncio.Protocol):
    """One client connection: each complete request, in order, is handed on and answered 204."""

    __slots__ = ("_on_request", "_open", "_parser", "_transport", "_body")

    _transport: asyncio.Transport

    def __init__(
        self, on_request: Callable[[bytes], None], open_transports: set[asyncio.Transport]
    ) -> None:
        self._on_request = on_request
        self._open = open_transports
        self._parser = httptools.HttpRequestParser(self)
        self._body: list[bytes] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)
        self._open.add(self._transport)

    def connection_lost(self, exc: Exception | None) -> None:
        self._open.discard(self._transport)

    def pause_writing(self) -> None:
        # A client that sends but does not read its answers: stop reading until it catches up.
        self._transport.pause_reading()

    def resume_writing(self) -> None:
        self._transport.resume_reading()

    def data_received(self, data: bytes) -> None:
        transport = self._transport
        if transport.is_closing():
            return
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            transport.close()  # nothing here speaks another protocol
        except httptools.HttpParserError:
            # Also what bytes after a `Connection: close` request raise; that one was answered.
            if not transport.is_closing():
                transport.write(_BAD_REQUEST)
                transport.close()

    # httptools callbacks (it calls only those defined).

    def on_body(self, body: bytes) -> None:
        self._body.append(body)

    def on_message_complete(self) -> None:
        transport = self._transport
        if transport.is_closing():
            return
        chunks, self._body = self._body, []
        self._on_request(chunks[0] if len(chunks) == 1 else b"".join(chunks))
        if self._parser.should_keep_alive():
            transport.write(_NO_CONTENT)
        else:
            transport.write(_NO_CONTENT_CLOSE)
            transport.close()


@dataclass
class WebhookReceiver:
    """Counts message.status events by message id; a repeat is counted, never recorded twice."""

    outcomes: dict[str, Outcome] = field(default_factory=dict)
    duplicates: int = 0
    unreadable: int = 0
    other_events: Counter[str] = field(default_factory=Counter)
    port: int = 0
    _server: asyncio.Server | None = None
    _transports: set[asyncio.Transport] = field(default_factory=set)
    _pending: set[str] = field(default_factory=set)
    _all_in: asyncio.Event = field(default_factory=asyncio.Event)

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: _Connection(self._handle, self._transports), "127.0.0.1", 0, backlog=1024
        )
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        """Close the listener and drop every open connection (the run is over; nothing to flush)."""
        server, self._server = self._server, None
        if server is None:
            return
        server.close()
        for transport in list(self._transports):
            transport.abort()
        await server.wait_closed()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks/bench"

    def _handle(self, body: bytes) -> None:
        now = time.monotonic()
        try:
            doc = json.loads(body)
            kind, data = doc["type"], doc["data"]
            if kind == STATUS_EVENT:
                self._record(str(data["id"]), str(data["status"]), float(data["cost"] or 0), now)
            else:
                self.other_events[str(kind)] += 1
        except (ValueError, KeyError, TypeError):
            self.unreadable += 1

    def _record(self, message_id: str, status: str, cost: float, now: float) -> None:
        if message_id in self.outcomes:
            self.duplicates += 1
            return
        self.outcomes[message_id] = Outcome(now, status, cost)
        if message_id in self._pending:
            self._pending.discard(message_id)
            if not self._pending:
                self._all_in.set()

    async def wait_for(self, ids: Collection[str]) -> None:
        """Return once every id has an outcome (wrap in a timeout: some may never come)."""
        self._pending = {i for i in ids if i not in self.outcomes}
        if not self._pending:
            return
        self._all_in.clear()
        await self._all_in.wait()

    def missing(self, ids: Collection[str]) -> list[str]:
        return [i for i in ids if i not in self.outcomes]
