"""smsbroker bench: its pure parts, a small run in one process, and the command as operators run it.

Only what a run reports and checks is asserted, never how fast it was.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from hypothesis import given
from hypothesis import strategies as st

from bench import BenchOptions, run_bench
from bench.children import free_port
from bench.database import Books, Tenant
from bench.load import LoadResult, recipient, request_payload
from bench.meters import Meters
from bench.procstat import cpu_seconds, parse_stat_cpu, parse_status_field, peak_rss_kb
from bench.receiver import Outcome, WebhookReceiver
from bench.report import render_text
from bench.run import Measured, build_result
from bench.stats import latency_summary, percentile, rate
from broker.config import Settings
from broker.errors import InputError
from broker.phone import parse_recipients

SMSBROKER = str(Path(sys.executable).with_name("smsbroker"))
LATENCY_KEYS = {"p50", "p95", "p99", "max"}


# --- percentiles and rates -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("values", "q", "expected"),
    [
        ([5.0], 50, 5.0),
        ([5.0], 99, 5.0),
        ([1.0, 2.0], 50, 1.0),
        ([1.0, 2.0], 51, 2.0),
        ([1.0, 2.0, 3.0, 4.0], 0, 1.0),
        ([1.0, 2.0, 3.0, 4.0], 25, 1.0),
        ([1.0, 2.0, 3.0, 4.0], 75, 3.0),
        ([1.0, 2.0, 3.0, 4.0], 100, 4.0),
        ([float(i) for i in range(1, 101)], 95, 95.0),
        ([float(i) for i in range(1, 101)], 99, 99.0),
    ],
)
def test_percentile_nearest_rank(values: list[float], q: float, expected: float) -> None:
    assert percentile(values, q) == expected


@pytest.mark.parametrize(("values", "q"), [([], 50), ([1.0], -1), ([1.0], 100.5)])
def test_percentile_refuses(values: list[float], q: float) -> None:
    with pytest.raises(ValueError):
        percentile(values, q)


@given(st.lists(st.floats(0, 1e6), min_size=1), st.floats(0, 100), st.floats(0, 100))
def test_percentile_is_observed_and_monotonic(values: list[float], q1: float, q2: float) -> None:
    ordered = sorted(values)
    low, high = sorted((q1, q2))
    assert percentile(ordered, low) in ordered
    assert percentile(ordered, low) <= percentile(ordered, high)
    assert ordered[0] <= percentile(ordered, low) <= ordered[-1]


@given(st.lists(st.floats(0, 100), min_size=1))
def test_latency_summary_in_ms_and_ordered(seconds: list[float]) -> None:
    summary = latency_summary(seconds)
    assert set(summary) == LATENCY_KEYS
    values = [summary[k] for k in ("p50", "p95", "p99", "max")]
    assert all(v is not None for v in values)
    assert values == sorted(values)  # type: ignore[type-var]
    assert summary["max"] == round(max(seconds) * 1000, 3)


def test_latency_summary_of_nothing() -> None:
    assert latency_summary([]) == dict.fromkeys(LATENCY_KEYS)


@pytest.mark.parametrize(
    ("count", "seconds", "expected"),
    [(100, 2.0, 50.0), (1, 3.0, 0.3), (0, 1.0, None), (5, 0.0, None), (3, -1.0, None)],
)
def test_rate(count: int, seconds: float, expected: float | None) -> None:
    assert rate(count, seconds) == expected


# --- /proc ----------------------------------------------------------------------------------


STATUS_TEXT = "Name:\tpython\nVmPeak:\t  300000 kB\nVmHWM:\t   51234 kB\nVmRSS:\t   40000 kB\n"


@pytest.mark.parametrize(
    ("text", "name", "expected"),
    [
        (STATUS_TEXT, "VmHWM", 51234),
        (STATUS_TEXT, "VmRSS", 40000),
        (STATUS_TEXT, "VmSwap", None),
        ("VmHWM:\n", "VmHWM", None),
        ("VmHWM:\tlots kB\n", "VmHWM", None),
    ],
)
def test_parse_status_field(text: str, name: str, expected: int | None) -> None:
    assert parse_status_field(text, name) == expected


def _stat_line(comm: str, utime: int, stime: int) -> str:
    before = "S 1 2 3 4 5 6 7 8 9 10"  # fields 3..13
    return f"4242 ({comm}) {before} {utime} {stime} 0 0 20 0 1 0"


@pytest.mark.parametrize(
    ("text", "expected_ticks"),
    [
        (_stat_line("python", 150, 50), 200),
        (_stat_line("a) (b c", 7, 3), 10),  # a command name holding ") (" and spaces
        ("4242 (x) S 1", None),
        ("garbage", None),
    ],
)
def test_parse_stat_cpu(text: str, expected_ticks: int | None) -> None:
    got = parse_stat_cpu(text)
    if expected_ticks is None:
        assert got is None
    else:
        assert got == expected_ticks / os.sysconf("SC_CLK_TCK")


def test_own_process_is_readable() -> None:
    peak = peak_rss_kb(os.getpid())
    cpu = cpu_seconds(os.getpid())
    assert peak is not None and peak > 0
    assert cpu is not None and cpu > 0
    assert peak_rss_kb(2**22 + 7) is None  # above pid_max: no such process


# --- options and load shape ------------------------------------------------------------------


@pytest.mark.parametrize(
    "bad",
    [
        {"messages": 0},
        {"concurrency": 0},
        {"recipients_per_request": 1001},
        {"api_procs": 0},
        {"worker_procs": 65},
        {"body": ""},
        {"timeout": 0},
        {"receipt_delay": (0.5, 0.1)},
    ],
)
def test_options_refuse_bad_values(bad: dict[str, Any]) -> None:
    with pytest.raises(InputError):
        BenchOptions(**bad)


@pytest.mark.parametrize(
    ("messages", "per_request", "requests"), [(1, 1, 1), (10, 3, 4), (9, 3, 3), (200, 1000, 1)]
)
def test_requests_cover_every_message(messages: int, per_request: int, requests: int) -> None:
    opts = BenchOptions(messages=messages, recipients_per_request=per_request)
    assert opts.requests == requests
    sizes = []
    for i in range(requests):
        to = request_payload(i, opts)["to"]
        sizes.append(1 if isinstance(to, str) else len(to))
    assert sum(sizes) == messages


@given(st.integers(0, 9_000), st.integers(1, 1000))
def test_recipients_are_valid_and_distinct_within_a_request(first: int, count: int) -> None:
    numbers = [recipient(first + j) for j in range(count)]
    assert len(set(numbers)) == count
    assert parse_recipients(numbers[:3], "US", limit=1000) == numbers[:3]


# --- the result and its checks ----------------------------------------------------------------


def _result_of(accepted: dict[str, float], outcomes: dict[str, Outcome], books: Books) -> Any:
    opts = BenchOptions(messages=len(accepted), in_process=True)
    load = LoadResult(sent_at=accepted, accept_latencies=[0.01] * len(accepted))
    load.first_sent, load.last_accepted = 0.0, 1.0
    load.statuses[202] = len(accepted)
    receiver = WebhookReceiver()
    receiver.outcomes.update(outcomes)
    tenant = Tenant(account_id=None, key="k", credits=Decimal(100))  # type: ignore[arg-type]
    meters = Meters([], "postgresql://unused/none", "none")
    return build_result(opts, 1, Measured(load, receiver, False), meters, tenant, books)


def test_result_counts_a_lost_message_and_wrong_books() -> None:
    accepted = {"a": 0.0, "b": 0.1, "c": 0.2}
    outcomes = {
        "a": Outcome(1.0, "delivered", 1),
        "b": Outcome(1.5, "failed", 1),  # refunded: not charged
    }
    books = Books(Decimal(99), Decimal(98), 3, {"delivered": 1, "failed": 1, "sent": 1})
    result = _result_of(accepted, outcomes, books)
    k = result.correctness
    assert (k["lost"], k["lost_sample"], k["charged"]) == (1, ["c"], 1)
    assert k["balance_ok"] is True and k["ledger_ok"] is False
    assert not result.ok
    assert any("never reached a final status" in p for p in result.problems)
    assert any("sum of the ledger" in p for p in result.problems)
    assert result.statuses == {"delivered": 1, "failed": 1}
    text = render_text(result)
    assert "FAILED" in text
    assert "in the database: delivered 1, failed 1, sent 1" in text


def test_result_of_a_clean_run() -> None:
    accepted = {"a": 0.0, "b": 0.5}
    outcomes = {"a": Outcome(1.0, "delivered", 2), "b": Outcome(2.0, "undelivered", 2)}
    result = _result_of(accepted, outcomes, Books(Decimal(96), Decimal(96), 2))
    assert result.ok, result.problems
    assert result.end_to_end["completed"] == 2
    assert result.end_to_end["seconds"] == 2.0
    assert result.end_to_end["latency_ms"]["max"] == 1500.0
    assert result.correctness["charged"] == 4
    assert "OK: nothing lost" in render_text(result)
    json.loads(result.to_json())


# --- real runs --------------------------------------------------------------------------------


async def _bench_databases(pg_dsn: str) -> set[str]:
    conn = await asyncpg.connect(pg_dsn)
    try:
        rows = await conn.fetch(
            "SELECT datname FROM pg_database WHERE datname LIKE 'smsbroker_bench_%'"
        )
    finally:
        await conn.close()
    return {r["datname"] for r in rows}


def _assert_complete(doc: dict[str, Any], messages: int) -> None:
    assert doc["ok"] is True, doc["problems"]
    assert doc["accept"]["accepted"] == messages
    assert doc["end_to_end"]["completed"] == messages
    assert set(doc["accept"]["latency_ms"]) == LATENCY_KEYS
    assert set(doc["end_to_end"]["latency_ms"]) == LATENCY_KEYS
    assert doc["statuses"] == {"delivered": messages}
    k = doc["correctness"]
    assert k["lost"] == 0 and k["messages_in_db"] == messages
    assert k["balance_ok"] and k["ledger_ok"]
    assert (
        k["balance"]
        == k["ledger_sum"]
        == k["initial_credits"] - messages * doc["config"]["segments"]
    )


async def test_in_process_run_loses_nothing(pg_dsn: str, amqp_url: str) -> None:
    before = await _bench_databases(pg_dsn)
    settings = Settings(database_url=pg_dsn, amqp_url=amqp_url)
    opts = BenchOptions(messages=200, concurrency=10, in_process=True, timeout=120)
    result = await run_bench(opts, settings)
    doc = result.to_dict()
    _assert_complete(doc, 200)
    names = {p["name"] for p in doc["processes"]}
    assert "bench (gateway + load + receiver)" in names
    own = next(p for p in doc["processes"] if p["name"].startswith("bench"))
    assert own["peak_rss_kb"] > 0
    assert await _bench_databases(pg_dsn) == before  # its database was dropped
    assert _queues_of(amqp_url, "bench-") == []  # and its queues deleted (this module's vhost)


def _queues_of(amqp_url: str, prefix: str) -> list[str]:
    vhost = amqp_url.rsplit("/", 1)[1] or "/"
    listed = subprocess.run(
        ["rabbitmqctl", "-q", "list_queues", "-p", vhost, "name"],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout.split()
    return [name for name in listed if name.startswith(prefix)]


async def test_in_process_batches_with_a_short_last_request(pg_dsn: str, amqp_url: str) -> None:
    settings = Settings(database_url=pg_dsn, amqp_url=amqp_url)
    body = "A batch message long enough to need two parts. " * 4
    opts = BenchOptions(
        messages=50, concurrency=3, recipients_per_request=7, body=body, in_process=True
    )
    doc = (await run_bench(opts, settings)).to_dict()
    _assert_complete(doc, 50)
    assert doc["config"]["segments"] == 2
    assert doc["accept"]["http_statuses"] == {"202": 8}


@pytest.fixture
def log_dirs() -> Iterator[list[str]]:
    found: list[str] = []
    yield found
    for path in found:
        shutil.rmtree(path, ignore_errors=True)


def test_command_runs_processes_and_prints_json(pg_dsn: str, amqp_url: str) -> None:
    env = {**os.environ, "DATABASE_URL": pg_dsn, "AMQP_URL": amqp_url}
    args = ["bench", "-n", "200", "-c", "10", "--api-procs", "2", "--json", "--timeout", "120"]
    done = subprocess.run(
        [SMSBROKER, *args], env=env, capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]
    doc = json.loads(done.stdout)
    _assert_complete(doc, 200)
    assert doc["config"]["api_procs"] == 2 and doc["config"]["worker_procs"] == 1
    assert doc["log_dir"] is None
    by_name = {p["name"]: p for p in doc["processes"]}
    for name in ("api-1", "api-2", "worker-1", "smsc-sim"):
        assert by_name[name]["processes"] == 1
        assert by_name[name]["peak_rss_kb"] > 0
        assert by_name[name]["cpu_s"] is not None
        # Memory at the end (and once a tenth was done, if a sample fell before the end).
        at = by_name[name]["rss_kb_at"]
        assert "end" in at and set(at) <= {"a tenth done", "end"}
        assert all(kb > 0 for kb in at.values())
    assert {"rabbitmq (beam.smp)", "postgres backends"} <= set(by_name)
    assert doc["cpu"]["total_s"] >= 0


def test_command_reports_a_part_that_cannot_start(pg_dsn: str, log_dirs: list[str]) -> None:
    dead_amqp = f"amqp://guest:guest@127.0.0.1:{free_port()}/"
    env = {**os.environ, "DATABASE_URL": pg_dsn, "AMQP_URL": dead_amqp}
    before = asyncio.run(_bench_databases(pg_dsn))
    done = subprocess.run(
        [SMSBROKER, "bench", "-n", "10", "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 3, done.stderr[-3000:]
    assert done.stdout == ""
    error = done.stderr.strip().splitlines()[-1]
    assert "worker-1 exited" in error and "logs:" in error
    log_dir = error.rsplit("logs: ", 1)[1].rstrip(")")
    log_dirs.append(log_dir)
    assert Path(log_dir, "worker-1.log").read_text()  # the child's own account of why
    assert asyncio.run(_bench_databases(pg_dsn)) == before


def test_command_refuses_bad_options() -> None:
    done = subprocess.run(
        [SMSBROKER, "bench", "-n", "0"], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 2
    assert "messages must be between 1" in done.stderr


def _children_of(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rpartition(")")[2].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


async def test_sigterm_stops_children_and_drops_the_database(pg_dsn: str, amqp_url: str) -> None:
    before = await _bench_databases(pg_dsn)
    env = {**os.environ, "DATABASE_URL": pg_dsn, "AMQP_URL": amqp_url}
    bench = await asyncio.create_subprocess_exec(
        SMSBROKER,
        "bench",
        "-n",
        "1000000",
        "-c",
        "4",
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    children: list[int] = []
    async with asyncio.timeout(120):
        while len(children) < 3:  # carrier, worker, API: the load is about to start
            assert bench.returncode is None
            await asyncio.sleep(0.2)
            children = _children_of(bench.pid)
    bench.terminate()
    async with asyncio.timeout(120):
        _, stderr = await bench.communicate()
    assert bench.returncode == 130, stderr.decode()[-2000:]
    assert b"interrupted" in stderr
    assert all(not Path(f"/proc/{pid}").exists() for pid in children)
    assert await _bench_databases(pg_dsn) == before


def test_group_bench_imports_sends_and_reports(pg_dsn: str, amqp_url: str) -> None:
    """`smsbroker bench-group` as operators run it: more members than a request may name, so
    the send goes through the expand worker; every member delivered and reported once."""
    env = {**os.environ, "DATABASE_URL": pg_dsn, "AMQP_URL": amqp_url}
    args = ["bench-group", "-n", "1500", "--receipt-delay", "0", "--json"]
    before = asyncio.run(_bench_databases(pg_dsn))
    done = subprocess.run(
        [SMSBROKER, *args], env=env, capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]
    doc = json.loads(done.stdout)
    assert doc["problems"] == []
    assert doc["imported"] == {"created": 1500, "updated": 0, "failed": 0}
    assert doc["statuses"] == {"delivered": 1500}
    assert doc["accept_ms"] > 0 and 0 < doc["expanded_seconds"] <= doc["finish_seconds"]
    assert doc["finish_seconds"] <= doc["webhooks_seconds"]
    assert asyncio.run(_bench_databases(pg_dsn)) == before
