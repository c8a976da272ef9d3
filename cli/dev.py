"""`smsbroker dev`: the whole gateway in one process, wired to the simulated carrier."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import replace
from decimal import Decimal
from typing import Any, TypeVar
from uuid import UUID

import asyncpg

from api.server import start_api
from broker import accounts
from broker.config import Settings
from broker.db_admin import ensure_database
from broker.migrate import migrate
from broker.resources import number
from broker.store import accounts as accounts_db
from broker.store import connectors
from cli.dev_checks import Listener, port_error, preflight
from smsc_sim import SimConfig, SmscSimulator
from workers.runner import WorkerSet

SIM_CONNECTOR = "sim"
SIM_HOST = "127.0.0.1"
SIM_SYSTEM_ID, SIM_PASSWORD = "smsbroker", "secret"
DEMO_NAME = "Demo"
#: The banner's example recipients: one in E.164, one in the demo account's (US) local format.
EXAMPLE_NUMBERS = ("+14155552671", "(415) 555-2672")

T = TypeVar("T")


async def provision(dsn: str, smsc_port: int, credits: Decimal) -> tuple[str, str]:
    """Connector and default route to the simulator, a demo account and a fresh key."""
    conn = await asyncpg.connect(dsn)
    try:
        async with conn.transaction():
            await connectors.insert_or_repoint(
                conn,
                connectors.ConnectorSpec(
                    name=SIM_CONNECTOR,
                    host="127.0.0.1",
                    port=smsc_port,
                    system_id=SIM_SYSTEM_ID,
                    password=SIM_PASSWORD,
                    binds=2,
                    window_size=100,
                ),
            )
            await connectors.add_route_if_absent(conn, "", SIM_CONNECTOR, Decimal(1))
        account_id = await accounts_db.first_named(conn, DEMO_NAME)
        if account_id is None:
            account_id = await accounts.create_account(conn, DEMO_NAME, credits, "US")
        key = await accounts.create_key(conn, account_id, name="dev", rate_limit=100_000)
        return str(account_id), key.secret
    finally:
        await conn.close()


async def start_dev(
    settings: Settings, port: int, smsc_port: int, credits: str
) -> Callable[[], Awaitable[None]]:
    opening = accounts.parse_amount(credits, field="credits", allow_negative=False)
    # A local try-out: webhooks to a receiver on this machine are the point.
    settings = replace(settings, webhook_allow_private=True)
    api = Listener("API", settings.api_host, port, "--port")
    carrier = Listener("simulated carrier", SIM_HOST, smsc_port, "--smsc-port")
    await preflight([api, carrier], settings.database_url, settings.amqp_url)
    await ensure_database(settings.database_url)
    await migrate(settings.database_url)
    async with AsyncExitStack() as started:
        sim = SmscSimulator(
            SimConfig(host=SIM_HOST, port=smsc_port, accounts={SIM_SYSTEM_ID: SIM_PASSWORD})
        )
        await _listening(carrier, sim.start())
        started.push_async_callback(sim.stop)
        account_id, key = await provision(settings.database_url, sim.port, opening)
        books = await demo_books(settings.database_url, account_id)
        workers = WorkerSet(settings)
        started.push_async_callback(workers.stop)
        await workers.start()
        runner = await _listening(api, start_api(settings, settings.api_host, port))
        started.push_async_callback(runner.cleanup)
        print(banner(f"http://{settings.api_host}:{port}", sim.port, books, key), flush=True)
        return started.pop_all().aclose


async def _listening(listener: Listener, starting: Awaitable[T]) -> T:
    """A port taken between the preflight check and now is the same one clear line."""
    try:
        return await starting
    except OSError as exc:
        raise port_error(listener, exc) from exc


async def demo_books(dsn: str, account_id: str) -> dict[str, Any]:
    conn = await asyncpg.connect(dsn)
    try:
        return await accounts.account_books(conn, UUID(account_id))
    finally:
        await conn.close()


def banner(base: str, smsc_port: int, books: dict[str, Any], key: str) -> str:
    """What a newcomer needs to try the gateway; the example numbers are valid in the demo
    account's region (a test checks them with broker.phone.to_e164)."""
    to = json.dumps(list(EXAMPLE_NUMBERS))
    return (
        f"\nsmsbroker dev is running\n"
        f"  API            {base}\n"
        f"  carrier (sim)  {SIM_HOST}:{smsc_port}  system_id={SIM_SYSTEM_ID}\n"
        f"  demo account   {books['id']}\n"
        f"  region         {books['region']} (numbers without a country code are read as"
        f" {books['region']} numbers)\n"
        f"  credits        {number(books['balance'])} (1 credit per SMS part)\n"
        f"  API key        {key}\n\n"
        f"Try:\n"
        f"  curl -s {base}/v1/messages -H 'Authorization: Bearer {key}' \\\n"
        f"       -H 'Content-Type: application/json' \\\n"
        f'       -d \'{{"to": {to}, "body": "Hello from smsbroker"}}\'\n'
        f"  curl -s {base}/v1/balance -H 'Authorization: Bearer {key}'\n"
    )
