"""`smsbroker bench-group`: a CSV import and a template send to the whole group, timed."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from typing import Any

from bench.group_send import GroupSendResult, run_group_bench
from broker.errors import BrokerError
from broker.loop import loop_factory
from cli.bench import _delay

EXIT_OK, EXIT_FAILED, EXIT_ERROR = 0, 1, 3


def register(subparsers: Any) -> None:
    p: argparse.ArgumentParser = subparsers.add_parser(
        "bench-group",
        help="time a CSV import of N contacts and a template send to all of them",
        description=(
            "Start a gateway for the run (smsc-sim, worker and api processes, a fresh database "
            "and queue prefix), import N contacts into a group over POST /v1/contacts/import, "
            "send a template to the group with one POST /v1/messages, and poll "
            "GET /v1/batches/{id} until every message is final and its status webhook has "
            "arrived. Prints the import rate, the time the send took to be answered, to be "
            "made into messages, to be final, and to be reported by webhook."
        ),
    )
    p.add_argument("-n", "--members", type=int, default=100_000, help="default 100000")
    p.add_argument(
        "--receipt-delay",
        type=_delay,
        default=(1.0, 1.0),
        help="the simulated carrier's receipt delay in seconds, or MIN-MAX (default 1)",
    )
    p.add_argument("--json", action="store_true", help="print machine-readable JSON")
    p.set_defaults(func=cmd_bench_group)


def render(r: GroupSendResult) -> str:
    delay = "-".join(f"{d:g}" for d in sorted(set(r.receipt_delay_s)))
    lines = [
        f"{r.members:,} contacts imported in {r.import_seconds} s "
        f"({r.import_rows_per_s:,.0f} rows/s): {r.imported}",
        f"send to the group answered in {r.accept_ms} ms",
        f"messages made (expanded) after {r.expanded_seconds} s",
        f"every message final after {r.finish_seconds} s (carrier receipts {delay} s after "
        f"submit): {r.statuses}",
        f"every status webhook delivered after {r.webhooks_seconds} s "
        f"({r.messages_per_s:,.0f} msg/s end to end)",
    ]
    lines += [f"PROBLEM: {p}" for p in r.problems]
    return "\n".join(lines)


def cmd_bench_group(args: argparse.Namespace) -> int:
    if not 1 <= args.members <= 1_000_000:
        print("smsbroker bench-group: error: --members must be 1..1000000", file=sys.stderr)
        return 2

    def progress(text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    try:
        with asyncio.Runner(loop_factory=loop_factory()) as runner:
            result = runner.run(
                run_group_bench(args.members, args.receipt_delay, progress=progress)
            )
    except BrokerError as exc:
        print(f"smsbroker bench-group: error: {exc.message}", file=sys.stderr)
        return EXIT_ERROR
    print(json.dumps(result.as_dict()) if args.json else render(result), flush=True)
    return EXIT_FAILED if result.problems else EXIT_OK
