"""`smsbroker whatsapp-sim`: run the fake WhatsApp Cloud API until SIGINT or SIGTERM."""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from typing import TYPE_CHECKING, Any

from broker.loop import loop_factory

if TYPE_CHECKING:
    from whatsapp_sim import WhatsAppSimConfig

EXIT_OK = 0


def _refusal(text: str) -> tuple[str, int]:
    suffix, _, code = text.partition("=")
    if not suffix.isdigit() or not code.isdigit():
        raise argparse.ArgumentTypeError(f"{text!r} is not SUFFIX=CODE (digits both)")
    return suffix, int(code)


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "whatsapp-sim",
        help="run the fake WhatsApp Business Cloud API",
        description=(
            "Run a fake WhatsApp Cloud API: POST /VERSION/PHONE_NUMBER_ID/messages takes text"
            " messages (Bearer --token) and answers wamids, then posts signed status webhooks"
            " (sent, delivered, read) to --callback; POST /control/inbound {from, text} posts"
            " an inbound message. Add it as a connector with smsbroker connector add NAME"
            " --kind whatsapp --url http://HOST:PORT/v21.0 --phone-number-id ID --token T"
            " --app-secret S --verify-token V, and --callback"
            " http://API/webhooks/whatsapp/NAME."
        ),
    )
    add = parser.add_argument
    add("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    add("--port", type=int, default=8090, help="HTTP port, 0 for any (default 8090)")
    add("--callback", help="the gateway's webhook URL for this connector")
    add("--app-secret", required=True, help="signs the webhooks (X-Hub-Signature-256)")
    add("--token", required=True, help="the access token senders must present")
    add("--phone-number-id", default="100000000000001")
    add("--display-number", default="15550000001", help="the number inbound messages go to")
    add("--status-delay", type=float, default=0.5, help="seconds between statuses (0.5)")
    add(
        "--refuse",
        type=_refusal,
        action="append",
        default=[],
        metavar="SUFFIX=CODE",
        help="recipients ending in SUFFIX are refused (HTTP 400) with this error code",
    )
    add(
        "--fail",
        action="append",
        default=[],
        metavar="SUFFIX",
        help="recipients ending in SUFFIX get a failed status instead of delivered",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    # Imported here: every command's parser is built at start-up, and an install that
    # predates the whatsapp_sim package must still run the others.
    from whatsapp_sim import WhatsAppSimConfig

    config = WhatsAppSimConfig(
        host=args.host,
        port=args.port,
        token=args.token,
        app_secret=args.app_secret,
        callback_url=args.callback,
        phone_number_id=args.phone_number_id,
        display_number=args.display_number,
        status_delay=args.status_delay,
        refuse=dict(args.refuse),
        fail_after=tuple(args.fail),
    )
    try:
        with asyncio.Runner(loop_factory=loop_factory()) as runner:
            return runner.run(serve(config))
    except OSError as exc:
        print(f"smsbroker whatsapp-sim: error: cannot listen: {exc}", file=sys.stderr)
        return 1


async def serve(config: WhatsAppSimConfig) -> int:
    from whatsapp_sim import WhatsAppSimulator

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    simulator = WhatsAppSimulator(config)
    await simulator.start()
    try:
        await stop.wait()
    finally:
        await simulator.stop()
    return EXIT_OK
