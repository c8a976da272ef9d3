"""The `smsbroker` command: one argparse tree, one module per command group.

Each module listed in COMMAND_MODULES exposes ``register(subparsers)``; it adds its
sub-parser(s) and sets ``func`` (a callable taking the parsed namespace and returning an
exit code) as the parser default.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

from broker.logs import configure_logging

COMMAND_MODULES: tuple[str, ...] = (
    "cli.admin",
    "cli.connectors",
    "cli.keys",
    "cli.senders",
    "cli.contacts",
    "cli.serve",
    "cli.segment",
    "cli.smsc_sim",
    "cli.whatsapp_sim",
    "cli.bench",
    "cli.bench_search",
    "cli.bench_group",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="smsbroker",
        description="Self-hosted SMS gateway: HTTP API in, SMPP out, receipts and webhooks back.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    configure_logging(os.environ.get("LOG_FORMAT", "console"))
    code: int = args.func(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
