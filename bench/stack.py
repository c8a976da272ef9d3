"""The gateway under test: separate OS processes (the real shape) or one event loop.

Either way the order is the carrier first (provisioning needs its port), then the workers
(they must consume before the API accepts), then the API.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

from bench.children import Child, child_env, free_port, spawn, terminate
from bench.database import SIM_CONNECTOR, SIM_PASSWORD, SIM_SYSTEM_ID
from bench.options import BenchOptions
from bench.rabbit import consumers_at_least
from bench.readiness import http_ready, tcp_listening, wait_until
from broker.config import Settings
from broker.queues import QueueNames

START_TIMEOUT = 60.0
ROLES = ("charge", "expand", "submit", "events", "webhooks")


def consumed_queues(names: QueueNames) -> list[str]:
    """The queue each worker role consumes: all have consumers once the workers are up."""
    return [names.ingest, names.submit(SIM_CONNECTOR), names.events, names.webhooks]


def _fmt_delay(delay: tuple[float, float]) -> str:
    return f"{delay[0]}-{delay[1]}"


@dataclass
class ProcessStack:
    """``smsbroker smsc-sim``, ``worker`` and ``api`` as child processes."""

    settings: Settings
    opts: BenchOptions
    api_urls: list[str] = field(default_factory=list)
    children: list[Child] = field(default_factory=list)
    log_dir: Path | None = None

    def __post_init__(self) -> None:
        self.log_dir = Path(tempfile.mkdtemp(prefix="smsbroker-bench-"))
        self.env = child_env(
            self.settings.database_url, self.settings.amqp_url, self.settings.queue_prefix
        )

    async def _spawn(self, name: str, args: list[str]) -> Child:
        assert self.log_dir is not None
        child = await spawn(name, args, self.env, self.log_dir)
        self.children.append(child)
        return child

    async def start_carrier(self) -> int:
        port = free_port()
        sim = await self._spawn(
            "smsc-sim",
            [
                "smsc-sim",
                "--port",
                str(port),
                "--account",
                f"{SIM_SYSTEM_ID}:{SIM_PASSWORD}",
                "--receipt-delay",
                _fmt_delay(self.opts.receipt_delay),
            ],
        )
        await wait_until("simulated carrier", tcp_listening(port), START_TIMEOUT, [sim])
        return port

    async def start_gateway(self) -> None:
        workers: list[Child] = []
        groups = [[r] for r in ROLES] if self.opts.split_roles else [list(ROLES)]
        for i in range(1, self.opts.worker_procs + 1):
            for roles in groups:
                suffix = f"-{roles[0]}" if self.opts.split_roles else ""
                args = ["worker"] + [a for r in roles for a in ("--role", r)]
                workers.append(await self._spawn(f"worker-{i}{suffix}", args))
        queues = consumed_queues(QueueNames(self.settings.queue_prefix))
        ready = consumers_at_least(self.settings.amqp_url, queues, self.opts.worker_procs)
        await wait_until("workers", ready, START_TIMEOUT, workers)
        apis = []
        for i in range(1, self.opts.api_procs + 1):
            port = free_port()
            apis.append(await self._spawn(f"api-{i}", ["api", "--port", str(port)]))
            self.api_urls.append(f"http://127.0.0.1:{port}")
        async with aiohttp.ClientSession() as session:
            for url, child in zip(self.api_urls, apis, strict=True):
                probe = http_ready(f"{url}/readyz", session)
                await wait_until(f"API {url}", probe, START_TIMEOUT, [child])

    def processes(self) -> list[tuple[str, int]]:
        """API, workers, carrier: the order a message goes through them."""
        rank = {"api": 0, "worker": 1, "smsc-sim": 2}
        ordered = sorted(self.children, key=lambda c: rank.get(c.name.split("-")[0], 2))
        return [(c.name, c.pid) for c in ordered]

    def failures(self) -> list[str]:
        return [c.describe_exit() for c in self.children if c.exited]

    async def stop(self) -> None:
        order = [
            [c for c in self.children if c.name.startswith("api")],
            [c for c in self.children if c.name.startswith("worker")],
            [c for c in self.children if c.name == "smsc-sim"],
        ]
        try:
            for group in order:
                await terminate(group)
        finally:
            await terminate(self.children)


@dataclass
class InProcessStack:
    """Everything in the bench's own event loop: quick, but not the shape that ships."""

    settings: Settings
    opts: BenchOptions
    api_urls: list[str] = field(default_factory=list)
    log_dir: Path | None = None

    def __post_init__(self) -> None:
        from smsc_sim import SmscSimulator
        from workers.runner import WorkerSet

        self._sim: SmscSimulator | None = None
        self._workers: WorkerSet | None = None
        self._runner: aiohttp.web.AppRunner | None = None

    async def start_carrier(self) -> int:
        from smsc_sim import SimConfig, SmscSimulator

        config = SimConfig(
            port=0,
            accounts={SIM_SYSTEM_ID: SIM_PASSWORD},
            receipt_delay=self.opts.receipt_delay,
        )
        self._sim = SmscSimulator(config)
        await self._sim.start()
        return self._sim.port

    async def start_gateway(self) -> None:
        from api.server import start_api
        from workers.runner import WorkerSet

        self._workers = WorkerSet(self.settings)
        await self._workers.start()
        self._runner = await start_api(self.settings, "127.0.0.1", 0)
        self.api_urls.append(f"http://127.0.0.1:{self._runner.addresses[0][1]}")

    def processes(self) -> list[tuple[str, int]]:
        return []

    def failures(self) -> list[str]:
        return []

    async def stop(self) -> None:
        try:
            if self._runner is not None:
                await self._runner.cleanup()
            if self._workers is not None:
                await self._workers.stop()
        finally:
            if self._sim is not None:
                await self._sim.stop()


BenchStack = ProcessStack | InProcessStack


def make_stack(settings: Settings, opts: BenchOptions) -> BenchStack:
    if opts.in_process:
        return InProcessStack(settings, opts)
    return ProcessStack(settings, opts)
