"""A worker that polls PostgreSQL for work: one pass after another, at once while a pass finds
a full batch, else after ``every`` seconds; a failed pass is logged and retried with backoff,
so a database restart or a bug in one pass never stops the role."""

from __future__ import annotations

import abc
import asyncio
import contextlib
from collections.abc import Awaitable, Callable

import structlog

from workers.consumer import TRANSIENT, Backoff

log = structlog.get_logger(__name__)


class PollingWorker(abc.ABC):
    #: Named in logs.
    name = "poller"

    def __init__(self, *, every: float, batch: int) -> None:
        self.every = every
        self.batch = batch
        self._task: asyncio.Task[None] | None = None
        self._backoff = Backoff()

    @abc.abstractmethod
    async def run_once(self) -> int:
        """One pass; how much it did (a full ``batch``: go on at once)."""

    async def start(self) -> None:
        self._task = asyncio.create_task(self._loop())

    async def stop(self) -> None:
        """Stop between passes: a pass in flight is cancelled (its transaction rolls back)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _loop(self) -> None:
        failures = 0
        while True:
            try:
                done = await self.run_once()
                failures = 0
            except TRANSIENT as exc:
                failures += 1
                pause = self._backoff.delay(failures)
                log.warning(
                    "pass failed", worker=self.name, error=repr(exc), failures=failures, pause=pause
                )
                await asyncio.sleep(pause)
                continue
            except Exception:  # noqa: BLE001 - a bug must not stop the role for good
                failures += 1
                log.exception("pass failed unexpectedly", worker=self.name, failures=failures)
                await asyncio.sleep(self._backoff.delay(failures))
                continue
            if done < self.batch:
                await asyncio.sleep(self.every)


async def every(seconds: float, work: Callable[[], Awaitable[object]]) -> None:
    """Run ``work`` every ``seconds`` until cancelled; a transient failure is logged and the
    next round tries again (connectors added later must still be picked up, leases renewed)."""
    failures = 0
    while True:
        await asyncio.sleep(seconds)
        try:
            await work()
            failures = 0
        except TRANSIENT as exc:
            failures += 1
            log.warning(
                "periodic work failed", work=work.__name__, error=repr(exc), failures=failures
            )
