"""A template or group send reads its recipients' opt-outs once: the audience walk that makes
the recipients already reads them, and the send's checks (api.sending.prepare) take that answer
instead of asking PostgreSQL again.

Counted on the real database: the API runs on a pool of this module's whose connections log
every statement they run (asyncpg query loggers); nothing in the database layer is replaced.
The accounts here have more opt-outs than the API's snapshot of an account holds
(SNAPSHOT_OPT_OUTS), so every answer about a recipient is a query that can be counted."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from asyncpg.connection import LoggedQuery

from api.context import POOL
from broker.config import Settings
from broker.store.send_checks import SEND_RULES, SNAPSHOT_OPT_OUTS
from tests.harness import ApiAccount, Client, api_account, api_call

#: Numbers valid in the US region, none of them one of the filler opt-outs below.
_serial = iter(range(1000, 10_000))


def number() -> str:
    return f"+1650253{next(_serial):04d}"


class Reads:
    """Per account, the statements the API ran that read opt_outs about a send's recipients.
    The account's send rules (SEND_RULES: sender IDs and an opt-out snapshot, remembered per
    account) are left out: they are not a question about the recipients."""

    def __init__(self) -> None:
        self.by_account: dict[uuid.UUID, list[str]] = defaultdict(list)

    def log(self, record: LoggedQuery) -> None:
        query, args = record.query, record.args or ()
        if "opt_outs" in query and query != SEND_RULES and args and isinstance(args[0], uuid.UUID):
            self.by_account[args[0]].append(query)

    async def of(self, account_id: uuid.UUID) -> list[str]:
        await asyncio.sleep(0)  # loggers are called soon after the statement, not in it
        return self.by_account.pop(account_id, [])


@pytest.fixture(scope="module")
async def api(settings: Settings) -> AsyncIterator[tuple[Client, Reads]]:
    from api.app import create_app

    reads = Reads()
    app = create_app(settings)

    async def logged_pool(app: web.Application) -> AsyncIterator[None]:
        """Runs after the app opened its own pool: handlers use this one instead."""

        async def init(conn: asyncpg.Connection) -> None:
            conn.add_query_logger(reads.log)

        own = app[POOL]
        logged = await asyncpg.create_pool(settings.database_url, min_size=1, max_size=4, init=init)
        assert logged is not None
        app[POOL] = logged
        yield
        app[POOL] = own
        await logged.close()

    app.cleanup_ctx.append(logged_pool)
    async with Client(TestServer(app, host="127.0.0.1", port=0)) as client:
        yield client, reads


async def crowded_account(pool: asyncpg.Pool, refused: list[str]) -> ApiAccount:
    """An account with more opt-outs than a snapshot holds, ``refused`` among them."""
    who = await api_account(pool)
    await pool.execute(
        "INSERT INTO opt_outs (account_id, phone, source)"
        " SELECT $1, '+4470' || lpad(i::text, 8, '0'), 'api' FROM generate_series(1, $2::int) i",
        who.id,
        SNAPSHOT_OPT_OUTS + 1,
    )
    await pool.execute(
        "INSERT INTO opt_outs (account_id, phone, source) SELECT $1, unnest($2::text[]), 'api'",
        who.id,
        refused,
    )
    return who


async def template(pool: asyncpg.Pool, who: ApiAccount, body: str) -> str:
    tid: uuid.UUID = await pool.fetchval(
        "INSERT INTO templates (account_id, name, body) VALUES ($1, $2, $3) RETURNING id",
        who.id,
        f"t-{uuid.uuid4().hex[:8]}",
        body,
    )
    return str(tid)


async def group(pool: asyncpg.Pool, who: ApiAccount, members: dict[str, str]) -> str:
    """A group of contacts (phone → first name)."""
    gid: uuid.UUID = await pool.fetchval(
        "INSERT INTO contact_groups (account_id, name) VALUES ($1, $2) RETURNING id",
        who.id,
        f"g-{uuid.uuid4().hex[:8]}",
    )
    for phone, first_name in members.items():
        cid = await pool.fetchval(
            "INSERT INTO contacts (account_id, phone, first_name, fields)"
            " VALUES ($1, $2, $3, $4::jsonb) RETURNING id",
            who.id,
            phone,
            first_name,
            json.dumps({}),
        )
        await pool.execute(
            "INSERT INTO group_members (account_id, group_id, contact_id) VALUES ($1, $2, $3)",
            who.id,
            gid,
            cid,
        )
    return str(gid)


async def send(client: Client, who: ApiAccount, payload: dict[str, Any]) -> tuple[int, Any]:
    return await api_call(client, "POST", "/v1/messages", who, json=payload)


def statuses(body: Any) -> dict[str, str]:
    return {m["to"]: m["status"] for m in body["messages"]}


async def test_a_template_send_to_numbers_reads_their_opt_outs_once(
    api: tuple[Client, Reads], pool: asyncpg.Pool
) -> None:
    client, reads = api
    refused, fine = number(), number()
    who = await crowded_account(pool, [refused])
    tid = await template(pool, who, "Your code is {{code}}")
    payload = {"to": [refused, fine], "template_id": tid, "variables": {"code": "42"}}
    status, body = await send(client, who, payload)
    assert status == 202, body
    assert statuses(body) == {refused: "failed", fine: "queued"}
    assert len(await reads.of(who.id)) == 1


async def test_a_single_opted_out_recipient_of_a_template_is_refused_after_one_read(
    api: tuple[Client, Reads], pool: asyncpg.Pool
) -> None:
    client, reads = api
    refused = number()
    who = await crowded_account(pool, [refused])
    tid = await template(pool, who, "Your code is {{code}}")
    payload = {"to": refused, "template_id": tid, "variables": {"code": "42"}}
    status, body = await send(client, who, payload)
    assert status == 403, body
    assert body["error"]["code"] == "OPTED_OUT"
    assert len(await reads.of(who.id)) == 1


async def test_a_group_send_reads_its_members_opt_outs_with_the_members(
    api: tuple[Client, Reads], pool: asyncpg.Pool
) -> None:
    client, reads = api
    refused, fine = number(), number()
    who = await crowded_account(pool, [refused])
    gid = await group(pool, who, {refused: "Ada", fine: "Bo"})
    tid = await template(pool, who, "Hi {{first_name}}")
    status, body = await send(client, who, {"group_ids": [gid], "template_id": tid})
    assert status == 202, body
    assert statuses(body) == {refused: "failed", fine: "queued"}
    assert len(await reads.of(who.id)) == 1  # the members' page, which says who opted out


async def test_numbers_and_members_each_have_their_opt_outs_read_once(
    api: tuple[Client, Reads], pool: asyncpg.Pool
) -> None:
    """The send's own numbers in one statement, the members with their one page: two
    statements, each recipient in one of them, and nothing asked again before the answer."""
    client, reads = api
    own_refused, own_fine, member_refused, member_fine = (number() for _ in range(4))
    who = await crowded_account(pool, [own_refused, member_refused])
    gid = await group(pool, who, {member_refused: "Ada", member_fine: "Bo"})
    tid = await template(pool, who, "Hi {{name}}")
    payload = {
        "to": [own_refused, own_fine],
        "group_ids": [gid],
        "template_id": tid,
        "variables": {"name": "there"},
    }
    status, body = await send(client, who, payload)
    assert status == 202, body
    assert statuses(body) == {
        own_refused: "failed",
        own_fine: "queued",
        member_refused: "failed",
        member_fine: "queued",
    }
    assert len(await reads.of(who.id)) == 2
