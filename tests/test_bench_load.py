"""The bench's load generator against a small real HTTP server standing in for the API: the
closed loop keeps ``concurrency`` requests in flight; at a fixed rate the requests start on
their schedule, and their latency counts from it, so a server that holds them up shows."""

from __future__ import annotations

import argparse
import asyncio
import math
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web
from hypothesis import given
from hypothesis import strategies as st

from bench.load import LATE_START, LoadGenerator, scheduled_at
from bench.options import MAX_RATE, BenchOptions
from bench.report import BenchResult, render_text
from broker.errors import InputError
from cli import bench as bench_cli


@dataclass
class FakeApi:
    """Answers ``POST /v1/messages`` like the API does (202, one id per recipient), after
    ``delay`` seconds, and notes when each request arrived and how many were in flight."""

    delay: float = 0.0
    arrivals: dict[int, float] = field(default_factory=dict)
    in_flight: int = 0
    most_in_flight: int = 0
    url: str = ""
    _runner: web.AppRunner | None = None

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/v1/messages", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        self.url = f"http://127.0.0.1:{self._runner.addresses[0][1]}"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _handle(self, request: web.Request) -> web.Response:
        arrived = time.monotonic()
        to = (await request.json())["to"]
        # bench.load.recipient: the request's index is in the number's last four digits.
        self.arrivals[int(to[-4:])] = arrived
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            if self.delay:
                await asyncio.sleep(self.delay)
        finally:
            self.in_flight -= 1
        return web.json_response({"messages": [{"id": f"m{int(to[-4:])}"}]}, status=202)


@pytest.fixture
async def api() -> AsyncIterator[FakeApi]:
    server = FakeApi()
    await server.start()
    yield server
    await server.stop()


async def run_load(api: FakeApi, **options: Any) -> tuple[LoadGenerator, float]:
    generator = LoadGenerator([api.url], "key", BenchOptions(**options))
    began = time.monotonic()
    await generator.run()
    return generator, time.monotonic() - began


# --- the schedule ------------------------------------------------------------------------------


@given(
    st.floats(0, 1e6, allow_nan=False),
    st.integers(0, 10_000_000),
    st.floats(0.001, MAX_RATE, allow_nan=False),
)
def test_schedule_is_evenly_spaced_and_never_goes_back(
    start: float, index: int, rate: float
) -> None:
    due = scheduled_at(start, index, rate)
    assert math.isclose(due - start, index / rate, rel_tol=1e-9, abs_tol=1e-6)
    assert scheduled_at(start, index + 1, rate) >= due
    assert scheduled_at(start, 0, rate) == start


@given(st.integers(1, int(MAX_RATE)), st.integers(0, 100_000))
def test_schedule_does_not_drift(rate: int, seconds: int) -> None:
    # Computed from the start rather than summed step by step: every whole second is exact.
    assert scheduled_at(0.0, seconds * rate, float(rate)) == seconds


# --- open loop against a real server --------------------------------------------------------------


async def test_requests_start_on_the_schedule_not_as_fast_as_possible(api: FakeApi) -> None:
    rate, requests = 400.0, 200
    generator, took = await run_load(api, messages=requests, concurrency=50, rate=rate)
    load = generator.result

    # The schedule spans 199 / 400 s; an instant server answered closed-loop in a fraction of it.
    assert 0.4 <= took <= 1.5
    assert load.statuses[202] == requests and load.accepted == requests
    start = load.first_sent
    assert start is not None
    due = [scheduled_at(start, i, rate) for i in range(requests)]
    # No request went out early (a millisecond for the timer's resolution) ...
    assert sorted(api.arrivals) == list(range(requests))
    early = [i for i, at in api.arrivals.items() if at < due[i] - 0.002]
    assert not early, f"requests {early[:5]} arrived before their time"
    # ... the last one not long after its time, and the messages count from their schedule.
    assert api.arrivals[requests - 1] - due[-1] < 1.0
    assert sorted(load.sent_at.values()) == due
    assert all(latency >= 0 for latency in load.accept_latencies)


async def test_a_slow_server_shows_in_the_latency_when_the_cap_holds_requests_back(
    api: FakeApi,
) -> None:
    # 100 requests/s due, two in flight at most, each answered after 100 ms: 20 answered a second,
    # so request i goes out at about i // 2 * 0.1 s though due at i * 0.01 s.
    api.delay = 0.1
    rate, requests = 100.0, 20
    generator, took = await run_load(api, messages=requests, concurrency=2, rate=rate)
    load = generator.result

    assert load.accepted == requests
    assert api.most_in_flight <= 2, "the concurrency cap was not kept"
    assert took >= 0.9  # ten rounds of 100 ms
    # Requests 2..19 all went out at least 80 ms late (on a busy machine 0 and 1 may be late too).
    assert load.late_starts >= requests - 2
    # The wait behind the cap is in the latency: the last ones took far more than the 100 ms the
    # server spent on each (about 0.1 + 0.04 * i s for request i).
    latencies = sorted(load.accept_latencies)
    assert latencies[0] >= 0.1
    assert latencies[-1] >= 0.6
    assert sum(1 for x in latencies if x >= 0.3) >= 10
    start = load.first_sent
    assert start is not None
    assert sorted(load.sent_at.values()) == [scheduled_at(start, i, rate) for i in range(requests)]


async def test_closed_loop_is_unchanged_latency_from_when_each_went_out(api: FakeApi) -> None:
    api.delay = 0.1
    generator, took = await run_load(api, messages=10, concurrency=2)
    load = generator.result

    assert load.accepted == 10 and api.most_in_flight == 2
    assert took >= 0.45  # five rounds of 100 ms
    # Each request waited only for its own answer, and no schedule means no late starts.
    assert all(0.1 <= latency < 0.4 for latency in load.accept_latencies)
    assert load.late_starts == 0
    sent = sorted(load.sent_at.values())
    assert sent[-1] - sent[0] >= 0.35  # stamped when each went out, not all at the start


# --- options, the command line and the report -----------------------------------------------------


@pytest.mark.parametrize("bad", [0.0, -1.0, MAX_RATE + 1, math.nan, math.inf])
def test_rate_refuses_bad_values(bad: float) -> None:
    with pytest.raises(InputError) as raised:
        BenchOptions(rate=bad)
    assert raised.value.field == "rate"
    assert "requests per second" in raised.value.message


@pytest.mark.parametrize("good", [None, 0.5, 1000.0, MAX_RATE])
def test_rate_accepts_good_values(good: float | None) -> None:
    assert BenchOptions(messages=100, rate=good).rate == good


def test_rate_refuses_a_schedule_longer_than_the_timeout() -> None:
    with pytest.raises(InputError) as raised:
        BenchOptions(messages=1000, rate=10.0, timeout=100.0)
    assert raised.value.field == "rate" and "timeout" in raised.value.message
    # Batches: 1000 messages are 10 requests, one second at 10/s.
    assert BenchOptions(messages=1000, recipients_per_request=100, rate=10.0, timeout=100.0)


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    bench_cli.register(parser.add_subparsers())
    return parser.parse_args(["bench", *argv])


def test_command_line_passes_the_rate() -> None:
    assert bench_cli.options_from_args(_parse(["--rate", "1000", "-c", "200"])).rate == 1000.0
    assert bench_cli.options_from_args(_parse([])).rate is None


def test_command_line_refuses_a_bad_rate_before_starting_anything(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert bench_cli.cmd_bench(_parse(["--rate", "0"])) == bench_cli.EXIT_USAGE
    assert "rate must be in" in capsys.readouterr().err


def _report(rate: float | None, late_starts: int | None) -> BenchResult:
    latency = {"p50": 1.0, "p95": 2.0, "p99": 3.0, "max": 4.0}
    return BenchResult(
        config={
            "messages": 10,
            "concurrency": 2,
            "recipients_per_request": 1,
            "segments": 1,
            "in_process": True,
            "api_procs": 0,
            "worker_procs": 0,
            "rate": rate,
        },
        accept={
            "rate": 10.0,
            "accepted": 10,
            "seconds": 1.0,
            "requests_per_s": 10.0,
            "latency_ms": latency,
            "late_starts": late_starts,
        },
        end_to_end={"rate": 10.0, "completed": 10, "seconds": 1.0, "latency_ms": latency},
        statuses={"delivered": 10},
        processes=[],
        cpu={"ms_per_message": 1.0, "scope": "test"},
        correctness={
            "lost": 0,
            "duplicate_webhooks": 0,
            "messages_in_db": 10,
            "balance": "0",
            "initial_credits": "0",
            "charged": "0",
            "balance_ok": True,
            "ledger_sum": "0",
            "ledger_ok": True,
        },
    )


def test_report_says_the_rate_and_the_late_starts() -> None:
    text = render_text(_report(1000.0, 7))
    assert "1000 requests/s scheduled" in text
    assert f"from schedule; 7 started over {LATE_START * 1000:.0f} ms late" in text
    closed = render_text(_report(None, None))
    assert "requests/s scheduled" not in closed and "from schedule" not in closed
