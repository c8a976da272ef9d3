"""`smsbroker dev`: the whole gateway in one process, wired to the simulated carrier."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import replace
from decimal import Decimal

import asyncpg

from api.server import start_api
from broker import accounts
from broker.config import Settings
from broker.db_admin import ensure_database
from broker.migrate import migrate
from broker.store import accounts as accounts_db
from broker.store import connectors
from smsc_sim import SimConfig, SmscSimulator
from workers.runner import WorkerSet

SIM_CONNECTOR = "sim"
SIM_SYSTEM_ID, SIM_PASSWORD = "smsbroker", "secret"
DEMO_NAME = "Demo"


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
    await ensure_database(settings.database_url)
    await migrate(settings.database_url)
    sim = SmscSimulator(SimConfig(port=smsc_port, accounts={SIM_SYSTEM_ID: SIM_PASSWORD}))
    await sim.start()
    account_id, key = await provision(settings.database_url, sim.port, opening)
    workers = WorkerSet(settings)
    await workers.start()
    runner = await start_api(settings, settings.api_host, port)
    base = f"http://{settings.api_host}:{port}"
    print(
        f"\nsmsbroker dev is running\n"
        f"  API            {base}\n"
        f"  carrier (sim)  127.0.0.1:{sim.port}  system_id={SIM_SYSTEM_ID}\n"
        f"  demo account   {account_id}\n"
        f"  API key        {key}\n\n"
        f"Try:\n"
        f"  curl -s {base}/v1/messages -H 'Authorization: Bearer {key}' \\\n"
        f"       -H 'Content-Type: application/json' \\\n"
        f'       -d \'{{"to": "+14155552671", "body": "Hello from smsbroker"}}\'\n'
        f"  curl -s {base}/v1/balance -H 'Authorization: Bearer {key}'\n",
        flush=True,
    )

    async def stop() -> None:
        await runner.cleanup()
        await workers.stop()
        await sim.stop()

    return stop
