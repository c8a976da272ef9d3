"""The gateway assembled for tests: simulated carrier, workers, API, and a webhook receiver."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, TypeVar

import aiohttp
import asyncpg
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from broker import accounts
from broker.config import Settings
from broker.segmentation import decode_short_message
from broker.smpp.constants import ESM_UDHI
from smsc_sim import SimConfig, SmscSimulator


def verify_standard_webhook(secret: str, headers: Any, body: bytes) -> None:
    """Check a Standard Webhooks signature with hmac directly, not with the gateway's code."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signed = f"{headers['webhook-id']}.{headers['webhook-timestamp']}.".encode() + body
    expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    offered = [s.split(",", 1)[1] for s in headers["webhook-signature"].split() if "," in s]
    assert expected in offered, "webhook signature does not verify"


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class WebhookReceiver:
    """An HTTP server standing in for a customer's webhook endpoint."""

    received: list[Received] = field(default_factory=list)
    fail_paths: dict[str, int] = field(default_factory=dict)
    _runner: web.AppRunner | None = None
    port: int = 0
    _changed: asyncio.Condition = field(default_factory=asyncio.Condition)

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = self._runner.addresses[0][1]

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}/{path.lstrip('/')}"

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        path = request.path
        async with self._changed:
            self.received.append(Received(path, dict(request.headers), body))
            self._changed.notify_all()
        if self.fail_paths.get(path, 0) > 0:
            self.fail_paths[path] -= 1
            return web.Response(status=500)
        return web.Response(status=204)

    async def wait_for(
        self, predicate: Callable[[Received], bool], *, count: int = 1, timeout: float = 20.0
    ) -> list[Received]:
        async def found() -> list[Received]:
            async with self._changed:
                while True:
                    hits = [r for r in self.received if predicate(r)]
                    if len(hits) >= count:
                        return hits
                    await self._changed.wait()

        return await asyncio.wait_for(found(), timeout)

    async def event(
        self, path: str, event_type: str, match: Callable[[dict[str, Any]], bool]
    ) -> Received:
        """The first ``event_type`` webhook delivered to ``path`` whose ``data`` matches."""
        hits = await self.wait_for(
            lambda r: r.path == path and r.json["type"] == event_type and match(r.json["data"])
        )
        return hits[0]


@dataclass
class Customer:
    account_id: uuid.UUID
    key: str
    webhook_secret: str = ""
    path: str = ""

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}


async def add_connector(
    pool: asyncpg.Pool,
    name: str,
    port: int,
    *,
    system_id: str = "smsbroker",
    password: str = "secret",
    **extra: Any,
) -> None:
    async with pool.acquire() as conn:
        values = {
            "name": name,
            "host": "127.0.0.1",
            "port": port,
            "system_id": system_id,
            "password": password,
            "window_size": 50,
            **extra,
        }
        await accounts.add_connector(conn, values)


async def new_customer(
    pool: asyncpg.Pool,
    http: aiohttp.ClientSession,
    api: str,
    receiver: WebhookReceiver,
    *,
    credits: int = 100,
    region: str = "US",
    events: tuple[str, ...] = ("message.status", "message.inbound"),
) -> Customer:
    """An account with a key and a webhook endpoint of its own (its own receiver path)."""
    async with pool.acquire() as conn:
        account_id = await accounts.create_account(
            conn, f"test-{uuid.uuid4().hex[:8]}", Decimal(credits), region
        )
        key = await accounts.create_key(conn, account_id, rate_limit=100_000)
    customer = Customer(account_id, key.secret, path=f"/hooks/{account_id}")
    async with http.post(
        f"{api}/v1/webhooks",
        json={"url": receiver.url(customer.path), "events": list(events)},
        headers=customer.headers,
    ) as resp:
        assert resp.status == 201, await resp.text()
        customer.webhook_secret = (await resp.json())["secret"]
    return customer


async def ledger_consistent(pool: asyncpg.Pool, account_id: uuid.UUID) -> tuple[Decimal, Decimal]:
    """(balance, sum of the ledger) of an account: they must be equal."""
    row = await pool.fetchrow(
        "SELECT a.balance, (SELECT coalesce(sum(amount), 0) FROM ledger l"
        " WHERE l.account_id = a.id) AS total FROM accounts a WHERE a.id = $1",
        account_id,
    )
    assert row is not None
    return row["balance"], row["total"]


def sim_config(**overrides: Any) -> SimConfig:
    base: dict[str, Any] = {
        "host": "127.0.0.1",
        "port": 0,
        "accounts": {"smsbroker": "secret"},
        "receipt_delay": (0.05, 0.1),
        "outcomes": {"DELIVRD": 1.0},
        "outcome_rules": {"0666": "UNDELIV", "0777": "EXPIRED"},
        "submit_status_rules": {"0013": 0x45},
    }
    base.update(overrides)
    return SimConfig(**base)


async def start_sim(**overrides: Any) -> SmscSimulator:
    sim = SmscSimulator(sim_config(**overrides))
    await sim.start()
    return sim


@dataclass
class Gateway:
    """The API and every worker role on one process's loop, and a customer's HTTP client and
    webhook endpoint."""

    api: str
    http: aiohttp.ClientSession
    receiver: WebhookReceiver


@asynccontextmanager
async def gateway(settings: Settings) -> AsyncIterator[Gateway]:
    from api.server import start_api
    from workers.runner import WorkerSet

    receiver = WebhookReceiver()
    await receiver.start()
    workers = WorkerSet(settings)
    await workers.start()
    runner = await start_api(settings, "127.0.0.1", 0)
    http = aiohttp.ClientSession()
    try:
        yield Gateway(f"http://127.0.0.1:{runner.addresses[0][1]}", http, receiver)
    finally:
        await http.close()
        await runner.cleanup()
        await workers.stop()
        await receiver.stop()


def with_settings(base: Settings, **overrides: Any) -> Settings:
    from dataclasses import replace

    return replace(base, **overrides)


#: The statuses a message.status webhook reports (a message's outcomes).
OUTCOMES = frozenset({"delivered", "undelivered", "failed", "canceled"})


@dataclass
class SimStack:
    """A whole gateway whose default route is a simulated carrier: what a test module shares.
    Modules subclass it with the helpers their tests speak in."""

    api: str
    http: aiohttp.ClientSession
    pool: asyncpg.Pool
    sim: SmscSimulator
    receiver: WebhookReceiver
    settings: Settings

    async def customer(self, **kw: Any) -> Customer:
        return await new_customer(self.pool, self.http, self.api, self.receiver, **kw)

    async def send(self, customer: Customer, payload: dict[str, Any]) -> tuple[int, Any]:
        """POST /v1/messages as the customer: (status, body)."""
        async with self.http.post(
            f"{self.api}/v1/messages", json=payload, headers=customer.headers
        ) as resp:
            return resp.status, await resp.json()

    async def get(self, customer: Customer, path: str, **params: str) -> tuple[int, Any]:
        async with self.http.get(
            f"{self.api}{path}", params=params, headers=customer.headers
        ) as resp:
            return resp.status, await resp.json()

    async def final_webhook(self, customer: Customer, message_id: str) -> dict[str, Any]:
        """The message's status webhook (only outcomes have one), its signature verified."""
        hit = await self.receiver.event(
            customer.path,
            "message.status",
            lambda d: d["id"] == message_id and d["status"] in OUTCOMES,
        )
        verify_standard_webhook(customer.webhook_secret, hit.headers, hit.body)
        data: dict[str, Any] = hit.json["data"]
        return data

    async def carrier_text(self, to: str, *, timeout: float = 15.0) -> str:
        """What the carrier got last for ``to`` (one part), waiting for it to arrive."""
        digits = to.lstrip("+")

        async def found() -> str:
            while True:
                for record in reversed(self.sim.submitted):
                    if record.destination_addr.lstrip("+") == digits:
                        return decode_short_message(
                            record.short_message,
                            record.data_coding,
                            udhi=bool(record.esm_class & ESM_UDHI),
                        ).text
                await asyncio.sleep(0.05)

        return await asyncio.wait_for(found(), timeout)


StackT = TypeVar("StackT", bound=SimStack)


@asynccontextmanager
async def sim_stack(
    settings: Settings, pool: asyncpg.Pool, kind: type[StackT], connector: str
) -> AsyncIterator[StackT]:
    """The gateway on a simulated carrier reached by a connector named ``connector`` plus a
    random tail (test modules share the session's database), as the default route."""
    sim = await start_sim()
    name = f"{connector}-{uuid.uuid4().hex[:6]}"
    await add_connector(pool, name, sim.port)
    async with pool.acquire() as conn:
        await accounts.add_route(conn, "", name, Decimal(1))
    try:
        async with gateway(settings) as gw:
            yield kind(gw.api, gw.http, pool, sim, gw.receiver, settings)
    finally:
        await sim.stop()


# --- The API in this process, as one account sees it --------------------------------------

Client = TestClient[web.Request, web.Application]


@dataclass
class ApiAccount:
    """An account and the headers its API key authenticates with."""

    id: uuid.UUID
    headers: dict[str, str]


@asynccontextmanager
async def api_client(settings: Settings) -> AsyncIterator[Client]:
    """The API app on a test server of its own. pytest fixtures belong to the module that
    defines them, so each module keeps a module-scoped `client` fixture around this."""
    from api.app import create_app

    server = TestServer(create_app(settings), host="127.0.0.1", port=0)
    async with TestClient(server) as client:
        yield client


async def api_account(
    pool: asyncpg.Pool,
    *,
    name_prefix: str = "t",
    credits: Decimal = Decimal(10),
    region: str = "US",
) -> ApiAccount:
    """A fresh account with an API key of a rate no test reaches."""
    async with pool.acquire() as conn:
        account_id = await accounts.create_account(
            conn, f"{name_prefix}-{uuid.uuid4().hex[:8]}", credits, region
        )
        key = await accounts.create_key(conn, account_id, rate_limit=100_000)
    return ApiAccount(account_id, {"Authorization": f"Bearer {key.secret}"})


async def api_call(
    client: Client, method: str, path: str, who: ApiAccount, **kw: Any
) -> tuple[int, Any]:
    """A request as the account (extra `headers=` added to its own): (status, JSON body, or
    None when the answer is not JSON)."""
    headers = {**who.headers, **kw.pop("headers", {})}
    async with client.request(method, path, headers=headers, **kw) as resp:
        body = await resp.json() if resp.content_type == "application/json" else None
        return resp.status, body


async def all_pages(client: Client, who: ApiAccount, path: str, limit: int) -> list[list[Any]]:
    """Every page of a list, following next_cursor."""
    pages: list[list[Any]] = []
    sep = "&" if "?" in path else "?"
    cursor: str | None = None
    while True:
        url = f"{path}{sep}limit={limit}" + (f"&cursor={cursor}" if cursor else "")
        status, body = await api_call(client, "GET", url, who)
        assert status == 200, body
        pages.append(body["data"])
        cursor = body["next_cursor"]
        if cursor is None:
            return pages


# --- Contacts and groups over the API ------------------------------------------------------


def phone(n: int) -> str:
    """The n-th test number (valid in E.164 for the US region)."""
    return f"+1415555{n:04d}"


async def add_contact(client: Client, who: ApiAccount, **body: Any) -> Any:
    status, answer = await api_call(client, "POST", "/v1/contacts", who, json=body)
    assert status == 201, answer
    return answer


async def add_group(client: Client, who: ApiAccount, name: str) -> Any:
    status, answer = await api_call(client, "POST", "/v1/groups", who, json={"name": name})
    assert status == 201, answer
    return answer


async def snapshot(pool: asyncpg.Pool, who: ApiAccount) -> list[tuple[Any, ...]]:
    """Every contact and membership of the account, to prove a refused request changed
    nothing."""
    contacts = await pool.fetch(
        "SELECT id, phone, first_name, last_name, email, fields::text, updated_at"
        " FROM contacts WHERE account_id = $1 ORDER BY id",
        who.id,
    )
    members = await pool.fetch(
        "SELECT group_id, contact_id FROM group_members WHERE account_id = $1"
        " ORDER BY group_id, contact_id",
        who.id,
    )
    return [tuple(r) for r in contacts] + [tuple(r) for r in members]
