"""The account resource end to end: GET/PATCH /v1/account, the callback secret a customer sees
signing its callback_url deliveries, its rotation (both secrets for 24 h, then only the new),
the balance's currency, and `smsbroker account update`."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from broker.config import Settings
from tests.harness import (
    Customer,
    Received,
    SimStack,
    sim_stack,
    verify_standard_webhook,
)

SMSBROKER = str(Path(sys.executable).with_name("smsbroker"))
#: The webhook sender caches an account's secrets this long (workers.webhook_sender).
CACHE_TTL = 2.0


class Stack(SimStack):
    """The module's gateway, with the helpers its tests speak in."""

    @property
    def dsn(self) -> str:
        return self.settings.database_url

    async def call(
        self, method: str, customer: Customer, path: str, body: Any = None
    ) -> tuple[int, Any]:
        async with self.http.request(
            method, f"{self.api}{path}", json=body, headers=customer.headers
        ) as resp:
            return resp.status, await resp.json()

    async def callback(self, customer: Customer) -> Received:
        """Send one message with a callback_url; the delivery its final status caused."""
        path = f"/callback/{uuid.uuid4().hex}"
        to = f"+1650253{1000 + uuid.uuid4().int % 9000}"
        status, body = await self.call(
            "POST",
            customer,
            "/v1/messages",
            {"to": to, "body": "callback", "callback_url": self.receiver.url(path)},
        )
        assert status == 202, body
        [hit] = await self.receiver.wait_for(lambda r: r.path == path)
        assert hit.json["data"]["id"] == body["messages"][0]["id"]
        return hit


@pytest.fixture(scope="module")
async def stack(settings: Settings, pool: asyncpg.Pool) -> AsyncIterator[Stack]:
    async with sim_stack(settings, pool, Stack, "acct") as stack:
        yield stack


def signatures(hit: Received) -> int:
    return len(hit.headers["webhook-signature"].split())


async def test_get_account_shows_the_account(stack: Stack) -> None:
    customer = await stack.customer(credits=42, region="GH")
    status, body = await stack.call("GET", customer, "/v1/account")
    assert status == 200, body
    row = await stack.pool.fetchrow("SELECT * FROM accounts WHERE id = $1", customer.account_id)
    assert row is not None
    assert body == {
        "id": str(customer.account_id),
        "name": row["name"],
        "region": "GH",
        "balance": 42,
        "currency": "credits",
        "status": "active",
        "plan": "standard",
        "default_sender": None,
        "help_text": None,
        "webhook_secret": row["webhook_secret"],
        "previous_webhook_secret_expires_at": None,
        "created_at": body["created_at"],
    }
    assert body["webhook_secret"].startswith("whsec_")
    assert datetime.fromisoformat(body["created_at"]) == row["created_at"]


async def test_callback_verifies_with_the_shown_secret_and_both_after_rotation(
    stack: Stack,
) -> None:
    customer = await stack.customer(credits=10)
    _, account = await stack.call("GET", customer, "/v1/account")
    first = account["webhook_secret"]
    hit = await stack.callback(customer)
    verify_standard_webhook(first, hit.headers, hit.body)
    assert signatures(hit) == 1

    before = datetime.now(UTC)
    status, rotated = await stack.call("POST", customer, "/v1/account/webhook-secret")
    assert status == 200, rotated
    second = rotated["webhook_secret"]
    assert second.startswith("whsec_") and second != first
    expires = datetime.fromisoformat(rotated["previous_webhook_secret_expires_at"])
    assert before + timedelta(hours=24) - timedelta(seconds=5) < expires
    assert expires < datetime.now(UTC) + timedelta(hours=24, seconds=5)
    _, account = await stack.call("GET", customer, "/v1/account")
    assert account["webhook_secret"] == second
    assert datetime.fromisoformat(account["previous_webhook_secret_expires_at"]) == expires

    await asyncio.sleep(CACHE_TTL + 0.5)  # the sender's cached secrets have expired
    hit = await stack.callback(customer)
    verify_standard_webhook(second, hit.headers, hit.body)
    verify_standard_webhook(first, hit.headers, hit.body)
    assert signatures(hit) == 2

    # A second rotation within 24 h: the one it replaces is the previous one; the first no
    # longer verifies.
    _, again = await stack.call("POST", customer, "/v1/account/webhook-secret")
    third = again["webhook_secret"]
    await asyncio.sleep(CACHE_TTL + 0.5)
    hit = await stack.callback(customer)
    verify_standard_webhook(third, hit.headers, hit.body)
    verify_standard_webhook(second, hit.headers, hit.body)
    with pytest.raises(AssertionError):
        verify_standard_webhook(first, hit.headers, hit.body)

    # 25 hours later only the current secret signs, and the account shows no previous one.
    await stack.pool.execute(
        "UPDATE accounts SET webhook_secret_rotated_at = now() - interval '25 hours' WHERE id = $1",
        customer.account_id,
    )
    await asyncio.sleep(CACHE_TTL + 0.5)
    hit = await stack.callback(customer)
    verify_standard_webhook(third, hit.headers, hit.body)
    with pytest.raises(AssertionError):
        verify_standard_webhook(second, hit.headers, hit.body)
    assert signatures(hit) == 1
    _, account = await stack.call("GET", customer, "/v1/account")
    assert account["webhook_secret"] == third
    assert account["previous_webhook_secret_expires_at"] is None

    # Endpoints keep their own secrets throughout.
    hits = await stack.receiver.wait_for(
        lambda r: r.path == customer.path and r.json["type"] == "message.status", count=4
    )
    for endpoint_hit in hits:
        verify_standard_webhook(customer.webhook_secret, endpoint_hit.headers, endpoint_hit.body)
        assert signatures(endpoint_hit) == 1


async def _settings(stack: Stack, customer: Customer) -> tuple[Any, ...]:
    row = await stack.pool.fetchrow(
        "SELECT plan, currency, default_sender, help_text FROM accounts WHERE id = $1",
        customer.account_id,
    )
    assert row is not None
    return tuple(row)


async def _sender_id(pool: asyncpg.Pool, account_id: uuid.UUID, sender: str, status: str) -> None:
    await pool.execute(
        "INSERT INTO sender_ids (account_id, sender_id, purpose, status, decided_at)"
        " VALUES ($1, $2, 'alerts', $3, CASE WHEN $3 = 'pending' THEN NULL ELSE now() END)",
        account_id,
        sender,
        status,
    )


@pytest.mark.parametrize(
    ("patch", "code", "field"),
    [
        ({"default_sender": "ACME"}, "INVALID_SENDER_ID", "default_sender"),  # not registered
        ({"default_sender": "PENDING"}, "INVALID_SENDER_ID", "default_sender"),
        ({"default_sender": "REJECTED"}, "INVALID_SENDER_ID", "default_sender"),
        ({"default_sender": "OTHERS"}, "INVALID_SENDER_ID", "default_sender"),  # other account's
        ({"default_sender": "x"}, "INVALID_SENDER_ID", "default_sender"),
        ({"default_sender": "ABCDEFGHIJKL"}, "INVALID_SENDER_ID", "default_sender"),
        ({"default_sender": "1234567890123456"}, "INVALID_SENDER_ID", "default_sender"),
        ({"default_sender": 12345}, "INVALID_SENDER_ID", "default_sender"),
        ({"help_text": ""}, "INVALID_INPUT", "help_text"),
        ({"help_text": "   "}, "INVALID_INPUT", "help_text"),
        ({"help_text": "x" * 919}, "INVALID_INPUT", "help_text"),
        ({"help_text": "nul\x00"}, "INVALID_CHARACTER", "help_text"),
        ({"help_text": "ok", "default_sender": "ACME"}, "INVALID_SENDER_ID", "default_sender"),
    ],
)
async def test_patch_refuses_bad_settings_and_changes_nothing(
    stack: Stack, patch: dict[str, Any], code: str, field: str
) -> None:
    customer = await stack.customer()
    other = await stack.customer()
    await _sender_id(stack.pool, customer.account_id, "PENDING", "pending")
    await _sender_id(stack.pool, customer.account_id, "REJECTED", "rejected")
    await _sender_id(stack.pool, other.account_id, "OTHERS", "approved")
    before = await _settings(stack, customer)
    status, body = await stack.call("PATCH", customer, "/v1/account", patch)
    assert status == 400, body
    assert (body["error"]["code"], body["error"]["field"]) == (code, field)
    assert await _settings(stack, customer) == before


async def test_patch_sets_and_clears_the_default_sender_and_help_text(stack: Stack) -> None:
    customer = await stack.customer()
    await _sender_id(stack.pool, customer.account_id, "ACME", "approved")

    status, body = await stack.call(
        "PATCH",
        customer,
        "/v1/account",
        {"default_sender": "ACME", "help_text": "Acme alerts. Reply STOP to end."},
    )
    assert status == 200, body
    help_text = "Acme alerts. Reply STOP to end."
    assert (body["default_sender"], body["help_text"]) == ("ACME", help_text)
    _, shown = await stack.call("GET", customer, "/v1/account")
    assert shown == body

    # Only the fields named change; a number needs no approval; unknown fields are ignored
    # (the plan and currency are the operator's).
    status, body = await stack.call(
        "PATCH",
        customer,
        "/v1/account",
        {"default_sender": "+233200000001", "plan": "gold", "currency": "USD"},
    )
    assert status == 200, body
    assert (body["default_sender"], body["help_text"]) == (
        "+233200000001",
        "Acme alerts. Reply STOP to end.",
    )
    assert await _settings(stack, customer) == (
        "standard",
        "credits",
        "+233200000001",
        "Acme alerts. Reply STOP to end.",
    )
    long_help = "h" * 918
    status, body = await stack.call("PATCH", customer, "/v1/account", {"help_text": long_help})
    assert status == 200 and body["help_text"] == long_help

    status, body = await stack.call(
        "PATCH", customer, "/v1/account", {"default_sender": None, "help_text": None}
    )
    assert status == 200, body
    assert (body["default_sender"], body["help_text"]) == (None, None)
    assert await _settings(stack, customer) == ("standard", "credits", None, None)

    # A form post names the fields too.
    async with stack.http.patch(
        f"{stack.api}/v1/account", data={"help_text": "Help!"}, headers=customer.headers
    ) as resp:
        assert resp.status == 200
        assert (await resp.json())["help_text"] == "Help!"


def _cli(dsn: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DATABASE_URL": dsn}
    return subprocess.run(
        [SMSBROKER, *args], env=env, capture_output=True, text=True, timeout=60, check=False
    )


async def test_cli_account_update_and_balance_currency(stack: Stack) -> None:
    customer = await stack.customer(credits=7)
    account = str(customer.account_id)
    _, balance = await stack.call("GET", customer, "/v1/balance")
    assert balance == {"balance": 7, "currency": "credits", "status": "active"}

    done = await asyncio.to_thread(
        _cli,
        stack.dsn,
        "account",
        "update",
        account,
        "--plan",
        "gold",
        "--currency",
        "USD",
        "--help-text",
        "Reply STOP to end",
        "--json",
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {
        "id": account,
        "name": json.loads(done.stdout)["name"],
        "plan": "gold",
        "currency": "USD",
        "default_sender": None,
        "help_text": "Reply STOP to end",
    }
    _, balance = await stack.call("GET", customer, "/v1/balance")
    assert balance == {"balance": 7, "currency": "USD", "status": "active"}
    _, shown = await stack.call("GET", customer, "/v1/account")
    assert (shown["plan"], shown["currency"], shown["help_text"]) == (
        "gold",
        "USD",
        "Reply STOP to end",
    )
    assert "webhook_secret" not in done.stdout

    # Refused: nothing to change, an unapproved sender, a plan too long; nothing changes.
    before = await _settings(stack, customer)
    for args in (
        (),
        ("--default-sender", "ACME"),
        ("--default-sender", "x"),
        ("--plan", "p" * 51),
        ("--currency", ""),
    ):
        refused = await asyncio.to_thread(
            _cli, stack.dsn, "account", "update", account, *args, "--json"
        )
        assert refused.returncode == 2, (args, refused.stderr)
        assert json.loads(refused.stderr)["error"]["message"]
    assert await _settings(stack, customer) == before
    refused = await asyncio.to_thread(
        _cli, stack.dsn, "account", "update", str(uuid.uuid4()), "--plan", "x", "--json"
    )
    assert refused.returncode == 1 and "not found" in refused.stderr

    await _sender_id(stack.pool, customer.account_id, "ACME", "approved")
    done = await asyncio.to_thread(
        _cli, stack.dsn, "account", "update", account, "--default-sender", "ACME"
    )
    assert done.returncode == 0, done.stderr
    assert "default sender ACME" in done.stdout
    done = await asyncio.to_thread(
        _cli, stack.dsn, "account", "update", account, "--help-text", "", "--default-sender", ""
    )
    assert done.returncode == 0, done.stderr
    assert await _settings(stack, customer) == ("gold", "USD", None, None)

    shown = await asyncio.to_thread(_cli, stack.dsn, "account", "show", account, "--json")
    assert shown.returncode == 0, shown.stderr
    books = json.loads(shown.stdout)
    assert (books["balance"], books["balanced"], books["plan"], books["currency"]) == (
        7,
        True,
        "gold",
        "USD",
    )
    assert "whsec_" not in shown.stdout
