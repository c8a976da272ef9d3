"""The customer's webhook endpoint, in the bench process: when did each message's outcome arrive."""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from collections.abc import Collection
from dataclasses import dataclass, field

from aiohttp import web

STATUS_EVENT = "message.status"


@dataclass(frozen=True, slots=True)
class Outcome:
    at: float
    status: str
    cost: float


@dataclass
class WebhookReceiver:
    """Counts message.status events by message id; a repeat is counted, never recorded twice."""

    outcomes: dict[str, Outcome] = field(default_factory=dict)
    duplicates: int = 0
    unreadable: int = 0
    other_events: Counter[str] = field(default_factory=Counter)
    port: int = 0
    _runner: web.AppRunner | None = None
    _pending: set[str] = field(default_factory=set)
    _all_in: asyncio.Event = field(default_factory=asyncio.Event)

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0, backlog=1024).start()
        self.port = self._runner.addresses[0][1]

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks/bench"

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
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
        return web.Response(status=204)

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
