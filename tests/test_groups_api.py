"""Groups end to end over the real API (real keys, real database): names unique in an account,
member counts, adding and removing members all or nothing, deletion that keeps the contacts,
and another account's group or contact answered 404 on every route that names one."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest

from broker.config import Settings
from tests.harness import (
    Client,
    add_contact,
    add_group,
    all_pages,
    api_account,
    api_call,
    api_client,
    phone,
    snapshot,
)


@pytest.fixture(scope="module")
async def client(settings: Settings) -> AsyncIterator[Client]:
    async with api_client(settings) as c:
        yield c


async def test_create_read_and_list_groups(client: Client, pool: asyncpg.Pool) -> None:
    who = await api_account(pool)
    created = await add_group(client, who, "  VIP customers ")
    assert set(created) == {"id", "name", "members", "created_at", "updated_at"}
    assert (created["name"], created["members"]) == ("VIP customers", 0)
    status, read = await api_call(client, "GET", f"/v1/groups/{created['id']}", who)
    assert (status, read) == (200, created)
    more = [(await add_group(client, who, f"g{i}"))["id"] for i in range(4)]
    pages = await all_pages(client, who, "/v1/groups", 2)
    assert [len(p) for p in pages] == [2, 2, 1]
    assert [g["id"] for p in pages for g in p] == [*more[::-1], created["id"]]
    other = await api_account(pool)
    status, body = await api_call(client, "GET", "/v1/groups", other)
    assert (status, body) == (200, {"data": [], "next_cursor": None})


async def test_group_names_are_unique_in_an_account(client: Client, pool: asyncpg.Pool) -> None:
    who = await api_account(pool)
    first = await add_group(client, who, "VIP")
    status, body = await api_call(client, "POST", "/v1/groups", who, json={"name": " VIP "})
    assert (status, body["error"]["code"]) == (409, "GROUP_EXISTS")
    assert "VIP" in body["error"]["message"]
    other = await api_account(pool)
    await add_group(client, other, "VIP")  # another account's names are its own
    second = await add_group(client, who, "Gold")
    path = f"/v1/groups/{second['id']}"
    status, body = await api_call(client, "PATCH", path, who, json={"name": "VIP"})
    assert (status, body["error"]["code"]) == (409, "GROUP_EXISTS")
    status, body = await api_call(client, "GET", path, who)
    assert body == second
    status, renamed = await api_call(client, "PATCH", path, who, json={"name": " Platinum "})
    assert status == 200
    assert renamed["name"] == "Platinum"
    assert renamed["created_at"] == second["created_at"]
    assert renamed["updated_at"] > second["updated_at"]
    status, same = await api_call(client, "PATCH", path, who, json={"name": "Platinum"})
    assert (status, same["name"]) == (200, "Platinum")
    status, body = await api_call(client, "GET", f"/v1/groups/{first['id']}", who)
    assert body["name"] == "VIP"


@pytest.mark.parametrize(
    "body",
    [{}, {"name": ""}, {"name": "   "}, {"name": "x" * 101}, {"name": 5}, {"name": "a\u0000b"}],
)
async def test_bad_names_are_a_400(client: Client, pool: asyncpg.Pool, body: object) -> None:
    who = await api_account(pool)
    status, answer = await api_call(client, "POST", "/v1/groups", who, json=body)
    assert status == 400
    assert answer["error"]["code"] in {"INVALID_NAME", "INVALID_CHARACTER"}
    assert answer["error"]["field"] == "name"
    group = await add_group(client, who, "kept")
    status, answer = await api_call(client, "PATCH", f"/v1/groups/{group['id']}", who, json=body)
    assert status == 400
    status, answer = await api_call(client, "GET", "/v1/groups", who)
    assert [g["name"] for g in answer["data"]] == ["kept"]


async def test_add_list_and_remove_members(client: Client, pool: asyncpg.Pool) -> None:
    who = await api_account(pool)
    group = await add_group(client, who, "g")
    people = [(await add_contact(client, who, phone=phone(i)))["id"] for i in range(5)]
    path = f"/v1/groups/{group['id']}/contacts"
    status, body = await api_call(client, "POST", path, who, json={"contact_ids": people[:3]})
    assert (status, body) == (200, {"added": 3, "members": 3})
    # Members already in are fine; a repeated id counts once.
    status, body = await api_call(
        client, "POST", path, who, json={"contact_ids": [people[2], people[3], people[3]]}
    )
    assert (status, body) == (200, {"added": 1, "members": 4})
    status, read = await api_call(client, "GET", f"/v1/groups/{group['id']}", who)
    assert read["members"] == 4
    # Newest contact first, across pages; each member a whole contact resource.
    pages = await all_pages(client, who, path, 3)
    assert [len(p) for p in pages] == [3, 1]
    listed = [c for p in pages for c in p]
    assert [c["id"] for c in listed] == people[3::-1]
    assert all(c["group_ids"] == [group["id"]] for c in listed)

    status, body = await api_call(client, "DELETE", f"{path}/{people[1]}", who)
    assert (status, body) == (204, None)
    status, body = await api_call(client, "DELETE", f"{path}/{people[1]}", who)
    assert (status, body["error"]["code"]) == (404, "NOT_FOUND")
    assert "not a member" in body["error"]["message"]
    status, body = await api_call(client, "DELETE", f"{path}/{people[4]}", who)  # never a member
    assert status == 404
    status, read = await api_call(client, "GET", f"/v1/groups/{group['id']}", who)
    assert read["members"] == 3
    status, contact = await api_call(client, "GET", f"/v1/contacts/{people[1]}", who)
    assert (status, contact["group_ids"]) == (200, [])


async def test_adding_a_stranger_adds_nobody(client: Client, pool: asyncpg.Pool) -> None:
    who, other = await api_account(pool), await api_account(pool)
    group = await add_group(client, who, "g")
    mine = (await add_contact(client, who, phone=phone(1)))["id"]
    theirs = (await add_contact(client, other, phone=phone(2)))["id"]
    path = f"/v1/groups/{group['id']}/contacts"
    before = await snapshot(pool, who)
    for stranger in (theirs, str(uuid.uuid4())):
        status, body = await api_call(
            client, "POST", path, who, json={"contact_ids": [mine, stranger]}
        )
        assert (status, body["error"]["code"]) == (404, "NOT_FOUND")
        assert stranger in body["error"]["message"]
    assert await snapshot(pool, who) == before
    status, read = await api_call(client, "GET", f"/v1/groups/{group['id']}", who)
    assert read["members"] == 0


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"contact_ids": []},
        {"contact_ids": "x"},
        {"contact_ids": ["not-a-uuid"]},
        {"contact_ids": [str(uuid.uuid4()) for _ in range(1001)]},
    ],
)
async def test_bad_contact_ids_are_a_400(client: Client, pool: asyncpg.Pool, body: object) -> None:
    who = await api_account(pool)
    group = await add_group(client, who, "g")
    status, answer = await api_call(
        client, "POST", f"/v1/groups/{group['id']}/contacts", who, json=body
    )
    assert (status, answer["error"]["code"], answer["error"]["field"]) == (
        400,
        "INVALID_CONTACT_IDS",
        "contact_ids",
    )


async def test_a_thousand_contacts_join_in_one_request(client: Client, pool: asyncpg.Pool) -> None:
    who = await api_account(pool)
    group = await add_group(client, who, "big")
    async with pool.acquire() as conn:
        ids = await conn.fetch(
            "INSERT INTO contacts (account_id, phone)"
            " SELECT $1, '+1415555' || lpad(n::text, 4, '0') FROM generate_series(0, 999) n"
            " RETURNING id",
            who.id,
        )
    contact_ids = [str(r["id"]) for r in ids]
    status, body = await api_call(
        client, "POST", f"/v1/groups/{group['id']}/contacts", who, json={"contact_ids": contact_ids}
    )
    assert (status, body) == (200, {"added": 1000, "members": 1000})


async def test_deleting_a_group_keeps_its_contacts(client: Client, pool: asyncpg.Pool) -> None:
    who = await api_account(pool)
    gone, stays = await add_group(client, who, "gone"), await add_group(client, who, "stays")
    both = [gone["id"], stays["id"]]
    people = [
        (await add_contact(client, who, phone=phone(i), group_ids=both))["id"] for i in (1, 2)
    ]
    status, body = await api_call(client, "DELETE", f"/v1/groups/{gone['id']}", who)
    assert (status, body) == (204, None)
    for path in (f"/v1/groups/{gone['id']}", f"/v1/groups/{gone['id']}/contacts"):
        status, body = await api_call(client, "GET", path, who)
        assert status == 404
    status, body = await api_call(client, "DELETE", f"/v1/groups/{gone['id']}", who)
    assert status == 404
    status, body = await api_call(client, "GET", "/v1/contacts", who)
    assert sorted(c["id"] for c in body["data"]) == sorted(people)
    assert all(c["group_ids"] == [stays["id"]] for c in body["data"])
    status, body = await api_call(client, "GET", f"/v1/groups/{stays['id']}", who)
    assert body["members"] == 2
    # The name is free again.
    await add_group(client, who, "gone")


async def test_another_accounts_group_or_contact_is_a_404_on_every_route(
    client: Client, pool: asyncpg.Pool
) -> None:
    who, other = await api_account(pool), await api_account(pool)
    mine_group = await add_group(client, who, "mine")
    mine = (await add_contact(client, who, phone=phone(1), group_ids=[mine_group["id"]]))["id"]
    theirs_group = await add_group(client, other, "theirs")
    theirs = (await add_contact(client, other, phone=phone(2), group_ids=[theirs_group["id"]]))[
        "id"
    ]
    before = (await snapshot(pool, who), await snapshot(pool, other))
    for group_id in (theirs_group["id"], str(uuid.uuid4()), "not-a-uuid"):
        base = f"/v1/groups/{group_id}"
        for method, path, kw in (
            ("GET", base, {}),
            ("PATCH", base, {"json": {"name": "taken over"}}),
            ("DELETE", base, {}),
            ("GET", f"{base}/contacts", {}),
            ("POST", f"{base}/contacts", {"json": {"contact_ids": [mine]}}),
            ("DELETE", f"{base}/contacts/{theirs}", {}),
            ("DELETE", f"{base}/contacts/{mine}", {}),
        ):
            status, body = await api_call(client, method, path, who, **kw)
            assert (status, body["error"]["code"]) == (404, "NOT_FOUND"), (method, path)
    # Their contact named under my group: not found, and not joined.
    mine_path = f"/v1/groups/{mine_group['id']}/contacts"
    for contact_id in (theirs, "not-a-uuid"):
        status, body = await api_call(client, "DELETE", f"{mine_path}/{contact_id}", who)
        assert (status, body["error"]["code"]) == (404, "NOT_FOUND")
    status, body = await api_call(client, "POST", mine_path, who, json={"contact_ids": [theirs]})
    assert (status, body["error"]["code"]) == (404, "NOT_FOUND")
    assert (await snapshot(pool, who), await snapshot(pool, other)) == before


async def test_the_schema_refuses_a_membership_across_accounts(
    client: Client, pool: asyncpg.Pool
) -> None:
    who, other = await api_account(pool), await api_account(pool)
    group = await add_group(client, who, "g")
    theirs = await add_contact(client, other, phone=phone(1))
    with pytest.raises(asyncpg.ForeignKeyViolationError):
        await pool.execute(
            "INSERT INTO group_members (account_id, group_id, contact_id) VALUES ($1, $2, $3)",
            who.id,
            uuid.UUID(group["id"]),
            uuid.UUID(theirs["id"]),
        )


async def test_the_routes_are_in_the_openapi_document(client: Client) -> None:
    async with client.get("/openapi.json") as resp:
        paths = (await resp.json())["paths"]
    assert set(paths["/v1/groups"]) >= {"get", "post"}
    assert set(paths["/v1/groups/{id}"]) >= {"get", "patch", "delete"}
    assert set(paths["/v1/groups/{id}/contacts"]) >= {"get", "post"}
    assert set(paths["/v1/groups/{id}/contacts/{contact_id}"]) >= {"delete"}
    assert "409" in paths["/v1/groups/{id}"]["patch"]["responses"]
