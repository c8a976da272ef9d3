"""Sender IDs end to end: registration over the real API (real keys, real database), the
operator's `smsbroker sender list|approve|reject`, and what the account sees afterwards."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import os
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from broker.config import Settings
from broker.store import sender_ids as store
from cli.main import main as smsbroker_main
from tests.harness import ApiAccount, Client, api_account, api_call, api_client

SMSBROKER = str(Path(sys.executable).with_name("smsbroker"))


@pytest.fixture(scope="module")
async def client(settings: Settings) -> AsyncIterator[Client]:
    async with api_client(settings) as c:
        yield c


async def register(client: Client, who: ApiAccount, sender_id: str, purpose: str = "alerts") -> Any:
    status, body = await api_call(
        client, "POST", "/v1/sender-ids", who, json={"sender_id": sender_id, "purpose": purpose}
    )
    assert status == 201, body
    return body


async def stored(pool: asyncpg.Pool, who: ApiAccount) -> list[asyncpg.Record]:
    rows: list[asyncpg.Record] = await pool.fetch(
        "SELECT sender_id, purpose, status, reason FROM sender_ids WHERE account_id = $1"
        " ORDER BY created_at",
        who.id,
    )
    return rows


def operator(pg_dsn: str, *args: str) -> tuple[int, str, str]:
    """`smsbroker ARGS` in this process (its own thread and event loop): exit code, out, err."""
    out, err = io.StringIO(), io.StringIO()
    previous = os.environ.get("DATABASE_URL")
    os.environ["DATABASE_URL"] = pg_dsn
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = smsbroker_main(list(args))
            except SystemExit as exc:  # argparse refusing the command line
                code = int(exc.code or 0)
    finally:
        if previous is None:
            del os.environ["DATABASE_URL"]
        else:
            os.environ["DATABASE_URL"] = previous
    return code, out.getvalue(), err.getvalue()


async def run_operator(pg_dsn: str, *args: str) -> tuple[int, str, str]:
    return await asyncio.to_thread(operator, pg_dsn, *args)


async def test_register_answers_pending_and_stores_it(client: Client, pool: asyncpg.Pool) -> None:
    who = await api_account(pool)
    created = await register(client, who, "Acme Shop", "Order updates")
    assert set(created) == {
        "id",
        "sender_id",
        "purpose",
        "status",
        "reason",
        "created_at",
        "decided_at",
    }
    assert created["sender_id"] == "Acme Shop"
    assert created["purpose"] == "Order updates"
    assert (created["status"], created["reason"], created["decided_at"]) == ("pending", None, None)
    uuid.UUID(created["id"])
    assert [tuple(r) for r in await stored(pool, who)] == [
        ("Acme Shop", "Order updates", "pending", None)
    ]
    assert not await store.is_approved(pool, who.id, "Acme Shop")

    status, read = await api_call(client, "GET", f"/v1/sender-ids/{created['id']}", who)
    assert (status, read) == (200, created)

    # A number, and a form-encoded request (as the seeds' clients post): same rules.
    number = await register(client, who, "+233201234567", "Replies")
    assert number["sender_id"] == "+233201234567"
    status, form = await api_call(
        client,
        "POST",
        "/v1/sender-ids",
        who,
        data={"sender_id": "ACME-2", "purpose": "  Promotions  "},
    )
    assert status == 201, form
    assert (form["sender_id"], form["purpose"]) == ("ACME-2", "Promotions")


async def test_list_newest_first_with_status_filter_and_cursor(
    client: Client, pool: asyncpg.Pool, pg_dsn: str
) -> None:
    who = await api_account(pool)
    created = [await register(client, who, f"Brand{i}") for i in range(5)]
    status, page = await api_call(client, "GET", "/v1/sender-ids", who)
    assert status == 200
    assert [s["id"] for s in page["data"]] == [c["id"] for c in reversed(created)]
    assert page["next_cursor"] is None

    seen: list[str] = []
    cursor: str | None = None
    while True:
        params = {"limit": "2", **({"cursor": cursor} if cursor else {})}
        status, page = await api_call(client, "GET", "/v1/sender-ids", who, params=params)
        assert status == 200, page
        assert len(page["data"]) <= 2
        seen += [s["sender_id"] for s in page["data"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == [f"Brand{i}" for i in reversed(range(5))]

    code, _, err = await run_operator(pg_dsn, "sender", "approve", created[1]["id"])
    assert code == 0, err
    status, approved = await api_call(
        client, "GET", "/v1/sender-ids", who, params={"status": "approved"}
    )
    assert [s["sender_id"] for s in approved["data"]] == ["Brand1"]
    status, pending = await api_call(
        client, "GET", "/v1/sender-ids", who, params={"status": "pending"}
    )
    assert [s["sender_id"] for s in pending["data"]] == ["Brand4", "Brand3", "Brand2", "Brand0"]

    for params, code_name in (
        ({"status": "approvedd"}, "INVALID_STATUS"),
        ({"cursor": "not-a-cursor"}, "INVALID_CURSOR"),
        ({"limit": "0"}, "INVALID_INPUT"),
        ({"limit": "201"}, "INVALID_INPUT"),
    ):
        status, body = await api_call(client, "GET", "/v1/sender-ids", who, params=params)
        assert (status, body["error"]["code"]) == (400, code_name), params


async def test_same_sender_id_twice_is_409_and_changes_nothing(
    client: Client, pool: asyncpg.Pool
) -> None:
    who = await api_account(pool)
    await register(client, who, "TWICE", "first")
    status, body = await api_call(
        client, "POST", "/v1/sender-ids", who, json={"sender_id": "TWICE", "purpose": "second"}
    )
    assert status == 409, body
    assert body["error"]["code"] == "SENDER_ID_EXISTS"
    assert "pending" in body["error"]["message"]
    assert [tuple(r) for r in await stored(pool, who)] == [("TWICE", "first", "pending", None)]
    # Case is part of what recipients see: another sender ID.
    await register(client, who, "Twice", "other case")


BAD_BODIES: list[tuple[Any, str]] = [
    ({"sender_id": "ab", "purpose": "p"}, "INVALID_SENDER_ID"),
    ({"sender_id": "TwelveChars1", "purpose": "p"}, "INVALID_SENDER_ID"),
    ({"sender_id": "bad!name", "purpose": "p"}, "INVALID_SENDER_ID"),
    ({"sender_id": "Ünicode", "purpose": "p"}, "INVALID_SENDER_ID"),
    ({"sender_id": "    ", "purpose": "p"}, "INVALID_SENDER_ID"),
    ({"sender_id": "", "purpose": "p"}, "INVALID_SENDER_ID"),
    ({"sender_id": "+1234567890123456", "purpose": "p"}, "INVALID_SENDER_ID"),
    ({"sender_id": 12345, "purpose": "p"}, "INVALID_SENDER_ID"),
    ({"sender_id": None, "purpose": "p"}, "INVALID_SENDER_ID"),
    ({"purpose": "p"}, "INVALID_SENDER_ID"),
    ({"sender_id": "GoodName"}, "INVALID_PURPOSE"),
    ({"sender_id": "GoodName", "purpose": ""}, "INVALID_PURPOSE"),
    ({"sender_id": "GoodName", "purpose": "   "}, "INVALID_PURPOSE"),
    ({"sender_id": "GoodName", "purpose": "x" * 501}, "INVALID_PURPOSE"),
    ({"sender_id": "GoodName", "purpose": "nul\x00"}, "INVALID_CHARACTER"),
    ({"sender_id": "GoodName", "purpose": 7}, "INVALID_PURPOSE"),
    (["GoodName"], "INVALID_JSON"),
]


@pytest.mark.parametrize(("body", "code"), BAD_BODIES)
async def test_bad_input_is_400_and_stores_nothing(
    client: Client, pool: asyncpg.Pool, body: Any, code: str
) -> None:
    who = await api_account(pool)
    status, answer = await api_call(client, "POST", "/v1/sender-ids", who, json=body)
    assert status == 400, answer
    assert answer["error"]["code"] == code, answer
    assert await stored(pool, who) == []


async def test_delete_withdraws_it(client: Client, pool: asyncpg.Pool, pg_dsn: str) -> None:
    who = await api_account(pool)
    created = await register(client, who, "GoAway")
    code, _, err = await run_operator(pg_dsn, "sender", "approve", created["id"])
    assert code == 0, err
    assert await store.is_approved(pool, who.id, "GoAway")

    status, body = await api_call(client, "DELETE", f"/v1/sender-ids/{created['id']}", who)
    assert (status, body) == (204, None)
    assert not await store.is_approved(pool, who.id, "GoAway")
    assert await stored(pool, who) == []
    status, body = await api_call(client, "GET", f"/v1/sender-ids/{created['id']}", who)
    assert (status, body["error"]["code"]) == (404, "NOT_FOUND")
    status, _ = await api_call(client, "DELETE", f"/v1/sender-ids/{created['id']}", who)
    assert status == 404
    status, _ = await api_call(client, "GET", "/v1/sender-ids/not-a-uuid", who)
    assert status == 404
    # Withdrawn, it can be registered again from scratch.
    again = await register(client, who, "GoAway")
    assert again["id"] != created["id"] and again["status"] == "pending"


async def test_another_account_sees_none_of_it(client: Client, pool: asyncpg.Pool) -> None:
    alice, bob = await api_account(pool), await api_account(pool)
    mine = await register(client, alice, "AliceCo")
    for method in ("GET", "DELETE"):
        status, body = await api_call(client, method, f"/v1/sender-ids/{mine['id']}", bob)
        assert (status, body["error"]["code"]) == (404, "NOT_FOUND"), method
    status, page = await api_call(client, "GET", "/v1/sender-ids", bob)
    assert (status, page["data"]) == (200, [])
    status, read = await api_call(client, "GET", f"/v1/sender-ids/{mine['id']}", alice)
    assert (status, read) == (200, mine)
    # The same name is bob's own request, independent of alice's.
    theirs = await register(client, bob, "AliceCo")
    assert theirs["id"] != mine["id"]


async def test_operator_lists_approves_and_rejects(
    client: Client, pool: asyncpg.Pool, pg_dsn: str
) -> None:
    who, other = await api_account(pool), await api_account(pool)
    first = await register(client, who, "FirstCo", "receipts")
    second = await register(client, who, "SecondCo", "marketing")
    await register(client, other, "OtherCo")

    code, out, err = await run_operator(
        pg_dsn, "sender", "list", "--status", "pending", "--account", str(who.id), "--json"
    )
    assert code == 0, err
    listed = json.loads(out)["data"]
    assert [(s["sender_id"], s["status"], s["account_id"]) for s in listed] == [
        ("FirstCo", "pending", str(who.id)),
        ("SecondCo", "pending", str(who.id)),
    ]
    code, out, _ = await run_operator(pg_dsn, "sender", "list", "--account", str(who.id))
    assert code == 0 and "FirstCo" in out and "SecondCo" in out and "OtherCo" not in out

    code, out, err = await run_operator(pg_dsn, "sender", "approve", first["id"], "--json")
    assert code == 0, err
    approved = json.loads(out)
    assert (approved["id"], approved["status"]) == (first["id"], "approved")
    assert approved["decided_at"] is not None
    status, read = await api_call(client, "GET", f"/v1/sender-ids/{first['id']}", who)
    assert (status, read["status"], read["reason"]) == (200, "approved", None)
    assert read["decided_at"] is not None
    assert await store.is_approved(pool, who.id, "FirstCo")
    assert not await store.is_approved(pool, other.id, "FirstCo")

    # Approving it again changes nothing and succeeds.
    code, out, err = await run_operator(pg_dsn, "sender", "approve", first["id"], "--json")
    assert code == 0, err
    assert json.loads(out)["decided_at"] == approved["decided_at"]

    code, out, err = await run_operator(
        pg_dsn, "sender", "reject", second["id"], "--reason", "brand not verified", "--json"
    )
    assert code == 0, err
    status, read = await api_call(client, "GET", f"/v1/sender-ids/{second['id']}", who)
    assert (read["status"], read["reason"]) == ("rejected", "brand not verified")
    assert read["decided_at"] is not None
    assert not await store.is_approved(pool, who.id, "SecondCo")
    status, body = await api_call(
        client, "POST", "/v1/sender-ids", who, json={"sender_id": "FirstCo", "purpose": "again"}
    )
    assert (status, body["error"]["code"]) == (409, "SENDER_ID_EXISTS")

    code, out, _ = await run_operator(pg_dsn, "sender", "list", "--status", "rejected", "--json")
    assert second["id"] in [s["id"] for s in json.loads(out)["data"]]

    # A rejected one registered again is a new request: the same resource, pending again.
    renewed = await register(client, who, "SecondCo", "transactional only")
    assert renewed["id"] == second["id"]
    assert (renewed["status"], renewed["reason"], renewed["decided_at"]) == ("pending", None, None)
    assert renewed["purpose"] == "transactional only"

    # The operator may revoke an approval.
    code, _, err = await run_operator(pg_dsn, "sender", "reject", first["id"])
    assert code == 0, err
    assert not await store.is_approved(pool, who.id, "FirstCo")
    status, read = await api_call(client, "GET", f"/v1/sender-ids/{first['id']}", who)
    assert (read["status"], read["reason"]) == ("rejected", None)


async def test_operator_errors_are_clear_and_change_nothing(
    client: Client, pool: asyncpg.Pool, pg_dsn: str
) -> None:
    who = await api_account(pool)
    created = await register(client, who, "Waiting")
    unknown = str(uuid.uuid4())
    code, _, err = await run_operator(pg_dsn, "sender", "approve", unknown)
    assert code == 1 and f"sender ID {unknown} not found" in err
    code, _, err = await run_operator(pg_dsn, "sender", "reject", unknown, "--json")
    assert code == 1 and json.loads(err)["error"]["code"] == "NOT_FOUND"
    code, _, err = await run_operator(pg_dsn, "sender", "approve", "not-a-uuid")
    assert code == 2 and "not a sender ID id" in err
    code, _, err = await run_operator(
        pg_dsn, "sender", "reject", created["id"], "--reason", "r" * 501
    )
    assert code == 2 and "reason" in err
    code, _, _ = await run_operator(pg_dsn, "sender", "list", "--status", "maybe")
    assert code == 2
    status, read = await api_call(client, "GET", f"/v1/sender-ids/{created['id']}", who)
    assert (read["status"], read["decided_at"]) == ("pending", None)


async def test_the_installed_command_approves(pool: asyncpg.Pool, pg_dsn: str) -> None:
    """Once as an operator runs it: the `smsbroker` executable in its own process."""
    who = await api_account(pool)
    row = await store.register(pool, who.id, "ExeCo", "tests")
    assert row is not None
    process = await asyncio.create_subprocess_exec(
        SMSBROKER,
        "sender",
        "approve",
        str(row.id),
        env={**os.environ, "DATABASE_URL": pg_dsn},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode == 0, err.decode()
    assert f"'ExeCo' ({row.id}) is approved" in out.decode()
    assert await store.is_approved(pool, who.id, "ExeCo")
