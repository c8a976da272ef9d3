"""Long-running commands: api, worker, dev. Each runs until SIGINT or SIGTERM."""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import signal
from collections.abc import Awaitable, Callable, Mapping

import structlog

from broker.config import Settings
from broker.errors import BrokerError, InputError
from broker.loop import loop_factory
from cli.common import fail

log = structlog.get_logger(__name__)


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("api", help="serve the customer HTTP API")
    p.add_argument("--host", default=None, help="default: API_HOST or 127.0.0.1")
    p.add_argument("--port", type=int, default=None, help="default: API_PORT or 8080")
    p.set_defaults(func=cmd_api)

    from workers.runner import ROLES

    p = sub.add_parser("worker", help="run worker roles (all by default)")
    p.add_argument(
        "--role",
        action="append",
        choices=ROLES,
        help="run only this role; repeat for several (default: all)",
    )
    p.add_argument(
        "--metrics-port",
        type=int,
        default=None,
        help="serve Prometheus /metrics on this port (default: METRICS_PORT; 0 or unset: off)",
    )
    p.add_argument(
        "--metrics-host",
        default=None,
        help="the address /metrics listens on (default: METRICS_HOST or 127.0.0.1)",
    )
    p.set_defaults(func=cmd_worker)

    p = sub.add_parser(
        "dev",
        help="everything in one process on local services, with the simulated carrier",
        description=(
            "Migrate, start the simulated carrier, the API and every worker in one process, "
            "with a demo account, API key and default route created and printed."
        ),
    )
    p.add_argument("--port", type=int, default=8080, help="API port (default 8080)")
    p.add_argument("--smsc-port", type=int, default=2775, help="simulated carrier port")
    p.add_argument("--credits", default="1000", help="the demo account's opening credits")
    p.set_defaults(func=cmd_dev)


#: Net new container objects before a young collection (CPython's default: 700). A request or a
#: batch makes thousands that die by reference counting within the same loop turn, yet at 700
#: the collector ran ~3,800 young and ~350 middle collections per 100,000 messages in the API,
#: 8.6% of its CPU, and 9% of the worker's (`smsbroker bench -n 100000 -c 200`, timed by a
#: gc callback). At 10,000 the API ran 5 and the worker 166, 0.03 s and 1.9 s against 4.4 s and
#: 5.1 s. What lingers until a collection is at most this many objects' cyclic garbage.
YOUNG_GC_THRESHOLD = 10_000


def young_collections_rarer() -> None:
    """Raise the young generation's threshold, keeping the older generations' ratios."""
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG_GC_THRESHOLD, middle, old)


def run_until_signal(start: Callable[[], Awaitable[Callable[[], Awaitable[None]]]]) -> int:
    """Run ``start`` (which returns its own stop) until SIGINT/SIGTERM."""

    async def main() -> None:
        stop_event = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop_event.set)
        stop = await start()
        # What start-up built (modules, the app, pools) lives as long as the process: out of
        # the collector's sight, a full collection walks only what requests and messages make,
        # and stalls the loop far less (an import of 100,000 contacts: ~55 → ~30 ms).
        gc.collect()
        gc.freeze()
        young_collections_rarer()
        try:
            await stop_event.wait()
        finally:
            log.info("stopping")
            await stop()

    try:
        with asyncio.Runner(loop_factory=loop_factory()) as runner:
            runner.run(main())
    except BrokerError as exc:
        # One line on stderr (a port in use, a service down, a bad setting), never a traceback.
        return fail(exc, as_json=False)
    return 0


def cmd_api(args: argparse.Namespace) -> int:
    async def start() -> Callable[[], Awaitable[None]]:
        from api.server import start_api
        from cli.dev_checks import Listener, port_error

        settings = Settings.from_env()
        host = args.host or settings.api_host
        port = settings.api_port if args.port is None else args.port
        try:
            runner = await start_api(settings, host, port)
        except OSError as exc:
            listener = Listener("API", host, port, "--port or API_PORT", via_make=False)
            raise port_error(listener, exc) from exc
        return runner.cleanup

    return run_until_signal(start)


def metrics_listener(args: argparse.Namespace, env: Mapping[str, str]) -> tuple[str, int]:
    """(host, port) of a worker's /metrics: the options, else METRICS_HOST / METRICS_PORT;
    port 0 means off."""
    host = args.metrics_host or env.get("METRICS_HOST") or "127.0.0.1"
    port = args.metrics_port
    if port is None:
        raw = env.get("METRICS_PORT", "").strip() or "0"
        try:
            port = int(raw)
        except ValueError:
            raise InputError(f"METRICS_PORT must be a port number, not {raw!r}") from None
    if not 0 <= port < 65536:
        raise InputError(f"the metrics port must be 0..65535, not {port}")
    return host, port


def cmd_worker(args: argparse.Namespace) -> int:
    from cli.dev_checks import Listener, port_error
    from workers.metrics_server import MetricsPortError
    from workers.runner import ROLES, WorkerSet

    async def start() -> Callable[[], Awaitable[None]]:
        host, port = metrics_listener(args, os.environ)
        workers = WorkerSet(
            Settings.from_env(),
            tuple(args.role or ROLES),
            metrics_port=port or None,
            metrics_host=host,
        )
        try:
            await workers.start()
        except MetricsPortError as exc:
            await workers.stop()
            listener = Listener("metrics", host, port, "--metrics-port or METRICS_PORT", False)
            raise port_error(listener, exc.error) from exc
        return workers.stop

    return run_until_signal(start)


def cmd_dev(args: argparse.Namespace) -> int:
    from cli.dev import start_dev

    async def start() -> Callable[[], Awaitable[None]]:
        return await start_dev(Settings.from_env(), args.port, args.smsc_port, args.credits)

    return run_until_signal(start)
