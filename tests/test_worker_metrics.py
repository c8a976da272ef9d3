"""Operator metrics of a worker process: its /metrics, scraped while messages go through a
simulated carrier, moves by exactly what happened (submit_sm by status, credits, receipts,
webhooks, dead letters); the `worker --metrics-port` command serves it; and the monitoring
profile of compose.yaml, Prometheus and the Grafana dashboard are wired to those names."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from broker import accounts
from broker.config import Settings
from broker.queue_messages import CarrierEvents, ReceiptEvent
from cli.main import build_parser
from smsc_sim import SmscSimulator
from tests.fault_slice import SMSBROKER
from tests.harness import Customer, WebhookReceiver, add_connector, new_customer, start_sim
from workers.runner import WorkerSet

ROOT = Path(__file__).resolve().parent.parent
BINDS = 2
OK = "0x00000000"

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse(text: str) -> Samples:
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    """One sample's value; 0 when it is not exported (yet)."""
    return samples.get((name, frozenset(labels.items())), 0.0)


def total(samples: Samples, name: str, **labels: str) -> float:
    """The sum over every sample of ``name`` carrying at least ``labels``."""
    want = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and want <= ls)


@dataclass
class Stack:
    api: str
    http: aiohttp.ClientSession
    pool: asyncpg.Pool
    sim: SmscSimulator
    receiver: WebhookReceiver
    workers: WorkerSet
    connector: str

    @property
    def metrics_url(self) -> str:
        assert self.workers.metrics is not None
        return f"http://127.0.0.1:{self.workers.metrics.port}/metrics"

    async def scrape(self) -> Samples:
        async with self.http.get(self.metrics_url) as resp:
            assert resp.status == 200
            assert resp.content_type == "text/plain"
            return parse(await resp.text())

    async def until(
        self, check: Callable[[Samples], bool], what: str, timeout: float = 20.0
    ) -> Samples:
        async with asyncio.timeout(timeout):
            while True:
                samples = await self.scrape()
                if check(samples):
                    return samples
                await asyncio.sleep(0.1)
        raise AssertionError(what)  # pragma: no cover - the timeout raises first

    async def customer(self, credits: int = 50) -> Customer:
        return await new_customer(self.pool, self.http, self.api, self.receiver, credits=credits)

    async def send(self, who: Customer, to: str, body: str) -> dict[str, Any]:
        async with self.http.post(
            f"{self.api}/v1/messages", json={"to": to, "body": body}, headers=who.headers
        ) as resp:
            answer: dict[str, Any] = await resp.json()
            assert resp.status == 202, answer
            return answer

    async def final(self, who: Customer, message_id: str) -> dict[str, Any]:
        [hit] = await self.receiver.wait_for(
            lambda r: (
                r.path == who.path
                and r.json["type"] == "message.status"
                and r.json["data"]["id"] == message_id
                and r.json["data"]["status"] in ("delivered", "undelivered", "failed")
            )
        )
        data: dict[str, Any] = hit.json["data"]
        return data


@pytest.fixture(scope="module")
async def stack(settings: Settings, pool: asyncpg.Pool) -> AsyncIterator[Stack]:
    from api.server import start_api

    sim = await start_sim()
    name = f"metrics-{uuid.uuid4().hex[:6]}"
    await add_connector(pool, name, sim.port, binds=BINDS)
    async with pool.acquire() as conn:
        await accounts.add_route(conn, "", name, Decimal(1))
    receiver = WebhookReceiver()
    await receiver.start()
    workers = WorkerSet(settings, metrics_port=0)
    await workers.start()
    runner = await start_api(settings, "127.0.0.1", 0)
    http = aiohttp.ClientSession()
    try:
        yield Stack(
            f"http://127.0.0.1:{runner.addresses[0][1]}",
            http,
            pool,
            sim,
            receiver,
            workers,
            name,
        )
    finally:
        await http.close()
        await runner.cleanup()
        await workers.stop()
        await receiver.stop()
        await sim.stop()


async def test_binds_and_window_of_each_connector(stack: Stack) -> None:
    name = stack.connector
    samples = await stack.until(
        lambda s: total(s, "smsbroker_smpp_binds_up", connector=name) == BINDS,
        "every configured bind up",
    )
    assert value(samples, "smsbroker_smpp_binds_up", connector=name, mode="trx") == BINDS
    assert value(samples, "smsbroker_smpp_window_size", connector=name) == BINDS * 50
    assert ("smsbroker_smpp_window_in_use", frozenset({("connector", name)})) in samples


async def test_counters_move_by_what_was_sent(stack: Stack) -> None:
    name = stack.connector
    await stack.until(
        lambda s: total(s, "smsbroker_smpp_binds_up", connector=name) == BINDS, "binds up"
    )
    who = await stack.customer()
    before = await stack.scrape()
    posts_before = len(stack.receiver.received)

    sent = [
        await stack.send(who, "+16502531234", "Hello there"),
        await stack.send(who, "+16502531235", "Long text " + "x" * 170),  # two parts
        await stack.send(who, "+16502531236", "Third"),
    ]
    refused = await stack.send(who, "+14155550013", "The carrier refuses this one (0x45)")
    delivered = [m["messages"][0] for m in sent]
    for msg in delivered:
        assert (await stack.final(who, msg["id"]))["status"] == "delivered"
    failed = await stack.final(who, refused["messages"][0]["id"])
    assert failed["status"] == "failed"
    parts = sum(m["segments"] for m in delivered)
    assert parts == 4
    cost = sum(Decimal(str(m["estimated_cost"])) for m in [*sent, refused])
    assert cost == 5

    def moved(s: Samples, metric: str, **labels: str) -> float:
        return value(s, metric, **labels) - value(before, metric, **labels)

    # Every final webhook the receiver took was counted as delivered.
    after = await stack.until(
        lambda s: (
            moved(s, "smsbroker_webhook_attempts_total", outcome="delivered")
            == len(stack.receiver.received) - posts_before
            and moved(s, "smsbroker_credits_refunded_total") == 1
        ),
        "webhook attempts and the refund counted",
    )
    assert moved(after, "smsbroker_smpp_submit_sm_total", connector=name, command_status=OK) == 4
    assert (
        moved(after, "smsbroker_smpp_submit_sm_total", connector=name, command_status="0x00000045")
        == 1
    )
    assert moved(after, "smsbroker_smpp_parts_submitted_total", connector=name) == parts + 1
    assert moved(after, "smsbroker_credits_charged_total") == float(cost)
    assert moved(after, "smsbroker_credits_refunded_total") == 1
    assert moved(after, "smsbroker_receipt_latency_seconds_count", connector=name) == parts
    latency = moved(after, "smsbroker_receipt_latency_seconds_sum", connector=name)
    assert 0 < latency < parts * 10
    assert moved(after, "smsbroker_webhook_attempts_total", outcome="delivered") >= 4
    assert moved(after, "smsbroker_webhook_attempt_seconds_count", outcome="delivered") >= 4
    assert moved(after, "smsbroker_webhook_attempts_total", outcome="given_up") == 0
    assert moved(after, "smsbroker_smpp_submit_unanswered_total", connector=name) == 0


async def test_queue_depths_sampled(stack: Stack) -> None:
    assert stack.workers.metrics is not None
    await stack.workers.metrics.sample()
    samples = await stack.scrape()
    prefix = stack.workers.settings.queue_prefix
    for queue in ("ingest", "events", "webhooks", "dead", f"submit.{stack.connector}"):
        key = ("smsbroker_queue_messages", frozenset({("queue", f"{prefix}.{queue}")}))
        assert key in samples, queue
    consumers = value(
        samples, "smsbroker_queue_consumers", queue=f"{prefix}.submit.{stack.connector}"
    )
    assert consumers >= 1


async def test_unmatched_receipt_parked_and_pending_sampled(stack: Stack) -> None:
    before = await stack.scrape()
    amqp = stack.workers.amqp
    unknown = ReceiptEvent(
        connector=stack.connector, carrier_id=f"nope-{uuid.uuid4().hex[:8]}", state="DELIVRD"
    )
    await amqp.publish(amqp.names.events, CarrierEvents(events=[unknown]))
    after = await stack.until(
        lambda s: (
            value(s, "smsbroker_receipts_parked_total")
            == value(before, "smsbroker_receipts_parked_total") + 1
        ),
        "the receipt parked",
    )
    assert after
    assert stack.workers.metrics is not None
    await stack.workers.metrics.sample()
    samples = await stack.scrape()
    assert value(samples, "smsbroker_receipts_pending") >= 1


async def test_dead_letter_counted_by_source(stack: Stack) -> None:
    before = await stack.scrape()
    amqp = stack.workers.amqp
    await amqp.publish(amqp.names.events, b"this is not a queue message")
    await stack.until(
        lambda s: (
            value(s, "smsbroker_dead_lettered_total", source="events")
            == value(before, "smsbroker_dead_lettered_total", source="events") + 1
        ),
        "the dead letter counted",
    )


# --- the command -------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def worker_env(settings: Settings, **extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "DATABASE_URL": settings.database_url,
        "AMQP_URL": settings.amqp_url,
        "QUEUE_PREFIX": settings.queue_prefix,
        "WEBHOOK_RETRY_DELAYS": ",".join(str(d) for d in settings.webhook_retry_delays),
        **extra,
    }


async def scrape_when_up(url: str, proc: asyncio.subprocess.Process) -> Samples:
    async with aiohttp.ClientSession() as http, asyncio.timeout(30):
        while True:
            assert proc.returncode is None, "the worker exited"
            try:
                async with http.get(url) as resp:
                    if resp.status == 200:
                        return parse(await resp.text())
            except aiohttp.ClientConnectionError:
                pass
            await asyncio.sleep(0.2)


@pytest.mark.parametrize("via", ["option", "env"])
async def test_worker_command_serves_metrics(settings: Settings, via: str, tmp_path: Path) -> None:
    port = free_port()
    log_path = tmp_path / "worker.log"
    args = [str(SMSBROKER), "worker", "--role", "events", "--role", "webhooks"]
    env = worker_env(settings)
    if via == "option":
        args += ["--metrics-port", str(port)]
    else:
        env["METRICS_PORT"] = str(port)
    with log_path.open("wb") as log_file:
        proc = await asyncio.create_subprocess_exec(
            *args, env=env, stdin=asyncio.subprocess.DEVNULL, stdout=log_file, stderr=log_file
        )
    try:
        samples = await scrape_when_up(f"http://127.0.0.1:{port}/metrics", proc)
        queue = f"{settings.queue_prefix}.events"
        assert ("smsbroker_queue_messages", frozenset({("queue", queue)})) in samples
        assert ("smsbroker_receipts_pending", frozenset()) in samples
    finally:
        if proc.returncode is None:
            proc.terminate()
        await asyncio.wait_for(proc.wait(), 30)
    assert proc.returncode == 0, log_path.read_text()


async def test_worker_metrics_port_taken_is_one_clear_line(settings: Settings) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = await asyncio.create_subprocess_exec(
            str(SMSBROKER),
            "worker",
            "--role",
            "events",
            "--metrics-port",
            str(port),
            env=worker_env(settings),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        _, stderr = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode != 0
    text = stderr.decode()
    assert f"metrics port 127.0.0.1:{port} is already in use" in text, text
    assert "--metrics-port or METRICS_PORT" in text
    assert "Traceback" not in text


def test_metrics_off_unless_asked() -> None:
    from cli.serve import metrics_listener

    args = build_parser().parse_args(["worker"])
    assert metrics_listener(args, {}) == ("127.0.0.1", 0)
    assert metrics_listener(args, {"METRICS_PORT": "9100", "METRICS_HOST": "0.0.0.0"}) == (
        "0.0.0.0",
        9100,
    )
    args = build_parser().parse_args(["worker", "--metrics-port", "9200"])
    assert metrics_listener(args, {"METRICS_PORT": "9100"}) == ("127.0.0.1", 9200)


# --- compose, Prometheus and Grafana -----------------------------------------------------

#: Every metric family the dashboard must show.
FAMILIES = (
    "smsbroker_smpp_binds_up",
    "smsbroker_smpp_window_in_use",
    "smsbroker_smpp_submit_sm_total",
    "smsbroker_smpp_parts_submitted_total",
    "smsbroker_receipt_latency_seconds_bucket",
    "smsbroker_receipts_parked_total",
    "smsbroker_receipts_pending",
    "smsbroker_queue_messages",
    "smsbroker_webhook_attempts_total",
    "smsbroker_webhook_attempt_seconds_bucket",
    "smsbroker_dead_lettered_total",
    "smsbroker_credits_charged_total",
    "smsbroker_credits_refunded_total",
)


def test_compose_monitoring_profile() -> None:
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text())
    services = compose["services"]
    worker = services["worker"]["command"]
    assert worker[:2] == ["smsbroker", "worker"]
    build_parser().parse_args(worker[1:])
    assert worker[worker.index("--metrics-port") + 1] == "9100"
    assert worker[worker.index("--metrics-host") + 1] == "0.0.0.0"
    for name, image in (("prometheus", "prom/prometheus"), ("grafana", "grafana/grafana")):
        service = services[name]
        assert service["profiles"] == ["monitoring"], name
        assert service["image"].startswith(image), name
        for volume in service["volumes"]:
            source = volume.split(":")[0]
            if source.startswith("./"):
                assert (ROOT / source).exists(), volume


def test_prometheus_scrapes_api_and_worker() -> None:
    config = yaml.safe_load((ROOT / "deploy/prometheus.yml").read_text())
    targets = {
        (job["metrics_path"], f"{name}:{sd['port']}")
        for job in config["scrape_configs"]
        for sd in job["dns_sd_configs"]
        for name in sd["names"]
    }
    assert targets == {("/metrics", "api:8080"), ("/metrics", "worker:9100")}


def test_grafana_dashboard_shows_every_family() -> None:
    dashboard = json.loads((ROOT / "deploy/grafana/smsbroker.json").read_text())
    exprs = " ".join(
        target["expr"] for panel in dashboard["panels"] for target in panel.get("targets", [])
    )
    missing = [f for f in FAMILIES if f not in exprs]
    assert not missing, missing
    assert "rate(smsbroker_smpp_submit_sm_total" in exprs
    datasources = yaml.safe_load(
        (ROOT / "deploy/grafana/provisioning/datasources/prometheus.yml").read_text()
    )
    [source] = datasources["datasources"]
    assert source["url"] == "http://prometheus:9090"
    assert all(
        panel.get("datasource", {}).get("uid") == source["uid"]
        for panel in dashboard["panels"]
        if panel.get("type") != "row"
    )
    providers = yaml.safe_load(
        (ROOT / "deploy/grafana/provisioning/dashboards/smsbroker.yml").read_text()
    )
    assert providers["providers"][0]["options"]["path"]
