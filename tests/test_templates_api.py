"""Templates end to end over the real API (real keys, real database): create, list, read,
change, delete, and the preview of one recipient's text (its contact's values, its encoding,
its parts and its price on the route its number takes), for one account and never another's."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from datetime import datetime
from decimal import Decimal
from typing import Any

import asyncpg
import pytest

from broker import accounts
from broker.config import Settings
from tests.harness import ApiAccount, Client, add_connector, api_account, api_call, api_client

#: A route of this module's own (a longer prefix than any default route of other modules).
PREFIX = "1650253"
PRICE = Decimal("0.05")
ROUTED = "+16502530001"
#: A number no route of this module carries (another module may have a default route).
UNROUTED = "+4741234567"
FIELDS = {"id", "name", "body", "variables", "created_at", "updated_at"}


@pytest.fixture(scope="module")
async def route(pool: asyncpg.Pool) -> AsyncIterator[str]:
    """A connector with a priced route for PREFIX, made before the API first reads routes,
    and taken away afterwards (later modules send to numbers under PREFIX)."""
    name = f"tpl-{uuid.uuid4().hex[:6]}"
    await add_connector(pool, name, 1)
    async with pool.acquire() as conn:
        await accounts.add_route(conn, PREFIX, name, PRICE)
    yield name
    await pool.execute("DELETE FROM routes WHERE connector = $1", name)
    await pool.execute("UPDATE connectors SET enabled = false WHERE name = $1", name)


@pytest.fixture(scope="module")
async def client(settings: Settings, route: str) -> AsyncIterator[Client]:
    async with api_client(settings) as c:
        yield c


async def create(client: Client, who: ApiAccount, name: str, body: str) -> Any:
    status, created = await api_call(
        client, "POST", "/v1/templates", who, json={"name": name, "body": body}
    )
    assert status == 201, created
    return created


async def stored(pool: asyncpg.Pool, who: ApiAccount) -> list[tuple[str, str]]:
    rows = await pool.fetch(
        "SELECT name, body FROM templates WHERE account_id = $1 ORDER BY created_at, id", who.id
    )
    return [(r["name"], r["body"]) for r in rows]


async def add_contact(
    pool: asyncpg.Pool, who: ApiAccount, phone: str, first: str | None, **fields: str
) -> None:
    await pool.execute(
        "INSERT INTO contacts (account_id, phone, first_name, fields)"
        " VALUES ($1, $2, $3, $4::jsonb)",
        who.id,
        phone,
        first,
        json.dumps(fields),
    )


async def preview(
    client: Client, who: ApiAccount, template_id: str, to: str, **variables: Any
) -> tuple[int, Any]:
    return await api_call(
        client,
        "POST",
        f"/v1/templates/{template_id}/preview",
        who,
        json={"to": to, "variables": variables},
    )


def error(body: Any) -> tuple[str, str | None]:
    return body["error"]["code"], body["error"].get("field")


# --- create and read -----------------------------------------------------------------------


async def test_create_answers_the_template_with_its_variables(
    client: Client, pool: asyncpg.Pool
) -> None:
    who = await api_account(pool)
    body = "Hi {{ first_name }}, order {{order}} ships {{day}}. {{first_name}}, reply STOP to end"
    created = await create(client, who, "  Order shipped  ", body)
    assert set(created) == FIELDS
    uuid.UUID(created["id"])
    assert created["name"] == "Order shipped"  # trimmed
    assert created["body"] == body  # stored as written
    assert created["variables"] == ["first_name", "order", "day"]
    assert created["created_at"] == created["updated_at"]
    assert await stored(pool, who) == [("Order shipped", body)]

    status, read = await api_call(client, "GET", f"/v1/templates/{created['id']}", who)
    assert (status, read) == (200, created)


async def test_a_name_the_account_has_answers_409_and_changes_nothing(
    client: Client, pool: asyncpg.Pool
) -> None:
    who, other = await api_account(pool), await api_account(pool)
    await create(client, who, "Welcome", "Hello {{name}}")
    status, body = await api_call(
        client, "POST", "/v1/templates", who, json={"name": " Welcome ", "body": "Other"}
    )
    assert status == 409 and error(body)[0] == "TEMPLATE_EXISTS"
    assert "Welcome" in body["error"]["message"]
    assert await stored(pool, who) == [("Welcome", "Hello {{name}}")]
    # Names are unique per account only.
    await create(client, other, "Welcome", "Hi")
    assert await stored(pool, other) == [("Welcome", "Hi")]


@pytest.mark.parametrize(
    ("payload", "code", "field"),
    [
        ({"name": "t", "body": "Hi {{first_name}"}, "INVALID_TEMPLATE", "body"),
        ({"name": "t", "body": "Hi }} there"}, "INVALID_TEMPLATE", "body"),
        ({"name": "t", "body": "{{first name}}"}, "INVALID_TEMPLATE", "body"),
        ({"name": "t", "body": 123}, "INVALID_TEMPLATE", "body"),
        ({"name": "t", "body": ""}, "EMPTY_BODY", "body"),
        ({"name": "t"}, "EMPTY_BODY", "body"),
        ({"name": "t", "body": "x" * 1601}, "BODY_TOO_LONG", "body"),
        ({"name": "t", "body": "nul \u0000"}, "INVALID_CHARACTER", "body"),
        ({"name": "   ", "body": "x"}, "INVALID_NAME", "name"),
        ({"name": "n" * 101, "body": "x"}, "INVALID_NAME", "name"),
        ({"body": "x"}, "INVALID_NAME", "name"),
        ({"name": ["t"], "body": "x"}, "INVALID_NAME", "name"),
    ],
)
async def test_invalid_template_is_refused_with_its_code_and_field(
    client: Client, pool: asyncpg.Pool, payload: dict[str, Any], code: str, field: str
) -> None:
    who = await api_account(pool)
    status, body = await api_call(client, "POST", "/v1/templates", who, json=payload)
    assert status == 400, body
    assert error(body) == (code, field)
    assert await stored(pool, who) == []


async def test_longest_body_and_name_are_taken(client: Client, pool: asyncpg.Pool) -> None:
    who = await api_account(pool)
    created = await create(client, who, "n" * 100, "{{x}}" + "y" * 1595)
    assert len(created["body"]) == 1600 and created["variables"] == ["x"]


async def test_not_json_is_refused(client: Client, pool: asyncpg.Pool) -> None:
    who = await api_account(pool)
    status, body = await api_call(
        client,
        "POST",
        "/v1/templates",
        who,
        data=b"{not json",
        headers={**who.headers, "Content-Type": "application/json"},
    )
    assert status == 400 and error(body)[0] == "INVALID_JSON"
    assert await stored(pool, who) == []


# --- list ----------------------------------------------------------------------------------


async def test_list_is_newest_first_in_pages_and_only_the_accounts(
    client: Client, pool: asyncpg.Pool
) -> None:
    who, other = await api_account(pool), await api_account(pool)
    made = [(await create(client, who, f"t{i}", f"body {i}"))["id"] for i in range(5)]
    await create(client, other, "theirs", "not yours")

    seen: list[str] = []
    cursor: str | None = None
    pages = 0
    while True:
        params = {"limit": "2", **({"cursor": cursor} if cursor else {})}
        status, page = await api_call(client, "GET", "/v1/templates", who, params=params)
        assert status == 200, page
        assert set(page) == {"data", "next_cursor"} and len(page["data"]) <= 2
        assert all(set(t) == FIELDS for t in page["data"])
        seen += [t["id"] for t in page["data"]]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == made[::-1]
    assert pages == 3

    status, body = await api_call(client, "GET", "/v1/templates", who, params={"cursor": "nope"})
    assert status == 400 and error(body)[0] == "INVALID_CURSOR"
    status, body = await api_call(client, "GET", "/v1/templates", who, params={"limit": "0"})
    assert status == 400


# --- change and delete ---------------------------------------------------------------------


async def test_patch_changes_only_what_is_given(client: Client, pool: asyncpg.Pool) -> None:
    who = await api_account(pool)
    created = await create(client, who, "Reminder", "See you {{day}}")
    path = f"/v1/templates/{created['id']}"

    status, changed = await api_call(
        client, "PATCH", path, who, json={"body": "{{name}}, see you {{ day }} at {{time}}"}
    )
    assert status == 200, changed
    assert changed["name"] == "Reminder"
    assert changed["variables"] == ["name", "day", "time"]
    assert changed["created_at"] == created["created_at"]
    assert datetime.fromisoformat(changed["updated_at"]) > datetime.fromisoformat(
        created["updated_at"]
    )

    status, renamed = await api_call(client, "PATCH", path, who, json={"name": " Visit "})
    assert status == 200 and renamed["name"] == "Visit"
    assert renamed["body"] == changed["body"]
    # Its own name again is no conflict.
    status, same = await api_call(client, "PATCH", path, who, json={"name": "Visit", "body": "Hi"})
    assert status == 200 and (same["name"], same["body"], same["variables"]) == ("Visit", "Hi", [])
    assert await stored(pool, who) == [("Visit", "Hi")]
    status, read = await api_call(client, "GET", path, who)
    assert read == same


async def test_patch_refusals_change_nothing(client: Client, pool: asyncpg.Pool) -> None:
    who = await api_account(pool)
    first = await create(client, who, "First", "one {{a}}")
    await create(client, who, "Second", "two")
    path = f"/v1/templates/{first['id']}"
    refusals: list[tuple[dict[str, Any], int, str, str | None]] = [
        ({"name": "Second"}, 409, "TEMPLATE_EXISTS", None),
        ({"name": "Renamed", "body": "{{broken"}, 400, "INVALID_TEMPLATE", "body"),
        ({"body": "z" * 1601}, 400, "BODY_TOO_LONG", "body"),
        ({"name": ""}, 400, "INVALID_NAME", "name"),
        ({"name": None}, 400, "INVALID_NAME", "name"),
        ({"body": None}, 400, "INVALID_TEMPLATE", "body"),
        ({}, 400, "EMPTY_UPDATE", None),
    ]
    for payload, status_wanted, code, field in refusals:
        status, body = await api_call(client, "PATCH", path, who, json=payload)
        assert status == status_wanted, (payload, body)
        assert error(body) == (code, field), payload
    assert await stored(pool, who) == [("First", "one {{a}}"), ("Second", "two")]
    status, read = await api_call(client, "GET", path, who)
    assert read == first


async def test_delete_removes_it_and_frees_its_name(client: Client, pool: asyncpg.Pool) -> None:
    who = await api_account(pool)
    created = await create(client, who, "Gone", "bye")
    path = f"/v1/templates/{created['id']}"
    status, body = await api_call(client, "DELETE", path, who)
    assert (status, body) == (204, None)
    assert await stored(pool, who) == []
    for method in ("GET", "DELETE"):
        status, body = await api_call(client, method, path, who)
        assert status == 404 and error(body)[0] == "NOT_FOUND"
    again = await create(client, who, "Gone", "back")
    assert again["id"] != created["id"]


# --- another account's template ------------------------------------------------------------


async def test_another_accounts_template_is_404_on_every_id_route(
    client: Client, pool: asyncpg.Pool
) -> None:
    owner, stranger = await api_account(pool), await api_account(pool)
    mine = await create(client, owner, "Private", "Hi {{first_name}}")
    await create(client, stranger, "Theirs", "x")  # a template of its own changes nothing
    path = f"/v1/templates/{mine['id']}"
    attempts: list[tuple[str, str, dict[str, Any] | None]] = [
        ("GET", path, None),
        ("PATCH", path, {"name": "Stolen", "body": "pwned"}),
        ("DELETE", path, None),
        ("POST", f"{path}/preview", {"to": ROUTED, "variables": {"first_name": "x"}}),
    ]
    for method, target, payload in attempts:
        status, body = await api_call(client, method, target, stranger, json=payload)
        assert status == 404, (method, target, body)
        assert error(body)[0] == "NOT_FOUND"
    assert await stored(pool, owner) == [("Private", "Hi {{first_name}}")]
    status, read = await api_call(client, "GET", path, owner)
    assert (status, read) == (200, mine)


@pytest.mark.parametrize("template_id", [str(uuid.uuid4()), "not-a-uuid", "1"])
async def test_unknown_template_is_404_on_every_id_route(
    client: Client, pool: asyncpg.Pool, template_id: str
) -> None:
    who = await api_account(pool)
    path = f"/v1/templates/{template_id}"
    for method, target, payload in [
        ("GET", path, None),
        ("PATCH", path, {"name": "x"}),
        ("DELETE", path, None),
        ("POST", f"{path}/preview", {"to": ROUTED}),
    ]:
        status, body = await api_call(client, method, target, who, json=payload)
        assert status == 404 and error(body)[0] == "NOT_FOUND", (method, body)


# --- preview -------------------------------------------------------------------------------


async def test_preview_uses_the_contacts_own_values_first(
    client: Client, pool: asyncpg.Pool
) -> None:
    who, other = await api_account(pool), await api_account(pool)
    contact, stranger = "+16502530101", "+16502530102"
    await add_contact(pool, who, contact, "Ann", order="A-17")
    # The same number as a contact of another account fills nothing here.
    await add_contact(pool, other, stranger, "Eve", order="E-1")
    template = await create(
        client, who, "Ship", "Hi {{first_name}}, order {{order}} ships {{day}} to {{phone}}"
    )
    variables = {"first_name": "friend", "order": "X-0", "day": "today", "phone": "+10000000"}

    status, shown = await preview(client, who, template["id"], "(650) 253-0101", **variables)
    assert status == 200, shown
    assert shown["to"] == contact
    assert shown["text"] == f"Hi Ann, order A-17 ships today to {contact}"

    status, shown = await preview(client, who, template["id"], stranger, **variables)
    assert status == 200, shown
    assert shown["text"] == f"Hi friend, order X-0 ships today to {stranger}"


async def test_preview_counts_gsm7_and_ucs2_parts_and_prices_them(
    client: Client, pool: asyncpg.Pool
) -> None:
    who = await api_account(pool)
    template = await create(client, who, "Greeting", "{{greeting}} " + "x" * 80)

    status, gsm = await preview(client, who, template["id"], ROUTED, greeting="Hello")
    assert status == 200, gsm
    assert gsm == {
        "to": ROUTED,
        "text": "Hello " + "x" * 80,
        "encoding": "GSM7",
        "segments": 1,
        "cost": float(PRICE),
    }
    status, ucs = await preview(client, who, template["id"], ROUTED, greeting="Привет")
    assert status == 200, ucs
    assert (ucs["encoding"], ucs["segments"]) == ("UCS2", 2)  # 87 characters > 70
    assert ucs["text"] == "Привет " + "x" * 80
    assert ucs["cost"] == float(PRICE * 2)


async def test_preview_cost_is_null_without_a_route(client: Client, pool: asyncpg.Pool) -> None:
    who = await api_account(pool)
    template = await create(client, who, "Plain", "Hello there")
    status, shown = await preview(client, who, template["id"], UNROUTED)
    assert status == 200, shown
    assert (shown["to"], shown["text"], shown["encoding"], shown["segments"]) == (
        UNROUTED,
        "Hello there",
        "GSM7",
        1,
    )
    # Another module of a full run may have added a default route; this one adds none.
    default_price = await pool.fetchval(
        "SELECT price FROM routes WHERE $1 LIKE prefix || '%' ORDER BY length(prefix) DESC LIMIT 1",
        UNROUTED.lstrip("+"),
    )
    assert shown["cost"] == (None if default_price is None else float(default_price))


async def test_preview_sends_and_charges_nothing(client: Client, pool: asyncpg.Pool) -> None:
    who = await api_account(pool)
    template = await create(client, who, "Code", "Your code is {{code}}")
    status, shown = await preview(client, who, template["id"], ROUTED, code=1234)
    assert status == 200 and shown["text"] == "Your code is 1234"
    assert await pool.fetchval("SELECT count(*) FROM messages WHERE account_id = $1", who.id) == 0
    balance = await pool.fetchval("SELECT balance FROM accounts WHERE id = $1", who.id)
    assert balance == Decimal(10)


async def test_preview_refusals(client: Client, pool: asyncpg.Pool) -> None:
    who = await api_account(pool)
    await add_contact(pool, who, "+16502530201", "Bo")
    template = await create(client, who, "Two", "{{first_name}}: {{code}} {{code}}")
    tid = template["id"]

    status, body = await preview(client, who, tid, ROUTED, first_name="A")
    assert status == 400 and error(body) == ("MISSING_VARIABLE", "variables")
    assert body["error"]["message"].startswith(f"Missing variable: code for {ROUTED}")
    # The contact's own first_name counts; code is still missing.
    status, body = await preview(client, who, tid, "+16502530201")
    assert status == 400 and body["error"]["message"].startswith("Missing variable: code")

    status, body = await preview(client, who, tid, ROUTED, first_name="A", code="9" * 1000)
    assert status == 400 and error(body) == ("BODY_TOO_LONG", "variables")
    assert body["error"]["message"].endswith("2004 characters; the maximum is 1600")

    status, body = await preview(client, who, tid, "12", first_name="A", code="1")
    assert status == 400 and error(body) == ("INVALID_PHONE_NUMBER", "to")
    status, body = await api_call(client, "POST", f"/v1/templates/{tid}/preview", who, json={})
    assert status == 400 and error(body) == ("MISSING_RECIPIENT", "to")
    status, body = await api_call(
        client,
        "POST",
        f"/v1/templates/{tid}/preview",
        who,
        json={"to": ROUTED, "variables": {"code": {"nested": 1}}},
    )
    assert status == 400 and error(body) == ("INVALID_VARIABLES", "variables")

    only = await create(client, who, "Only", "{{v}}")
    status, body = await preview(client, who, only["id"], ROUTED, v="")
    assert status == 400 and error(body) == ("EMPTY_BODY", "variables")
