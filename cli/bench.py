"""`smsbroker bench`: the whole pipeline on this machine against the simulated carrier."""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from typing import Any

from bench.options import BenchOptions
from bench.report import BenchResult, render_text
from broker.errors import BrokerError, InputError
from broker.loop import loop_factory
from smsc_sim.config import parse_delay

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_ERROR, EXIT_INTERRUPTED = 0, 1, 2, 3, 130


def _delay(text: str) -> tuple[float, float]:
    try:
        return parse_delay(text)
    except InputError as exc:
        raise argparse.ArgumentTypeError(exc.message) from None


def register(subparsers: Any) -> None:
    p: argparse.ArgumentParser = subparsers.add_parser(
        "bench",
        help="measure the whole pipeline on this machine with the simulated carrier",
        description=(
            "Send N messages through the HTTP API at a given concurrency (or at a fixed request "
            "rate) to a gateway started "
            "for the run (api, worker and smsc-sim processes, a fresh database and queue "
            "prefix), receive their status webhooks, and print the accept rate, the "
            "end-to-end rate, latency percentiles, each process's peak memory and CPU, and "
            "whether anything was lost. Exit code 1 if anything was lost or the books do not "
            "balance. Uses DATABASE_URL (its server; the database named there is not touched) "
            "and AMQP_URL."
        ),
    )
    add = p.add_argument
    add("-n", "--messages", type=int, default=10_000, help="messages to send (default 10000)")
    add(
        "-c",
        "--concurrency",
        type=int,
        default=50,
        help="requests in flight; with --rate, the most in flight (default 50)",
    )
    add(
        "--rate",
        type=float,
        default=None,
        metavar="RPS",
        help=(
            "open loop: start RPS requests per second (at most 100000) on a fixed schedule, "
            "request i at start + i/RPS, with at most -c in flight; accept and end-to-end "
            "latency are measured from each request's scheduled time, so a stall or a request "
            "the -c cap holds back counts (default: closed loop, -c requests always in flight, "
            "latency measured from when each went out)"
        ),
    )
    add(
        "--recipients-per-request",
        type=int,
        default=1,
        metavar="R",
        help="recipients per request; more than 1 sends batches (default 1)",
    )
    add("--body", default=BenchOptions.body, help="the message text")
    add("--api-procs", type=int, default=1, help="API processes, each on its own port")
    add("--worker-procs", type=int, default=1, help="worker processes (each runs every role)")
    add(
        "--split-roles",
        action="store_true",
        help="one process per worker role (times --worker-procs)",
    )
    add(
        "--in-process",
        action="store_true",
        help="run the gateway inside the bench's own event loop instead",
    )
    add(
        "--receipt-delay",
        type=_delay,
        default=(0.01, 0.05),
        metavar="S[-S]",
        help="the simulated carrier's receipt delay (default 0.01-0.05)",
    )
    add("--timeout", type=float, default=600.0, help="seconds for the load and its webhooks")
    add("--keep", action="store_true", help="keep the database, queues and logs of the run")
    add("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=cmd_bench)  # fmt: skip


def options_from_args(args: argparse.Namespace) -> BenchOptions:
    return BenchOptions(
        messages=args.messages,
        concurrency=args.concurrency,
        recipients_per_request=args.recipients_per_request,
        body=args.body,
        api_procs=args.api_procs,
        worker_procs=args.worker_procs,
        split_roles=args.split_roles,
        in_process=args.in_process,
        receipt_delay=args.receipt_delay,
        timeout=args.timeout,
        keep=args.keep,
        rate=args.rate,
    )


async def _until_signal(opts: BenchOptions) -> BenchResult:
    """SIGTERM cancels the run like Ctrl-C does, so that its cleanup still happens."""
    from bench.run import run_bench

    task = asyncio.current_task()
    assert task is not None
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, task.cancel)
    try:
        return await run_bench(opts)
    finally:
        loop.remove_signal_handler(signal.SIGTERM)


def cmd_bench(args: argparse.Namespace) -> int:
    try:
        opts = options_from_args(args)
    except InputError as exc:
        print(f"smsbroker bench: error: {exc.message}", file=sys.stderr)
        return EXIT_USAGE
    try:
        with asyncio.Runner(loop_factory=loop_factory()) as runner:
            result: BenchResult = runner.run(_until_signal(opts))
    except BrokerError as exc:
        print(f"smsbroker bench: error: {exc.message}", file=sys.stderr)
        return EXIT_ERROR
    except (KeyboardInterrupt, asyncio.CancelledError):
        print("smsbroker bench: interrupted; the run's processes were stopped", file=sys.stderr)
        return EXIT_INTERRUPTED
    print(result.to_json() if args.json else render_text(result), flush=True)
    return EXIT_OK if result.ok else EXIT_FAILED
