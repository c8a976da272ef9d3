"""When each key was last used, recorded off the request path.

Authentication notes the key (a dictionary write, no I/O); every few seconds one batched
UPDATE writes the uses noted since, and the database moves a key's ``last_used_at`` only when
it is over a minute old, so a busy key costs one write a minute whatever the number of API
processes. The uses still pending are written when the process stops.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from datetime import UTC, datetime
from uuid import UUID

import asyncpg
import structlog
from aiohttp import web

from api.context import shared
from broker.db import CONNECTION_ERRORS
from broker.store import Db
from broker.store import keys as key_store

log = structlog.get_logger(__name__)

#: How often the noted uses are written.
FLUSH_SECONDS = 3.0
#: A key's last_used_at moves at most once per this many seconds.
WRITE_EVERY = 60.0


class KeyUsage:
    """The uses of keys seen by this process, written in batches."""

    def __init__(self, db: Db, *, interval: float = FLUSH_SECONDS) -> None:
        self._db = db
        self._interval = interval
        #: key → the latest use (epoch seconds) not yet written.
        self._pending: dict[UUID, float] = {}
        #: key → the use last written by this process: nothing to note for a minute after it.
        self._written: dict[UUID, float] = {}
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()

    def note(self, key_id: UUID, now: float | None = None) -> None:
        """A request was authenticated with this key. O(1), no I/O."""
        now = time.time() if now is None else now
        written = self._written.get(key_id)
        if written is not None and now - written < WRITE_EVERY:
            return
        self._pending[key_id] = now

    async def flush(self) -> int:
        """Write the pending uses in one statement; the number of keys whose time moved."""
        if not self._pending:
            return 0
        pending, self._pending = self._pending, {}
        uses = [(key_id, datetime.fromtimestamp(at, UTC)) for key_id, at in pending.items()]
        try:
            moved = await key_store.touch_used(self._db, uses)
        except (*CONNECTION_ERRORS, asyncpg.PostgresError) as exc:
            # Kept for the next flush (a newer use noted meanwhile wins).
            for key_id, at in pending.items():
                self._pending.setdefault(key_id, at)
            log.warning("key use not recorded", keys=len(pending), error=type(exc).__name__)
            return 0
        self._written.update(pending)
        horizon = time.time() - WRITE_EVERY
        self._written = {k: at for k, at in self._written.items() if at > horizon}
        return moved

    async def _run(self, stopping: asyncio.Event) -> None:
        while not stopping.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), self._interval)
            await self.flush()  # keeps the uses it could not write for the next time

    def start(self) -> None:
        if self._task is None:
            self._stopping = asyncio.Event()
            self._task = asyncio.create_task(self._run(self._stopping), name="key-usage-flusher")

    async def stop(self) -> None:
        """Stop the timer after writing what is still pending."""
        if self._task is not None:
            self._stopping.set()
            await self._task
            self._task = None
        await self.flush()


KEY_USAGE = web.AppKey("key_usage", KeyUsage)


def note_use(request: web.Request, key_id: UUID) -> None:
    """Note a key's use on the app's recorder, if it has one (the app's, or its parent's)."""
    usage = shared(request).get(KEY_USAGE)
    if usage is not None:
        usage.note(key_id)
