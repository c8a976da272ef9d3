"""`smsbroker smsc-sim`: run the simulated carrier until SIGINT or SIGTERM."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import structlog

from broker.errors import InputError
from broker.loop import loop_factory
from smsc_sim.config import (
    MESSAGE_ID_FORMATS,
    SimConfig,
    parse_account,
    parse_delay,
    parse_rule,
    parse_status,
)
from smsc_sim.control import ControlServer
from smsc_sim.outcomes import outcome_named, parse_outcomes
from smsc_sim.server import SmscSimulator

log = structlog.get_logger(__name__)

EXIT_OK, EXIT_USAGE = 0, 2
T = TypeVar("T")


def _checked(parse: Callable[[str], T]) -> Callable[[str], T]:
    """An argparse type from a parser raising InputError (argparse then exits 2 with the reason)."""

    def convert(text: str) -> T:
        try:
            return parse(text)
        except InputError as exc:
            raise argparse.ArgumentTypeError(exc.message) from None

    return convert


def _port(text: str) -> int:
    if not text.isdigit() or not 0 <= int(text) <= 65535:
        raise InputError(f"{text!r} is not a port number 0..65535")
    return int(text)


def _outcome_rule(text: str) -> tuple[str, str]:
    suffix, name = parse_rule(text)
    return suffix, outcome_named(name, field="outcome_rules").stat


def _status_rule(text: str) -> tuple[str, int]:
    suffix, status = parse_rule(text)
    return suffix, parse_status(status)


def _accounts(text: str) -> list[tuple[str, str]]:
    return [parse_account(item.strip()) for item in text.split(",") if item.strip()]


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "smsc-sim",
        help="run the simulated carrier (an SMPP 3.4 SMSC)",
        description=(
            "Run a simulated carrier: an SMPP 3.4 server that accepts binds, answers submit_sm, "
            "sends delivery receipts after a delay with a mix of outcomes, and (with "
            "--control-port) takes inbound messages and faults over HTTP."
        ),
        epilog=(
            "Examples: --account smsbroker:secret --account test:pw; "
            "--receipt-delay 0.1-0.5; --outcomes DELIVRD=0.9,UNDELIV=0.1; "
            "--outcome-rule 0000=UNDELIV (destinations ending in 0000); "
            "--submit-status-rule 13=0x0B."
        ),
    )
    add = parser.add_argument
    add("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    add("--port", type=_checked(_port), default=2775, help="SMPP port, 0 for any (default 2775)")
    add("--system-id", help="system_id of the single account (with --password)")
    add("--password", help="password of the --system-id account")
    add(
        "--account",
        type=_checked(_accounts),
        action="append",
        default=[],
        metavar="ID:PW[,..]",
        help="an account as SYSTEM_ID:PASSWORD; repeat or comma-separate for several",
    )
    add(
        "--receipt-delay",
        type=_checked(parse_delay),
        default=(0.05, 0.2),
        metavar="S[-S]",
        help="seconds from submit to receipt, fixed or MIN-MAX (default 0.05-0.2)",
    )
    add(
        "--outcomes",
        type=_checked(parse_outcomes),
        default={"DELIVRD": 1.0},
        metavar="MIX",
        help="receipt outcome weights, e.g. DELIVRD=0.9,UNDELIV=0.1 (default DELIVRD)",
    )
    add(
        "--outcome-rule",
        type=_checked(_outcome_rule),
        action="append",
        default=[],
        metavar="SUFFIX=STAT",
        help="destinations ending in SUFFIX always get STAT",
    )
    add(
        "--submit-status-rule",
        type=_checked(_status_rule),
        action="append",
        default=[],
        metavar="SUFFIX=STATUS",
        help="submit_sm_resp status for destinations ending in SUFFIX",
    )
    add(
        "--message-id-format",
        choices=MESSAGE_ID_FORMATS,
        default="hex",
        help="message ids in submit_sm_resp (default hex)",
    )
    add(
        "--receipt-id-decimal",
        action="store_true",
        help="render the (hex) message id as decimal in receipts",
    )
    add(
        "--no-receipt-tlvs",
        action="store_true",
        help="leave receipted_message_id / message_state out of receipts (text only)",
    )
    add("--receipt-seconds", action="store_true", help="receipt dates as YYMMDDhhmmss")
    add("--seed", type=int, help="seed for outcome draws and delays (reproducible runs)")
    add("--control-port", type=_checked(_port), help="serve the HTTP control API on this port")
    add("--control-host", default="127.0.0.1", help="address of the control API")
    parser.set_defaults(func=run)  # fmt: skip


def config_from_args(args: argparse.Namespace) -> SimConfig:
    accounts = dict(pair for group in args.account for pair in group)
    if (args.system_id is None) != (args.password is None):
        raise InputError("--system-id and --password go together", field="system_id")
    if args.system_id is not None:
        accounts.update((parse_account(f"{args.system_id}:{args.password}"),))
    settings: dict[str, Any] = {}
    if accounts:
        settings["accounts"] = accounts
    return SimConfig(
        host=args.host,
        port=args.port,
        receipt_delay=args.receipt_delay,
        outcomes=args.outcomes,
        outcome_rules=dict(args.outcome_rule),
        submit_status_rules=dict(args.submit_status_rule),
        message_id_format=args.message_id_format,
        receipt_id_decimal=args.receipt_id_decimal,
        receipt_tlvs=not args.no_receipt_tlvs,
        receipt_seconds=args.receipt_seconds,
        seed=args.seed,
        **settings,
    )


def run(args: argparse.Namespace) -> int:
    try:
        config = config_from_args(args)
    except InputError as exc:
        print(f"smsbroker smsc-sim: error: {exc.message}", file=sys.stderr)
        return EXIT_USAGE
    try:
        with asyncio.Runner(loop_factory=loop_factory()) as runner:
            return runner.run(serve(config, args.control_host, args.control_port))
    except OSError as exc:
        print(f"smsbroker smsc-sim: error: cannot listen: {exc}", file=sys.stderr)
        return 1


async def serve(config: SimConfig, control_host: str, control_port: int | None) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    simulator = SmscSimulator(config)
    await simulator.start()
    control: ControlServer | None = None
    try:
        if control_port is not None:
            control = ControlServer(simulator, control_host, control_port)
            await control.start()
            log.info("smsc_sim.control_listening", host=control_host, port=control.port)
        await stop.wait()
        log.info("smsc_sim.shutting_down")
    finally:
        if control is not None:
            with contextlib.suppress(OSError):
                await control.stop()
        await simulator.stop()
    return EXIT_OK
