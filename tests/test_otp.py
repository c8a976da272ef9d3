"""OTP end to end on real services: POST /v1/otp sends the code to the simulated carrier and
nowhere else (no table, log or webhook holds it), POST /v1/otp/verify checks it once, refuses
it after expiry and after 5 wrong codes, counts parallel guesses exactly; 5 codes per number
per 10 minutes; the SMS is charged like any message; another account sees nothing."""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import asyncpg
import pytest
from structlog.testing import capture_logs

from broker.config import Settings
from tests.harness import (
    Customer,
    SimStack,
    ledger_consistent,
    sim_stack,
)


class Stack(SimStack):
    """The module's gateway, with the helpers its tests speak in."""

    async def post(
        self, customer: Customer, path: str, payload: Any
    ) -> tuple[int, Any, dict[str, str]]:
        async with self.http.post(
            f"{self.api}{path}", json=payload, headers=customer.headers
        ) as resp:
            return resp.status, await resp.json(), dict(resp.headers)

    async def send(self, customer: Customer, payload: dict[str, Any]) -> dict[str, Any]:
        status, body, _ = await self.post(customer, "/v1/otp", payload)
        assert status == 202, body
        result: dict[str, Any] = body
        return result

    async def verify(self, customer: Customer, payload: dict[str, Any]) -> dict[str, Any]:
        status, body, _ = await self.post(customer, "/v1/otp/verify", payload)
        assert status == 200, body
        result: dict[str, Any] = body
        return result


@pytest.fixture(scope="module")
async def stack(settings: Settings, pool: asyncpg.Pool) -> AsyncIterator[Stack]:
    async with sim_stack(settings, pool, Stack, "otp") as stack:
        yield stack


def number() -> str:
    """A valid US number clear of the simulator's outcome rules (0013, 0666, 0777)."""
    return f"+1650253{1000 + uuid.uuid4().int % 9000}"


async def _texts_holding(pool: asyncpg.Pool, needle: str) -> list[str]:
    """Every column of every table of the database that holds ``needle``: text, varchar,
    json(b) and arrays as text, bytea as bytes."""
    columns = await pool.fetch(
        "SELECT c.table_name, c.column_name, c.data_type FROM information_schema.columns c"
        " JOIN information_schema.tables t USING (table_schema, table_name)"
        " WHERE c.table_schema = 'public' AND t.table_type = 'BASE TABLE' AND c.data_type IN"
        " ('text', 'character varying', 'character', 'json', 'jsonb', 'ARRAY', 'bytea')"
    )
    assert {(c["table_name"], c["column_name"]) for c in columns} >= {
        ("messages", "body"),
        ("message_events", "detail"),
        ("otps", "code_hash"),
        ("webhook_attempts", "error"),
    }
    hits = []
    for c in columns:
        table, column = c["table_name"], c["column_name"]
        if c["data_type"] == "bytea":
            where = f"position(convert_to($1, 'UTF8') in \"{column}\") > 0"
        else:
            where = f'strpos("{column}"::text, $1) > 0'
        if await pool.fetchval(f'SELECT count(*) FROM "{table}" WHERE {where}', needle):
            hits.append(f"{table}.{column}")
    return hits


async def test_code_reaches_only_the_carrier_and_verifies_once(stack: Stack) -> None:
    customer = await stack.customer(credits=10)
    to = number()
    with capture_logs() as logs:
        sent = await stack.send(
            customer,
            # The code first: the carrier's receipt quotes the first 20 characters back.
            {"to": to, "length": 9, "expiry_minutes": 5, "message": "##OTP## is your code"},
        )
        plain = await stack.carrier_text(to)
        final = await stack.final_webhook(customer, sent["message_id"])
        # Every status of the message has been posted (and logged) by now.
        await stack.receiver.wait_for(
            lambda r: r.path == customer.path and r.json["data"].get("id") == sent["message_id"],
            count=1,
        )
    assert sent["to"] == to and sent["status"] == "queued"
    assert sent["encoding"] == "GSM7" and sent["segments"] == 1 and sent["estimated_cost"] == 1
    match = re.fullmatch(r"([0-9]{9}) is your code", plain)
    assert match is not None, plain
    code = match.group(1)
    assert final["status"] == "delivered"

    row = await stack.pool.fetchrow(
        "SELECT body, encoding, segments, cost, status FROM messages WHERE id = $1",
        uuid.UUID(sent["message_id"]),
    )
    assert row is not None
    assert row["body"] == "********* is your code"
    assert (row["encoding"], row["segments"], row["cost"]) == ("GSM7", 1, Decimal(1))
    otp_row = await stack.pool.fetchrow(
        "SELECT message_id, to_number, attempts, verified_at, expires_at - created_at AS ttl"
        " FROM otps WHERE id = $1",
        uuid.UUID(sent["id"]),
    )
    assert otp_row is not None
    assert str(otp_row["message_id"]) == sent["message_id"] and otp_row["to_number"] == to
    assert otp_row["ttl"].total_seconds() == 300 and otp_row["verified_at"] is None

    # Nowhere but the carrier: no table, no webhook, no log line.
    assert await _texts_holding(stack.pool, code) == []
    hooks = [r for r in stack.receiver.received if r.path == customer.path]
    assert hooks and all(code.encode() not in r.body for r in hooks)
    assert any(e.get("event") == "otp_sent" for e in logs), "logs were not captured"
    assert all(code not in json.dumps(e, default=str) for e in logs)

    # Charged like any message.
    assert await ledger_consistent(stack.pool, customer.account_id) == (Decimal(9), Decimal(9))

    with capture_logs() as logs:
        first = await stack.verify(customer, {"id": sent["id"], "code": code})
        again = await stack.verify(customer, {"id": sent["id"], "code": code})
        by_number = await stack.verify(customer, {"to": to, "code": code})
    assert first == {"valid": True, "id": sent["id"], "to": to, "status": "verified"}
    assert again == {"valid": False, "id": sent["id"], "to": to, "status": "already_used"}
    assert by_number == again
    assert all(code not in json.dumps(e, default=str) for e in logs)
    assert await _texts_holding(stack.pool, code) == []


async def test_verify_by_number_takes_its_newest_code(stack: Stack) -> None:
    customer = await stack.customer(credits=10)
    to = number()
    first = await stack.send(customer, {"to": to, "length": 4, "message": "Code: ##OTP##"})
    first_code = (await stack.carrier_text(to)).removeprefix("Code: ")
    second = await stack.send(customer, {"to": to, "message": "Votre code: {{code}}."})
    text = await stack.carrier_text(to)
    while text.startswith("Code: "):
        text = await stack.carrier_text(to)
    second_code = re.fullmatch(r"Votre code: ([0-9]{6})\.", text)
    assert second_code is not None and len(first_code) == 4

    wrong = await stack.verify(customer, {"to": to, "code": first_code})
    assert wrong == {"valid": False, "id": second["id"], "to": to, "status": "invalid_code"}
    ok = await stack.verify(customer, {"to": to, "code": second_code.group(1)})
    assert ok["valid"] and ok["id"] == second["id"]
    # The second is used now: the number's newest unverified code is the first.
    older = await stack.verify(customer, {"to": to, "code": first_code})
    assert older == {"valid": True, "id": first["id"], "to": to, "status": "verified"}
    # A code sent as a JSON number (leading zeros lost) is read as its digits.
    third = await stack.send(customer, {"to": to, "length": 4})
    code3 = (await _next_text(stack, to, f"{first_code}|{second_code.group(1)}"))[-4:]
    numeric = await stack.verify(customer, {"id": third["id"], "code": int(code3)})
    assert numeric["valid"], (code3, numeric)


async def _next_text(stack: Stack, to: str, old: str) -> str:
    for _ in range(200):
        text = await stack.carrier_text(to)
        if not re.search(old, text):
            return text
        await asyncio.sleep(0.05)
    raise AssertionError("no new text reached the carrier")


async def _sent_code(stack: Stack, customer: Customer, to: str) -> tuple[str, str]:
    sent = await stack.send(customer, {"to": to, "message": "{{code}}"})
    return sent["id"], await stack.carrier_text(to)


async def test_expired_code_does_not_verify(stack: Stack) -> None:
    customer = await stack.customer(credits=10)
    otp_id, code = await _sent_code(stack, customer, number())
    await stack.pool.execute(
        "UPDATE otps SET expires_at = now() - interval '1 second' WHERE id = $1",
        uuid.UUID(otp_id),
    )
    answer = await stack.verify(customer, {"id": otp_id, "code": code})
    assert answer["valid"] is False and answer["status"] == "expired"
    attempts = await stack.pool.fetchval(
        "SELECT attempts FROM otps WHERE id = $1", uuid.UUID(otp_id)
    )
    assert attempts == 0


def _wrong(code: str) -> str:
    return f"{(int(code) + 1) % 10 ** len(code):0{len(code)}d}"


async def test_five_wrong_codes_then_even_the_right_one_fails(stack: Stack) -> None:
    customer = await stack.customer(credits=10)
    to = number()
    otp_id, code = await _sent_code(stack, customer, to)
    for _ in range(5):
        answer = await stack.verify(customer, {"to": to, "code": _wrong(code)})
        assert answer == {"valid": False, "id": otp_id, "to": to, "status": "invalid_code"}
    for target in ({"id": otp_id}, {"to": to}):
        answer = await stack.verify(customer, {**target, "code": code})
        assert answer == {"valid": False, "id": otp_id, "to": to, "status": "too_many_attempts"}
    row = await stack.pool.fetchrow(
        "SELECT attempts, verified_at FROM otps WHERE id = $1", uuid.UUID(otp_id)
    )
    assert row is not None and row["attempts"] == 5 and row["verified_at"] is None


async def test_parallel_guesses_are_counted_one_by_one(stack: Stack) -> None:
    customer = await stack.customer(credits=10)
    otp_id, code = await _sent_code(stack, customer, number())
    wrong = _wrong(code)
    answers = await asyncio.gather(
        *(stack.verify(customer, {"id": otp_id, "code": wrong}) for _ in range(12))
    )
    statuses = sorted(a["status"] for a in answers)
    assert statuses == ["invalid_code"] * 5 + ["too_many_attempts"] * 7
    assert (
        await stack.pool.fetchval("SELECT attempts FROM otps WHERE id = $1", uuid.UUID(otp_id)) == 5
    )
    # Parallel right codes: exactly one verifies.
    otp_id, code = await _sent_code(stack, customer, number())
    answers = await asyncio.gather(
        *(stack.verify(customer, {"id": otp_id, "code": code}) for _ in range(6))
    )
    assert sorted(a["status"] for a in answers) == ["already_used"] * 5 + ["verified"]


async def test_sixth_code_to_a_number_within_ten_minutes_is_refused(stack: Stack) -> None:
    customer = await stack.customer(credits=20)
    to = number()
    for _ in range(5):
        await stack.send(customer, {"to": to})
    status, body, headers = await stack.post(customer, "/v1/otp", {"to": to})
    assert status == 429, body
    assert body["error"]["code"] == "RATE_LIMIT_EXCEEDED"
    assert 590 <= body["error"]["retry_after"] <= 600
    assert headers["Retry-After"] == str(body["error"]["retry_after"])
    assert await _otps(stack, customer, to) == 5
    await _wait_messages(stack, customer, 5)
    # Another number, or the same number for another account, is not limited.
    await stack.send(customer, {"to": number()})
    other = await stack.customer(credits=5)
    await stack.send(other, {"to": to})
    # The oldest send leaves the window: one more is allowed.
    await stack.pool.execute(
        "UPDATE otps SET created_at = created_at - interval '10 minutes' WHERE id = ("
        " SELECT id FROM otps WHERE account_id = $1 AND to_number = $2"
        " ORDER BY created_at LIMIT 1)",
        customer.account_id,
        to,
    )
    await stack.send(customer, {"to": to})


async def test_parallel_sends_to_one_number_stop_at_five(stack: Stack) -> None:
    customer = await stack.customer(credits=20)
    to = number()
    answers = await asyncio.gather(*(stack.post(customer, "/v1/otp", {"to": to}) for _ in range(9)))
    assert sorted(status for status, _, _ in answers) == [202] * 5 + [429] * 4
    assert await _otps(stack, customer, to) == 5


async def _otps(stack: Stack, customer: Customer, to: str | None = None) -> int:
    n: int = await stack.pool.fetchval(
        "SELECT count(*) FROM otps WHERE account_id = $1 AND ($2::text IS NULL OR to_number = $2)",
        customer.account_id,
        to,
    )
    return n


async def _messages(stack: Stack, customer: Customer) -> int:
    n: int = await stack.pool.fetchval(
        "SELECT count(*) FROM messages WHERE account_id = $1", customer.account_id
    )
    return n


async def _wait_messages(stack: Stack, customer: Customer, n: int) -> None:
    """The charge worker stores accepted messages shortly after the 202; then no more come."""
    for _ in range(200):
        if await _messages(stack, customer) >= n:
            break
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.3)
    assert await _messages(stack, customer) == n


async def test_another_account_learns_nothing_and_costs_no_attempt(stack: Stack) -> None:
    owner = await stack.customer(credits=10)
    stranger = await stack.customer(credits=10)
    to = number()
    otp_id, code = await _sent_code(stack, owner, to)
    not_found = {"valid": False, "id": None, "to": None, "status": "not_found"}
    for _ in range(6):
        assert await stack.verify(stranger, {"id": otp_id, "code": code}) == not_found
        assert await stack.verify(stranger, {"to": to, "code": code}) == not_found
    assert await stack.verify(owner, {"id": str(uuid.uuid4()), "code": code}) == not_found
    # `to` and `id` together must name the same OTP.
    assert await stack.verify(owner, {"id": otp_id, "to": number(), "code": code}) == not_found
    answer = await stack.verify(owner, {"id": otp_id, "to": to, "code": code})
    assert answer["valid"] is True


@pytest.mark.parametrize(
    ("payload", "code"),
    [
        ({"to": "+16502531234", "message": "no placeholder"}, "MISSING_CODE_PLACEHOLDER"),
        ({"to": "+16502531234", "message": "{{code}} {{code}}"}, "INVALID_OTP_MESSAGE"),
        ({"to": "+16502531234", "length": 3}, "INVALID_OTP_LENGTH"),
        ({"to": "+16502531234", "length": 10}, "INVALID_OTP_LENGTH"),
        ({"to": "+16502531234", "expiry_minutes": 0}, "INVALID_OTP_EXPIRY"),
        ({"to": "not a number"}, "INVALID_PHONE_NUMBER"),
        ({"to": "+16502531234,+16502531235"}, "INVALID_PHONE_NUMBER"),
        ({}, "MISSING_RECIPIENT"),
        ({"to": "+16502531234", "from": "NotApproved"}, "INVALID_SENDER_ID"),
    ],
)
async def test_bad_send_is_refused_and_changes_nothing(
    stack: Stack, payload: dict[str, Any], code: str
) -> None:
    customer = await stack.customer(credits=10)
    status, body, _ = await stack.post(customer, "/v1/otp", payload)
    assert status == 400, body
    assert body["error"]["code"] == code
    assert await _otps(stack, customer) == 0
    assert await _messages(stack, customer) == 0
    assert await ledger_consistent(stack.pool, customer.account_id) == (Decimal(10), Decimal(10))


async def test_send_without_credit_is_refused_and_stores_no_code(stack: Stack) -> None:
    customer = await stack.customer(credits=0)
    status, body, _ = await stack.post(customer, "/v1/otp", {"to": number()})
    assert status == 402, body
    assert await _otps(stack, customer) == 0


@pytest.mark.parametrize(
    ("payload", "code"),
    [
        ({"code": "123456"}, "MISSING_RECIPIENT"),
        ({"to": "+16502531234"}, "MISSING_CODE"),
        ({"to": "+16502531234", "code": "12ab"}, "INVALID_CODE"),
        ({"id": "not-a-uuid", "code": "1234"}, "INVALID_ID"),
    ],
)
async def test_bad_verify_is_refused(stack: Stack, payload: dict[str, Any], code: str) -> None:
    customer = await stack.customer(credits=1)
    status, body, _ = await stack.post(customer, "/v1/otp/verify", payload)
    assert status == 400, body
    assert body["error"]["code"] == code
