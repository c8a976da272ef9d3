"""What a send is checked against before it is accepted, end to end on real services: sender
IDs (approved, or a number; the account's default sender), opt-outs (refused alone, failed and
uncharged in a batch), scheduling bounds, and message search with every filter."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import asyncpg
import pytest

from broker.config import Settings
from smsc_sim import SmscSimulator
from tests.harness import (
    Customer,
    SimStack,
    ledger_consistent,
    sim_stack,
)


class Stack(SimStack):
    """The module's gateway, with the helpers its tests speak in."""

    async def approve(self, customer: Customer, sender: str) -> None:
        await self.pool.execute(
            "INSERT INTO sender_ids (account_id, sender_id, purpose, status, decided_at)"
            " VALUES ($1, $2, 'tests', 'approved', now())",
            customer.account_id,
            sender,
        )

    async def opt_out(self, customer: Customer, phone: str) -> None:
        await self.pool.execute(
            "INSERT INTO opt_outs (account_id, phone, source) VALUES ($1, $2, 'api')",
            customer.account_id,
            phone,
        )

    async def rules_expire(self) -> None:
        """A change made behind the API's back (here: SQL; in production: the operator's CLI,
        another process) is seen once the API's one-second memory of the account lapses."""
        await asyncio.sleep(RULES_TTL + 0.1)

    async def stored(self, customer: Customer) -> int:
        count: int = await self.pool.fetchval(
            "SELECT count(*) FROM messages WHERE account_id = $1", customer.account_id
        )
        return count


@pytest.fixture(scope="module")
async def stack(settings: Settings, pool: asyncpg.Pool) -> AsyncIterator[Stack]:
    async with sim_stack(settings, pool, Stack, "checks") as stack:
        yield stack


RULES_TTL = Settings().auth_cache_seconds


def number() -> str:
    return f"+1650253{1000 + uuid.uuid4().int % 9000}"


def submitted_from(sim: SmscSimulator, to: str) -> list[str]:
    return [r.source_addr for r in sim.submitted if r.destination_addr == to.lstrip("+")]


# --- sender IDs ------------------------------------------------------------------------


async def test_an_alphanumeric_sender_must_be_approved(stack: Stack) -> None:
    customer = await stack.customer(credits=10)
    to = number()
    status, body = await stack.send(customer, {"to": to, "body": "hi", "from": "AcmeBank"})
    assert status == 400, body
    assert body["error"]["code"] == "INVALID_SENDER_ID"
    assert body["error"]["field"] == "from"
    # pending or rejected is not approved either
    await stack.pool.execute(
        "INSERT INTO sender_ids (account_id, sender_id, purpose) VALUES ($1, 'AcmeBank', 'x')",
        customer.account_id,
    )
    status, body = await stack.send(customer, {"to": to, "body": "hi", "from": "AcmeBank"})
    assert status == 400 and body["error"]["code"] == "INVALID_SENDER_ID"
    await asyncio.sleep(0.3)
    assert await stack.stored(customer) == 0

    await stack.pool.execute(
        "UPDATE sender_ids SET status = 'approved', decided_at = now() WHERE account_id = $1",
        customer.account_id,
    )
    await stack.rules_expire()
    status, body = await stack.send(customer, {"to": to, "body": "hi", "from": "AcmeBank"})
    assert status == 202, body
    data = await stack.final_webhook(customer, body["messages"][0]["id"])
    assert data["status"] == "delivered" and data["from"] == "AcmeBank"
    assert submitted_from(stack.sim, to) == ["AcmeBank"]


async def test_another_accounts_approval_does_not_count(stack: Stack) -> None:
    owner = await stack.customer(credits=10)
    other = await stack.customer(credits=10)
    await stack.approve(owner, "OwnBrand")
    status, body = await stack.send(other, {"to": number(), "body": "hi", "from": "OwnBrand"})
    assert status == 400 and body["error"]["code"] == "INVALID_SENDER_ID"


async def test_a_number_as_sender_needs_no_registration(stack: Stack) -> None:
    customer = await stack.customer(credits=10)
    to = number()
    status, body = await stack.send(customer, {"to": to, "body": "hi", "from": "+14155550100"})
    assert status == 202, body
    await stack.final_webhook(customer, body["messages"][0]["id"])
    assert submitted_from(stack.sim, to) == ["14155550100"]


async def test_the_default_sender_is_used_without_from(stack: Stack) -> None:
    customer = await stack.customer(credits=10)
    await stack.approve(customer, "Defaulty")
    await stack.pool.execute(
        "UPDATE accounts SET default_sender = 'Defaulty' WHERE id = $1", customer.account_id
    )
    to = number()
    status, body = await stack.send(customer, {"to": to, "body": "hi"})
    assert status == 202, body
    data = await stack.final_webhook(customer, body["messages"][0]["id"])
    assert data["from"] == "Defaulty"
    assert submitted_from(stack.sim, to) == ["Defaulty"]
    # a default whose approval was withdrawn is refused like any unapproved sender
    await stack.pool.execute(
        "UPDATE sender_ids SET status = 'rejected' WHERE account_id = $1", customer.account_id
    )
    await stack.rules_expire()
    status, body = await stack.send(customer, {"to": to, "body": "hi"})
    assert status == 400 and body["error"]["code"] == "INVALID_SENDER_ID"
    assert "default sender" in body["error"]["message"]


# --- opt-outs --------------------------------------------------------------------------


async def test_a_single_opted_out_recipient_is_refused(stack: Stack) -> None:
    customer = await stack.customer(credits=10)
    to = number()
    await stack.opt_out(customer, to)
    local = to.removeprefix("+1")  # the same number written locally is the same person
    for written in (to, local):
        status, body = await stack.send(customer, {"to": written, "body": "hi"})
        assert status == 403, body
        assert body["error"]["code"] == "OPTED_OUT"
    await asyncio.sleep(0.3)
    assert await stack.stored(customer) == 0
    # the opt-out belongs to that account only
    other = await stack.customer(credits=10)
    status, body = await stack.send(other, {"to": to, "body": "hi"})
    assert status == 202, body


async def test_an_opted_out_recipient_in_a_batch_fails_uncharged(stack: Stack) -> None:
    customer = await stack.customer(credits=10)
    refused, fine = number(), number()
    await stack.opt_out(customer, refused)
    status, body = await stack.send(customer, {"to": [refused, fine], "body": "hi"})
    assert status == 202, body
    assert body["estimated_cost"] == 1
    by_to = {m["to"]: m for m in body["messages"]}
    assert by_to[refused]["status"] == "failed"
    assert by_to[fine]["status"] == "queued"

    failed = await stack.final_webhook(customer, by_to[refused]["id"])
    assert failed["status"] == "failed"
    assert failed["error"]["code"] == "OPTED_OUT"
    assert failed["cost"] == 0
    assert (await stack.final_webhook(customer, by_to[fine]["id"]))["status"] == "delivered"
    assert submitted_from(stack.sim, refused) == []
    charges = await stack.pool.fetchval(
        "SELECT count(*) FROM ledger WHERE message_id = $1", uuid.UUID(by_to[refused]["id"])
    )
    assert charges == 0
    assert await ledger_consistent(stack.pool, customer.account_id) == (Decimal(9), Decimal(9))


async def test_an_opt_out_over_the_api_is_honoured_by_the_next_send(stack: Stack) -> None:
    customer = await stack.customer(credits=10)
    to = number()
    status, body = await stack.send(customer, {"to": to, "body": "first"})
    assert status == 202, body
    async with stack.http.post(
        f"{stack.api}/v1/opt-outs", json={"phone": to}, headers=customer.headers
    ) as resp:
        assert resp.status == 201, await resp.text()
    status, body = await stack.send(customer, {"to": to, "body": "second"})
    assert status == 403 and body["error"]["code"] == "OPTED_OUT"
    async with stack.http.delete(f"{stack.api}/v1/opt-outs/{to}", headers=customer.headers) as resp:
        assert resp.status == 204
    status, body = await stack.send(customer, {"to": to, "body": "third"})
    assert status == 202, body


async def test_an_opt_out_made_elsewhere_is_honoured_within_a_second(stack: Stack) -> None:
    customer = await stack.customer(credits=10)
    to = number()
    status, body = await stack.send(customer, {"to": to, "body": "first"})
    assert status == 202, body
    await stack.opt_out(customer, to)  # e.g. a STOP handled by the events worker
    await stack.rules_expire()
    status, body = await stack.send(customer, {"to": to, "body": "second"})
    assert status == 403 and body["error"]["code"] == "OPTED_OUT"


# --- scheduling bounds -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("scheduled_at", "validity"),
    [
        ("2020-01-01T00:00:00Z", None),  # in the past
        ((datetime.now(UTC) + timedelta(days=400)).isoformat(), None),  # over a year ahead
        ("2030-01-01T00:00:00", None),  # no time zone
        ("next tuesday", None),
        (None, 5),  # validity too short
        (None, 10**9),  # too long
        (None, "soon"),
    ],
)
async def test_scheduling_out_of_bounds_is_refused(
    stack: Stack, scheduled_at: str | None, validity: Any
) -> None:
    customer = await stack.customer(credits=10)
    payload: dict[str, Any] = {"to": number(), "body": "hi"}
    if scheduled_at is not None:
        payload["scheduled_at"] = scheduled_at
    if validity is not None:
        payload["validity_period"] = validity
    status, body = await stack.send(customer, payload)
    assert status == 400, body
    expected = "INVALID_SCHEDULE" if scheduled_at is not None else "INVALID_VALIDITY_PERIOD"
    assert body["error"]["code"] == expected
    assert await stack.stored(customer) == 0


async def test_a_scheduled_send_is_stored_scheduled_and_charged(stack: Stack) -> None:
    customer = await stack.customer(credits=10)
    when = datetime.now(UTC) + timedelta(hours=2)
    status, body = await stack.send(
        customer,
        {"to": number(), "body": "later", "scheduled_at": when.isoformat(), "validity_period": 600},
    )
    assert status == 202, body
    [accepted] = body["messages"]
    assert accepted["status"] == "scheduled"
    for _ in range(50):
        status, message = await stack.get(customer, f"/v1/messages/{accepted['id']}")
        if status == 200:
            break
        await asyncio.sleep(0.1)
    assert message["status"] == "scheduled"
    assert datetime.fromisoformat(message["scheduled_at"]) == when.replace(microsecond=0) or abs(
        datetime.fromisoformat(message["scheduled_at"]) - when
    ) < timedelta(milliseconds=1)
    expires = datetime.fromisoformat(message["expires_at"])
    assert abs(expires - (when + timedelta(seconds=600))) < timedelta(milliseconds=1)
    assert message["cost"] == 1
    assert await ledger_consistent(stack.pool, customer.account_id) == (Decimal(9), Decimal(9))


# --- search ----------------------------------------------------------------------------


async def test_search_by_every_filter_with_pagination(stack: Stack) -> None:
    customer = await stack.customer(credits=100)
    alice, bob = number(), number()
    ids: dict[str, list[str]] = {"alice": [], "bob": []}
    for i in range(5):
        for name, to in (("alice", alice), ("bob", bob)):
            status, body = await stack.send(
                customer, {"to": to, "body": f"m{i}", "client_ref": f"{name}-{i % 2}"}
            )
            assert status == 202, body
            ids[name].append(body["messages"][0]["id"])
    status, batch = await stack.send(customer, {"to": [number(), number()], "body": "b"})
    assert status == 202
    everything = [*ids["alice"], *ids["bob"], *(m["id"] for m in batch["messages"])]
    for mid in everything:
        await stack.final_webhook(customer, mid)

    async def all_pages(**params: str) -> list[str]:
        found: list[str] = []
        cursor: str | None = None
        while True:
            query = {**params, "limit": "2", **({"cursor": cursor} if cursor else {})}
            status, page = await stack.get(customer, "/v1/messages", **query)
            assert status == 200, page
            found += [m["id"] for m in page["data"]]
            cursor = page["next_cursor"]
            if cursor is None:
                return found

    newest_first = list(reversed(ids["alice"]))
    assert await all_pages(to=alice) == newest_first
    # a local number is read with the account's region
    assert await all_pages(to=alice.removeprefix("+1")) == newest_first
    assert set(await all_pages(client_ref="bob-0")) == {ids["bob"][i] for i in (0, 2, 4)}
    assert set(await all_pages(batch_id=batch["batch_id"])) == {m["id"] for m in batch["messages"]}
    assert set(await all_pages(status="delivered")) == set(everything)
    assert await all_pages(status="failed") == []
    assert await all_pages(to=alice, client_ref="alice-1") == [ids["alice"][3], ids["alice"][1]]

    rows = await stack.pool.fetch(
        "SELECT id, created_at FROM messages WHERE account_id = $1 ORDER BY created_at",
        customer.account_id,
    )
    middle = rows[len(rows) // 2]["created_at"]
    after = await all_pages(created_after=middle.isoformat())
    before = await all_pages(created_before=middle.isoformat())
    assert {str(r["id"]) for r in rows if r["created_at"] > middle} == set(after)
    assert {str(r["id"]) for r in rows if r["created_at"] < middle} == set(before)

    # another account's search finds none of them
    other = await stack.customer(credits=1)
    status, page = await stack.get(other, "/v1/messages", to=alice)
    assert status == 200 and page["data"] == []


@pytest.mark.parametrize(
    ("param", "value", "code"),
    [
        ("to", "not-a-number", "INVALID_PHONE_NUMBER"),
        ("created_after", "yesterday", "INVALID_INPUT"),
        ("created_before", "2026-01-01T00:00:00", "INVALID_INPUT"),
        ("status", "lost", "INVALID_INPUT"),
    ],
)
async def test_search_with_bad_filters_is_a_400(
    stack: Stack, param: str, value: str, code: str
) -> None:
    customer = await stack.customer(credits=1)
    status, body = await stack.get(customer, "/v1/messages", **{param: value})
    assert status == 400, body
    assert body["error"]["code"] == code


# --- the API's memory of an account's send rules -----------------------------------------


async def test_send_rules_are_remembered_for_the_ttl_and_forgotten_on_demand(
    stack: Stack,
) -> None:
    from api.send_rules import SendRulesCache

    customer = await stack.customer(credits=1)
    to = number()
    cache = SendRulesCache(ttl=60)
    rules = await cache.rules(stack.pool, customer.account_id)
    assert await cache.opted_out(stack.pool, customer.account_id, rules, [to]) == frozenset()
    await stack.opt_out(customer, to)
    await stack.approve(customer, "Remembered")
    again = await cache.rules(stack.pool, customer.account_id)
    assert again is rules  # within the ttl: no query, the old answer
    cache.forget(customer.account_id)
    fresh = await cache.rules(stack.pool, customer.account_id)
    assert fresh.approved_senders == {"Remembered"}
    assert await cache.opted_out(stack.pool, customer.account_id, fresh, [to, number()]) == {to}
    assert (await SendRulesCache(ttl=0).rules(stack.pool, customer.account_id)) == fresh


async def test_an_account_with_many_opt_outs_is_asked_per_request(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    from api.send_rules import SendRulesCache
    from broker.store import send_checks

    monkeypatch.setattr(send_checks, "SNAPSHOT_OPT_OUTS", 2)
    customer = await stack.customer(credits=1)
    refused = [f"+1650253{1000 + i}" for i in range(3)]
    for phone in refused:
        await stack.opt_out(customer, phone)
    cache = SendRulesCache(ttl=60)
    rules = await cache.rules(stack.pool, customer.account_id)
    assert rules.opted_out is None  # too many to keep: asked about the recipients instead
    found = await cache.opted_out(
        stack.pool, customer.account_id, rules, [refused[0], "+16502539999"]
    )
    assert found == {refused[0]}
