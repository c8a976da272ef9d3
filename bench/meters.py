"""Which processes are measured, sampled while the load runs so that an exited one still counts."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Callable

import asyncpg

from bench.database import backend_pids
from bench.procstat import Tracked, is_named, pids_named

SAMPLE_EVERY = 0.5
MARK_TENTH, MARK_END = "a tenth done", "end"
BENCH, RABBITMQ, POSTGRES = "bench (load + receiver)", "rabbitmq (beam.smp)", "postgres backends"
BENCH_WITH_GATEWAY = "bench (gateway + load + receiver)"


class Meters:
    def __init__(
        self, processes: list[tuple[str, int]], dsn: str, database: str, *, bench_label: str = BENCH
    ) -> None:
        self.dsn = dsn
        self.database = database
        self.groups: list[Tracked] = []
        for name, pid in processes:
            tracked = Tracked(name)
            tracked.add(pid, baseline=True)
            self.groups.append(tracked)
        self.bench = self._group(bench_label, [os.getpid()])
        self.rabbitmq = Tracked(RABBITMQ, sampled_rss=True)
        self.postgres = Tracked(POSTGRES)
        self.groups += [self.bench, self.rabbitmq, self.postgres]
        #: Memory held at named moments of the run (a tenth of the messages done, the end),
        #: per group: whether it stays flat once warm.
        self.marks: dict[str, dict[str, int | None]] = {}

    def _group(self, name: str, pids: list[int]) -> Tracked:
        tracked = Tracked(name)
        for pid in pids:
            tracked.add(pid, baseline=True)
        return tracked

    async def start(self) -> None:
        """Find RabbitMQ and the database's backends (when they run on this machine)."""
        for pid in await asyncio.to_thread(pids_named, "beam.smp"):
            self.rabbitmq.add(pid, baseline=True)
        await self._find_backends(baseline=True)
        for group in self.groups:
            group.baseline()

    async def _find_backends(self, *, baseline: bool) -> None:
        with contextlib.suppress(OSError, asyncpg.PostgresError):
            pids = await backend_pids(self.dsn, self.database)
            local = await asyncio.to_thread(lambda: [p for p in pids if is_named(p, "postgres")])
            for pid in local:
                self.postgres.add(pid, baseline=baseline)

    async def sample(self) -> None:
        await self._find_backends(baseline=False)
        await asyncio.to_thread(self._sample_all)

    def _sample_all(self) -> None:
        for group in self.groups:
            group.sample()

    def mark(self, label: str) -> None:
        """Note what each group holds now, under ``label`` (once)."""
        if label not in self.marks:
            self.marks[label] = {g.name: g.rss_now_kb() for g in self.groups}

    async def run(self, progress: Callable[[], int] | None = None, tenth: int = 0) -> None:
        """Sample until cancelled; once ``progress()`` reaches ``tenth``, mark memory."""
        while True:
            await asyncio.sleep(SAMPLE_EVERY)
            await self.sample()
            if progress is not None and tenth and progress() >= tenth:
                await asyncio.to_thread(self.mark, MARK_TENTH)

    def figures(self) -> list[dict[str, object]]:
        return [
            {
                "name": g.name,
                "processes": len(g.pids),
                "peak_rss_kb": g.peak_rss_kb,
                "peak_source": "VmRSS sampled during the run" if g.sampled_rss else "VmHWM",
                "cpu_s": g.cpu_s,
                "rss_kb_at": {label: marks.get(g.name) for label, marks in self.marks.items()},
            }
            for g in self.groups
        ]
