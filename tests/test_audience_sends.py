"""Sending to contacts, groups and templates end to end: personal texts checked at the simulated
carrier, group sends made in the request and in the background (progress, credits running out),
and the dry run. The expand worker's kill -9 is in tests/test_faults_expand.py."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import asyncpg
import pytest

from broker.config import Settings
from broker.segmentation import decode_short_message
from smsc_sim.records import SubmitRecord
from tests.harness import Customer, SimStack, sim_stack, with_settings

#: Sends to groups larger than this are made by the expand worker in these tests.
SMALL = 5


def number(i: int) -> str:
    """Distinct valid US numbers (555-01xx fictional block is too small; use 650-253-xxxx)."""
    return f"+1650253{1000 + i:04d}"


class Stack(SimStack):
    async def contact(self, who: Customer, phone: str, **attrs: Any) -> uuid.UUID:
        fields = attrs.pop("fields", {})
        cid: uuid.UUID = await self.pool.fetchval(
            "INSERT INTO contacts (account_id, phone, first_name, last_name, email, fields)"
            " VALUES ($1, $2, $3, $4, $5, $6::jsonb) RETURNING id",
            who.account_id,
            phone,
            attrs.get("first_name"),
            attrs.get("last_name"),
            attrs.get("email"),
            json.dumps(fields),
        )
        return cid

    async def group(self, who: Customer, contacts: list[uuid.UUID]) -> uuid.UUID:
        gid: uuid.UUID = await self.pool.fetchval(
            "INSERT INTO contact_groups (account_id, name) VALUES ($1, $2) RETURNING id",
            who.account_id,
            f"g-{uuid.uuid4().hex[:8]}",
        )
        await self.pool.execute(
            "INSERT INTO group_members (account_id, group_id, contact_id)"
            " SELECT $1, $2, unnest($3::uuid[])",
            who.account_id,
            gid,
            contacts,
        )
        return gid

    async def template(self, who: Customer, body: str) -> uuid.UUID:
        tid: uuid.UUID = await self.pool.fetchval(
            "INSERT INTO templates (account_id, name, body) VALUES ($1, $2, $3) RETURNING id",
            who.account_id,
            f"t-{uuid.uuid4().hex[:8]}",
            body,
        )
        return tid

    async def post(self, who: Customer, path: str, payload: dict[str, Any]) -> tuple[int, Any]:
        async with self.http.post(f"{self.api}{path}", json=payload, headers=who.headers) as r:
            return r.status, await r.json()

    async def made(self, batch: uuid.UUID, count: int) -> list[asyncpg.Record]:
        """The batch's messages once ``count`` of them exist."""
        deadline = time.monotonic() + 10
        while True:
            rows = await self.pool.fetch(
                "SELECT status, cost FROM messages WHERE batch_id = $1", batch
            )
            if len(rows) >= count:
                return rows
            assert time.monotonic() < deadline, len(rows)
            await asyncio.sleep(0.05)

    async def finals(self, batch_id: str, total: int, within: float = 60.0) -> dict[str, int]:
        """The batch's statuses once every message is final (and the expansion done)."""
        deadline = time.monotonic() + within
        while True:
            rows = await self.pool.fetch(
                "SELECT status, count(*) AS n FROM messages WHERE batch_id = $1 GROUP BY status",
                uuid.UUID(batch_id),
            )
            counts = {r["status"]: r["n"] for r in rows}
            done = sum(n for s, n in counts.items() if s in {"delivered", "failed", "undelivered"})
            if done >= total:
                return counts
            assert time.monotonic() < deadline, counts
            await asyncio.sleep(0.2)

    def texts_to(self, phones: set[str]) -> dict[str, list[tuple[str, int]]]:
        """Per number, each part the carrier got: (text, data_coding)."""
        out: dict[str, list[tuple[str, int]]] = {}
        for r in list(self.sim.submitted):
            to = "+" + r.destination_addr
            if to in phones:
                out.setdefault(to, []).append((text_of(r), r.data_coding))
        return out


def text_of(record: SubmitRecord) -> str:
    return decode_short_message(
        record.short_message, record.data_coding, udhi=bool(record.esm_class & 0x40)
    ).text


@pytest.fixture(scope="module")
async def stack(settings: Settings, pool: asyncpg.Pool) -> AsyncIterator[Stack]:
    small = with_settings(settings, max_recipients=SMALL)
    async with sim_stack(small, pool, Stack, "aud") as s:
        yield s


async def test_template_send_gives_each_contact_its_own_text(stack: Stack) -> None:
    """Two contacts, one template: two texts, one GSM 03.38 in one part and one UCS-2 in two,
    each as the carrier received it, each priced by its own parts."""
    alice = await stack.customer(credits=50)
    a, b = number(1), number(2)
    await stack.contact(alice, a, first_name="Ann", fields={"plan": "gold"})
    await stack.contact(
        alice, b, first_name="Bartholomew", fields={"plan": "свет, тепло и вода навсегда"}
    )
    tid = await stack.template(alice, "Hi {{first_name}}, your {{plan}} plan renews {{date}}.")
    status, body = await stack.send(
        alice, {"to": [a, b], "template_id": str(tid), "variables": {"date": "on 1 May 2027"}}
    )
    assert status == 202, body
    by_to = {m["to"]: m for m in body["messages"]}
    assert (by_to[a]["encoding"], by_to[a]["segments"]) == ("GSM7", 1)
    assert (by_to[b]["encoding"], by_to[b]["segments"]) == ("UCS2", 2)
    assert body["estimated_cost"] == 3
    await stack.finals(body["batch_id"], 2)
    got = stack.texts_to({a, b})
    texts = {
        a: "Hi Ann, your gold plan renews on 1 May 2027.",
        b: "Hi Bartholomew, your свет, тепло и вода навсегда plan renews on 1 May 2027.",
    }
    assert [t for t, _ in got[a]] == [texts[a]] and got[a][0][1] == 0x00
    assert "".join(t for t, _ in got[b]) == texts[b]
    assert [dc for _, dc in got[b]] == [0x08, 0x08]
    stored = {
        r["to_number"]: (r["body"], r["segments"], r["cost"])
        for r in await stack.pool.fetch(
            "SELECT to_number, body, segments, cost FROM messages WHERE batch_id = $1",
            uuid.UUID(body["batch_id"]),
        )
    }
    assert stored == {a: (texts[a], 1, Decimal(1)), b: (texts[b], 2, Decimal(2))}


async def test_a_missing_variable_is_a_400_naming_it(stack: Stack) -> None:
    alice = await stack.customer(credits=50)
    tid = await stack.template(alice, "Your code is {{code}}")
    status, body = await stack.send(alice, {"to": number(3), "template_id": str(tid)})
    assert status == 400, body
    assert body["error"]["code"] == "MISSING_VARIABLE"
    assert "code" in body["error"]["message"]
    assert (
        await stack.pool.fetchval(
            "SELECT count(*) FROM messages WHERE account_id = $1", alice.account_id
        )
        == 0
    )


async def test_unknown_template_or_group_is_404(stack: Stack) -> None:
    alice, bob = await stack.customer(), await stack.customer()
    bobs = await stack.template(bob, "hello")
    status, body = await stack.send(alice, {"to": number(4), "template_id": str(bobs)})
    assert status == 404, body
    bob_group = await stack.group(bob, [await stack.contact(bob, number(5))])
    status, body = await stack.send(alice, {"group_ids": [str(bob_group)], "body": "x"})
    assert status == 404, body


async def test_small_group_send_merges_to_and_members_once(stack: Stack) -> None:
    alice = await stack.customer(credits=50)
    phones = [number(10 + i) for i in range(3)]
    ids = [await stack.contact(alice, p) for p in phones]
    g1 = await stack.group(alice, ids[:2])
    g2 = await stack.group(alice, ids[1:])
    status, body = await stack.send(
        alice, {"to": [phones[0]], "group_ids": [str(g1), str(g2)], "body": "team news"}
    )
    assert status == 202, body
    assert sorted(m["to"] for m in body["messages"]) == sorted(phones)
    assert body["recipients"] == 3


async def _group_of(
    stack: Stack, who: Customer, count: int, start: int
) -> tuple[uuid.UUID, list[str]]:
    phones = [number(start + i) for i in range(count)]
    ids = [
        await stack.contact(who, p, first_name=f"N{i}", fields={"n": str(i)})
        for i, p in enumerate(phones)
    ]
    return await stack.group(who, ids), phones


async def test_large_group_send_is_made_in_the_background(stack: Stack) -> None:
    """12 members plus two numbers in `to` (one of them a member): 13 messages, each number
    once, texts from each contact (the send's variables for the number that is none), the
    member who opted out failed uncharged."""
    alice = await stack.customer(credits=100)
    gid, phones = await _group_of(stack, alice, 12, 100)
    stranger = number(199)
    await stack.pool.execute(
        "INSERT INTO opt_outs (account_id, phone, source) VALUES ($1, $2, 'api')",
        alice.account_id,
        phones[5],
    )
    tid = await stack.template(alice, "Hello {{first_name}} #{{n}}")
    status, body = await stack.send(
        alice,
        {
            "to": [phones[0], stranger],
            "group_ids": [str(gid)],
            "template_id": str(tid),
            "variables": {"first_name": "friend", "n": "0"},
        },
    )
    assert status == 202, body
    assert body["messages"] == [] and body["recipients"] == 13
    assert body["estimated_cost"] is None
    counts = await stack.finals(body["batch_id"], 13)
    assert counts == {"delivered": 12, "failed": 1}
    status, batch = await stack.get(alice, f"/v1/batches/{body['batch_id']}")
    assert status == 200
    assert batch["total"] == 13 and batch["expanded"] == 13 and batch["expanding"] is False
    assert batch["cost"] == 12
    got = stack.texts_to({*phones, stranger})
    expected = {p: [f"Hello N{i} #{i}"] for i, p in enumerate(phones) if i != 5}
    assert {p: [t for t, _ in parts] for p, parts in got.items()} == {
        **expected,
        stranger: ["Hello friend #0"],
    }
    refused = await stack.pool.fetchrow(
        "SELECT status, error_code, cost FROM messages WHERE batch_id = $1 AND to_number = $2",
        uuid.UUID(body["batch_id"]),
        phones[5],
    )
    assert tuple(refused) == ("failed", "OPTED_OUT", Decimal(0))


async def test_a_member_without_a_value_fails_the_whole_send_up_front(stack: Stack) -> None:
    alice = await stack.customer(credits=100)
    gid, phones = await _group_of(stack, alice, 8, 400)
    await stack.pool.execute(
        "UPDATE contacts SET first_name = NULL WHERE account_id = $1 AND phone = ANY($2::text[])",
        alice.account_id,
        phones[2:4],
    )
    tid = await stack.template(alice, "Hello {{first_name}}")
    status, body = await stack.send(alice, {"group_ids": [str(gid)], "template_id": str(tid)})
    assert status == 400, body
    assert body["error"]["code"] == "MISSING_VARIABLE"
    assert "first_name" in body["error"]["message"] and "2 recipients" in body["error"]["message"]
    assert (
        await stack.pool.fetchval(
            "SELECT count(*) FROM batches WHERE account_id = $1", alice.account_id
        )
        == 0
    )


async def test_a_scheduled_group_send_is_charged_now_and_sent_when_due(stack: Stack) -> None:
    alice = await stack.customer(credits=100)
    gid, phones = await _group_of(stack, alice, 7, 500)
    when = datetime.now(UTC) + timedelta(seconds=3)
    status, body = await stack.send(
        alice, {"group_ids": [str(gid)], "body": "sale", "scheduled_at": when.isoformat()}
    )
    assert status == 202, body
    batch = uuid.UUID(body["batch_id"])
    made = await stack.made(batch, 7)
    assert datetime.now(UTC) < when, "expanding took too long to test the schedule"
    assert {(r["status"], r["cost"]) for r in made} == {("scheduled", Decimal(1))}
    counts = await stack.finals(body["batch_id"], 7)
    assert counts == {"delivered": 7}
    sent = [r for r in list(stack.sim.submitted) if "+" + r.destination_addr in phones]
    assert len(sent) == 7 and min(r.submitted_at for r in sent) >= when.timestamp() - 0.05


async def test_group_send_stops_charging_when_credits_run_out(stack: Stack) -> None:
    alice = await stack.customer(credits=7)
    gid, _ = await _group_of(stack, alice, 10, 200)
    status, body = await stack.send(alice, {"group_ids": [str(gid)], "body": "promo"})
    assert status == 202, body
    counts = await stack.finals(body["batch_id"], 10)
    assert counts == {"delivered": 7, "failed": 3}
    failed = await stack.pool.fetch(
        "SELECT error_code, cost FROM messages WHERE batch_id = $1 AND status = 'failed'",
        uuid.UUID(body["batch_id"]),
    )
    assert {(r["error_code"], r["cost"]) for r in failed} == {("INSUFFICIENT_CREDITS", Decimal(0))}
    balance = await stack.pool.fetchval(
        "SELECT balance FROM accounts WHERE id = $1", alice.account_id
    )
    assert balance == 0


async def test_preview_prices_every_recipient_and_sends_nothing(stack: Stack) -> None:
    alice = await stack.customer(credits=100)
    gid, phones = await _group_of(stack, alice, 8, 300)
    tid = await stack.template(alice, "Hi {{first_name}} {{tail}}")
    status, body = await stack.post(
        alice,
        "/v1/messages/preview",
        {"group_ids": [str(gid)], "template_id": str(tid), "variables": {"tail": "€"}},
    )
    assert status == 200, body
    assert body["recipients"] == 8 and body["segments"] == 8 and body["cost"] == 8
    first = body["messages"][0]
    assert first["to"] == phones[0] and first["text"] == "Hi N0 €"
    assert first["encoding"] == "GSM7" and first["status"] == "ready"
    assert (
        await stack.pool.fetchval(
            "SELECT count(*) FROM messages WHERE account_id = $1", alice.account_id
        )
        == 0
    )
