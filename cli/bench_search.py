"""`smsbroker bench-search`: message search latency on a table of a million messages."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from typing import Any

from bench.search import SearchResult, run_search_bench
from broker.errors import BrokerError
from broker.loop import loop_factory

EXIT_OK, EXIT_ERROR = 0, 3


def register(subparsers: Any) -> None:
    p: argparse.ArgumentParser = subparsers.add_parser(
        "bench-search",
        help="measure GET /v1/messages search latency on a big messages table",
        description=(
            "Create a fresh database, fill it with N messages of one account (and 10%% more "
            "of another) spread over 90 days, start the API on it, and time filtered pages of "
            "GET /v1/messages over HTTP (status, to, client_ref, batch_id, dates; first and "
            "following pages). Prints p50/p95/p99/max per search. Uses DATABASE_URL's server "
            "and AMQP_URL; the database is dropped afterwards."
        ),
    )
    p.add_argument(
        "-n", "--messages", type=int, default=1_000_000, help="messages (default 1000000)"
    )
    p.add_argument("--repeat", type=int, default=50, help="pages timed per search (default 50)")
    p.add_argument("--json", action="store_true", help="print machine-readable JSON")
    p.set_defaults(func=cmd_bench_search)


def render(result: SearchResult) -> str:
    lines = [
        f"{result.messages:,} messages filled in {result.fill_seconds:.1f} s",
        "HTTP: GET /v1/messages answered, as a customer sees it; query: the same first page "
        "read by the API's query function alone (the database's share)",
        f"{'search':<28} {'rows':>5} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'max ms':>8}"
        f" {'query p50':>10} {'query p99':>10}",
    ]
    for label, ms in result.latency_ms.items():
        db = result.query_ms[label]
        lines.append(
            f"{label:<28} {result.rows[label]:>5} {ms['p50']:>8} {ms['p95']:>8} "
            f"{ms['p99']:>8} {ms['max']:>8} {db['p50']:>10} {db['p99']:>10}"
        )
    return "\n".join(lines)


def cmd_bench_search(args: argparse.Namespace) -> int:
    if args.messages < 1000 or args.repeat < 1:
        print("smsbroker bench-search: error: --messages ≥ 1000, --repeat ≥ 1", file=sys.stderr)
        return 2

    def progress(text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    try:
        with asyncio.Runner(loop_factory=loop_factory()) as runner:
            result = runner.run(run_search_bench(args.messages, args.repeat, progress=progress))
    except BrokerError as exc:
        print(f"smsbroker bench-search: error: {exc.message}", file=sys.stderr)
        return EXIT_ERROR
    print(json.dumps(result.as_dict()) if args.json else render(result), flush=True)
    return EXIT_OK
