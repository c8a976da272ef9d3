"""The load: N messages over the HTTP API at a bounded concurrency, on keep-alive connections.

Closed loop by default (each sender keeps one request in flight); with a rate, open loop: request
i is due at start + i / rate and its latency counts from then, so a stalled server shows up in
the latencies instead of slowing the load down (coordinated omission)."""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from bench.options import BenchOptions
from broker.http_client import HttpClient

REQUEST_TIMEOUT = 60.0
# A request that goes out later than this after its scheduled time counts as a late start.
LATE_START = 0.010


def recipient(index: int) -> str:
    """A valid US number; distinct within any request of up to 10,000 recipients."""
    return f"+1650253{index % 10_000:04d}"


def request_payload(index: int, opts: BenchOptions) -> dict[str, Any]:
    """The ``index``-th request: its share of the messages, the last one possibly smaller."""
    first = index * opts.recipients_per_request
    count = min(opts.recipients_per_request, opts.messages - first)
    numbers = [recipient(first + j) for j in range(count)]
    to: str | list[str] = numbers[0] if opts.recipients_per_request == 1 else numbers
    return {"to": to, "body": opts.body}


def scheduled_at(start: float, index: int, rate: float) -> float:
    """When request ``index`` is due at ``rate`` requests per second: computed from the start,
    not added up from the previous one, so that rounding does not drift over a long run."""
    return start + index / rate


@dataclass
class LoadResult:
    sent_at: dict[str, float] = field(default_factory=dict)
    accept_latencies: list[float] = field(default_factory=list)
    statuses: Counter[int] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    first_sent: float | None = None
    last_accepted: float | None = None
    error_samples: list[str] = field(default_factory=list)
    # At a fixed rate: requests that went out more than LATE_START after their scheduled time.
    late_starts: int = 0

    @property
    def accepted(self) -> int:
        return len(self.sent_at)


class LoadGenerator:
    def __init__(self, api_urls: Sequence[str], key: str, opts: BenchOptions) -> None:
        if not api_urls:
            raise ValueError("no API to send to")
        self.urls = [f"{u}/v1/messages" for u in api_urls]
        self.headers = {"authorization": f"Bearer {key}", "content-type": "application/json"}
        self.opts = opts
        self.result = LoadResult()
        self._next = 0

    async def run(self) -> LoadResult:
        """Each of ``concurrency`` senders keeps one request in flight, or, at a rate, waits for
        the next request's scheduled time first; ``concurrency`` then caps the requests in
        flight, so a server that stops answering cannot make the bench open connection after
        connection, and a request the cap holds back goes out late, its wait in its latency.
        The requests go out on broker.http_client's keep-alive connections: the load shares the
        machine with the gateway it measures, and aiohttp's client spent twice the CPU."""
        client = HttpClient(keepalive=60, max_body=16 * 1024 * 1024)
        start = time.monotonic()
        try:
            await asyncio.gather(
                *(self._sender(client, start) for _ in range(self.opts.concurrency))
            )
        finally:
            await client.close()
        return self.result

    async def _sender(self, client: HttpClient, start: float) -> None:
        rate = self.opts.rate
        while self._next < self.opts.requests:
            index = self._next
            self._next += 1
            if rate is None:
                await self._send(client, index, None)
                continue
            due = scheduled_at(start, index, rate)
            wait = due - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            await self._send(client, index, due)

    async def _send(self, client: HttpClient, index: int, due: float | None) -> None:
        """One request; its latency and its messages' ``sent_at`` count from ``due`` when it
        has a scheduled time, else from when it went out."""
        url = self.urls[index % len(self.urls)]
        payload = request_payload(index, self.opts)
        out = self.result
        started = time.monotonic()
        if due is not None:
            if started - due > LATE_START:
                out.late_starts += 1
            started = due
        if out.first_sent is None or started < out.first_sent:
            out.first_sent = started
        body = json.dumps(payload).encode()
        try:
            response = await client.post(url, body, self.headers, timeout=REQUEST_TIMEOUT)
            status = response.status
            answer: Any = json.loads(response.body) if status == 202 else response.body.decode()
        except (TimeoutError, OSError, ValueError) as exc:
            out.errors[type(exc).__name__] += 1
            self._sample(f"{type(exc).__name__}: {exc}")
            return
        done = time.monotonic()
        out.statuses[status] += 1
        if status != 202:
            self._sample(f"HTTP {status}: {str(answer)[:200]}")
            return
        out.accept_latencies.append(done - started)
        out.last_accepted = done
        for message in answer["messages"]:
            out.sent_at[message["id"]] = started

    def _sample(self, text: str) -> None:
        if len(self.result.error_samples) < 5:
            self.result.error_samples.append(text)
