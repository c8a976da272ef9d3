"""Contacts end to end over the real API (real keys, real database): create with numbers in
any form the account's region reads, the list's filters and pages, changes, deletion, and
every bad input answered 400/404/409 with nothing changed. The pure checks behind them
(fields, the `q` LIKE escaping) are property-tested, the escaping against PostgreSQL itself."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from broker.config import Settings
from broker.contacts import (
    MAX_FIELD_KEY,
    MAX_FIELD_VALUE,
    MAX_FIELDS,
    field_text,
    like_prefix,
    parse_fields,
)
from broker.errors import InputError
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


async def test_create_answers_the_contact_normalized(client: Client, pool: asyncpg.Pool) -> None:
    who = await api_account(pool)
    group = await add_group(client, who, "VIP")
    created = await add_contact(
        client,
        who,
        phone="(415) 555-2671",
        first_name="  Ada ",
        last_name="",
        email=" ada@example.com ",
        fields={"plan": "gold", "visits": 3, "vip": True, "ratio": 0.5, "note": ""},
        group_ids=[group["id"], group["id"]],
    )
    assert set(created) == {
        "id",
        "phone",
        "first_name",
        "last_name",
        "email",
        "fields",
        "group_ids",
        "created_at",
        "updated_at",
    }
    assert created["phone"] == "+14155552671"
    assert (created["first_name"], created["last_name"]) == ("Ada", None)
    assert created["email"] == "ada@example.com"
    assert created["fields"] == {
        "plan": "gold",
        "visits": "3",
        "vip": "true",
        "ratio": "0.5",
        "note": "",
    }
    assert created["group_ids"] == [group["id"]]
    assert created["created_at"] == created["updated_at"]
    status, read = await api_call(client, "GET", f"/v1/contacts/{created['id']}", who)
    assert (status, read) == (200, created)
    status, group_now = await api_call(client, "GET", f"/v1/groups/{group['id']}", who)
    assert group_now["members"] == 1


async def test_only_phone_is_required(client: Client, pool: asyncpg.Pool) -> None:
    who = await api_account(pool)
    created = await add_contact(client, who, phone=phone(1))
    assert {k: created[k] for k in ("first_name", "last_name", "email", "fields", "group_ids")} == {
        "first_name": None,
        "last_name": None,
        "email": None,
        "fields": {},
        "group_ids": [],
    }


async def test_local_numbers_are_read_in_the_account_region(
    client: Client, pool: asyncpg.Pool
) -> None:
    ghana = await api_account(pool, region="GH")
    created = await add_contact(client, ghana, phone="024 412 3456")
    assert created["phone"] == "+233244123456"
    # The same number in E.164 is the same contact; its local form is no US number.
    status, body = await api_call(
        client, "POST", "/v1/contacts", ghana, json={"phone": "+233244123456"}
    )
    assert (status, body["error"]["code"]) == (409, "CONTACT_EXISTS")
    status, body = await api_call(client, "GET", "/v1/contacts?phone=0244123456", ghana)
    assert [c["id"] for c in body["data"]] == [created["id"]]
    us = await api_account(pool, region="US")
    status, body = await api_call(
        client, "POST", "/v1/contacts", us, json={"phone": "024 412 3456"}
    )
    assert (status, body["error"]["code"], body["error"]["field"]) == (
        400,
        "INVALID_PHONE_NUMBER",
        "phone",
    )


async def test_a_second_contact_with_the_same_phone_is_a_409(
    client: Client, pool: asyncpg.Pool
) -> None:
    who = await api_account(pool)
    first = await add_contact(client, who, phone="+14155552671", first_name="Ada")
    before = await snapshot(pool, who)
    status, body = await api_call(
        client, "POST", "/v1/contacts", who, json={"phone": "415-555-2671", "first_name": "B"}
    )
    assert status == 409
    assert body["error"]["code"] == "CONTACT_EXISTS"
    assert first["id"] in body["error"]["message"]
    assert await snapshot(pool, who) == before
    # Another account may have the same number.
    other = await api_account(pool)
    await add_contact(client, other, phone="+14155552671")


BAD_CREATES: list[tuple[dict[str, Any], int, str, str | None]] = [
    ({}, 400, "INVALID_PHONE_NUMBER", "phone"),
    ({"phone": "12"}, 400, "INVALID_PHONE_NUMBER", "phone"),
    ({"phone": "not a number"}, 400, "INVALID_PHONE_NUMBER", "phone"),
    ({"phone": 14155552671}, 400, "INVALID_PHONE_NUMBER", "phone"),
    ({"phone": "+14155552671,+14155552672"}, 400, "INVALID_PHONE_NUMBER", "phone"),
    ({"phone": "+1" + "4" * 60}, 400, "INVALID_PHONE_NUMBER", "phone"),
    ({"email": "no-at-sign"}, 400, "INVALID_EMAIL", "email"),
    ({"email": "a@b"}, 400, "INVALID_EMAIL", "email"),
    ({"email": "a b@example.com"}, 400, "INVALID_EMAIL", "email"),
    ({"email": "a@example..com"}, 400, "INVALID_EMAIL", "email"),
    ({"email": "a@" + "x" * 250 + ".com"}, 400, "INVALID_EMAIL", "email"),
    ({"email": 5}, 400, "INVALID_EMAIL", "email"),
    ({"first_name": "x" * 101}, 400, "INVALID_NAME", "first_name"),
    ({"last_name": "x\u0000y"}, 400, "INVALID_CHARACTER", "last_name"),
    ({"fields": []}, 400, "INVALID_FIELDS", "fields"),
    ({"fields": "plan=gold"}, 400, "INVALID_FIELDS", "fields"),
    ({"fields": {"": "x"}}, 400, "INVALID_FIELDS", "fields"),
    ({"fields": {"k" * 65: "x"}}, 400, "INVALID_FIELDS", "fields"),
    ({"fields": {"a\nb": "x"}}, 400, "INVALID_FIELDS", "fields"),
    ({"fields": {"plan": {"nested": 1}}}, 400, "INVALID_FIELDS", "fields"),
    ({"fields": {"plan": [1]}}, 400, "INVALID_FIELDS", "fields"),
    ({"fields": {"plan": None}}, 400, "INVALID_FIELDS", "fields"),
    ({"fields": {"plan": "x" * 501}}, 400, "INVALID_FIELDS", "fields"),
    ({"fields": {"plan": "a\u0000b"}}, 400, "INVALID_FIELDS", "fields"),
    ({"fields": {f"k{i}": "v" for i in range(51)}}, 400, "INVALID_FIELDS", "fields"),
    ({"group_ids": ["not-a-uuid"]}, 400, "INVALID_GROUP_IDS", "group_ids"),
    ({"group_ids": "x"}, 400, "INVALID_GROUP_IDS", "group_ids"),
]


@pytest.mark.parametrize(("change", "status", "code", "field"), BAD_CREATES)
async def test_bad_input_is_refused_and_nothing_is_stored(
    client: Client,
    pool: asyncpg.Pool,
    change: dict[str, Any],
    status: int,
    code: str,
    field: str | None,
) -> None:
    who = await api_account(pool)
    body = {"phone": phone(7), **change} if change else {}
    got, answer = await api_call(client, "POST", "/v1/contacts", who, json=body)
    assert (got, answer["error"]["code"], answer["error"].get("field")) == (status, code, field)
    assert await snapshot(pool, who) == []


async def test_a_group_of_no_one_or_of_another_account_is_a_404_and_nothing_is_created(
    client: Client, pool: asyncpg.Pool
) -> None:
    who, other = await api_account(pool), await api_account(pool)
    mine = await add_group(client, who, "mine")
    theirs = await add_group(client, other, "theirs")
    for stranger in (theirs["id"], str(uuid.uuid4())):
        status, body = await api_call(
            client,
            "POST",
            "/v1/contacts",
            who,
            json={"phone": phone(3), "group_ids": [mine["id"], stranger]},
        )
        assert (status, body["error"]["code"]) == (404, "NOT_FOUND")
        assert stranger in body["error"]["message"]
        assert await snapshot(pool, who) == []
    assert await snapshot(pool, other) == []


async def test_not_json_is_a_400(client: Client, pool: asyncpg.Pool) -> None:
    who = await api_account(pool)
    for raw in (b"{", b"[]", b'"x"'):
        status, body = await api_call(
            client,
            "POST",
            "/v1/contacts",
            who,
            data=raw,
            headers={"Content-Type": "application/json"},
        )
        assert (status, body["error"]["code"]) == (400, "INVALID_JSON")
    assert await snapshot(pool, who) == []


async def test_the_list_is_newest_first_across_pages(client: Client, pool: asyncpg.Pool) -> None:
    who = await api_account(pool)
    made = [(await add_contact(client, who, phone=phone(i)))["id"] for i in range(7)]
    pages = await all_pages(client, who, "/v1/contacts", 3)
    assert [len(p) for p in pages] == [3, 3, 1]
    assert [c["id"] for p in pages for c in p] == made[::-1]
    other = await api_account(pool)
    status, body = await api_call(client, "GET", "/v1/contacts", other)
    assert (status, body) == (200, {"data": [], "next_cursor": None})


async def test_the_list_filters_by_group_phone_and_name_prefix(
    client: Client, pool: asyncpg.Pool
) -> None:
    who = await api_account(pool)
    vip = await add_group(client, who, "vip")
    people = [
        ("Ada", "Lovelace", [vip["id"]]),
        ("adam", None, []),
        ("Grace", "Hopper", [vip["id"]]),
        (None, "ADAMS", [vip["id"]]),
        ("50%", "off", []),
        ("5_0", "x", []),
        ("a\\b", None, []),
        ("Zoë", None, []),
    ]
    ids = {}
    for n, (first, last, groups) in enumerate(people):
        made = await add_contact(
            client, who, phone=phone(n), first_name=first, last_name=last, group_ids=groups
        )
        ids[first or last] = made["id"]

    async def found(query: str) -> list[str]:
        status, body = await api_call(client, "GET", f"/v1/contacts?{query}", who)
        assert status == 200, body
        return [c["id"] for c in body["data"]]

    assert await found("q=ad") == [ids["ADAMS"], ids["adam"], ids["Ada"]]
    assert await found("q=ADA") == [ids["ADAMS"], ids["adam"], ids["Ada"]]
    assert await found("q=hop") == [ids["Grace"]]
    assert await found("q=ove") == []  # a prefix, not a substring
    assert await found("q=zo%C3%AB") == [ids["Zoë"]]
    # LIKE's own characters match only themselves.
    assert await found("q=50%25") == [ids["50%"]]
    assert await found("q=5%25") == []
    assert await found("q=%25") == []
    assert await found("q=5_") == [ids["5_0"]]
    assert await found("q=_") == []
    assert await found("q=a%5C") == [ids["a\\b"]]
    assert await found(f"group_id={vip['id']}") == [ids["ADAMS"], ids["Grace"], ids["Ada"]]
    assert await found(f"group_id={vip['id']}&q=ad") == [ids["ADAMS"], ids["Ada"]]
    assert await found("phone=%2B14155550002") == [ids["Grace"]]
    assert await found("phone=(415)%20555-0002") == [ids["Grace"]]
    assert await found(f"phone=4155550002&group_id={vip['id']}&q=gr") == [ids["Grace"]]
    assert await found("phone=4155550001&group_id=" + vip["id"]) == []
    assert await found("q=") == await found("")  # blank: no filter
    # Filtered lists page too.
    pages = await all_pages(client, who, f"/v1/contacts?group_id={vip['id']}", 2)
    assert [c["id"] for p in pages for c in p] == [ids["ADAMS"], ids["Grace"], ids["Ada"]]


@pytest.mark.parametrize(
    ("query", "code"),
    [
        ("phone=12", "INVALID_PHONE_NUMBER"),
        ("group_id=nope", "INVALID_INPUT"),
        ("cursor=bm9wZQ", "INVALID_CURSOR"),
        ("limit=0", "INVALID_INPUT"),
        ("limit=201", "INVALID_INPUT"),
        ("q=" + "a" * 101, "INVALID_INPUT"),
        ("q=a%00b", "INVALID_CHARACTER"),
    ],
)
async def test_bad_list_queries_are_a_400(
    client: Client, pool: asyncpg.Pool, query: str, code: str
) -> None:
    who = await api_account(pool)
    status, body = await api_call(client, "GET", f"/v1/contacts?{query}", who)
    assert (status, body["error"]["code"]) == (400, code)


async def test_the_list_of_a_group_of_another_account_is_a_404(
    client: Client, pool: asyncpg.Pool
) -> None:
    who, other = await api_account(pool), await api_account(pool)
    theirs = await add_group(client, other, "theirs")
    for group_id in (theirs["id"], str(uuid.uuid4())):
        status, body = await api_call(client, "GET", f"/v1/contacts?group_id={group_id}", who)
        assert (status, body["error"]["code"]) == (404, "NOT_FOUND")
        assert group_id in body["error"]["message"]


async def test_another_accounts_contact_is_a_404_on_every_route(
    client: Client, pool: asyncpg.Pool
) -> None:
    who, other = await api_account(pool), await api_account(pool)
    theirs = await add_contact(client, other, phone=phone(1), first_name="T")
    before = await snapshot(pool, other)
    for contact_id in (theirs["id"], str(uuid.uuid4()), "not-a-uuid"):
        for method, kw in (
            ("GET", {}),
            ("PATCH", {"json": {"first_name": "Mine"}}),
            ("DELETE", {}),
        ):
            status, body = await api_call(client, method, f"/v1/contacts/{contact_id}", who, **kw)
            assert (status, body["error"]["code"]) == (404, "NOT_FOUND"), (method, contact_id)
    assert await snapshot(pool, other) == before


async def test_patch_changes_only_what_it_names(client: Client, pool: asyncpg.Pool) -> None:
    who = await api_account(pool)
    a, b, c = [await add_group(client, who, name) for name in ("a", "b", "c")]
    created = await add_contact(
        client,
        who,
        phone=phone(1),
        first_name="Ada",
        last_name="Lovelace",
        email="ada@example.com",
        fields={"plan": "gold", "visits": 3},
        group_ids=[a["id"], b["id"]],
    )
    path = f"/v1/contacts/{created['id']}"
    status, changed = await api_call(client, "PATCH", path, who, json={"first_name": "Augusta"})
    assert status == 200, changed
    assert changed["first_name"] == "Augusta"
    unchanged = ("phone", "last_name", "email", "fields", "group_ids", "created_at")
    assert {k: changed[k] for k in unchanged} == {k: created[k] for k in unchanged}
    assert changed["updated_at"] > created["updated_at"]

    status, changed = await api_call(
        client,
        "PATCH",
        path,
        who,
        json={
            "phone": "(415) 555-0009",
            "last_name": None,
            "email": None,
            "fields": {"tier": 2},
            "group_ids": [c["id"], b["id"]],
        },
    )
    assert status == 200, changed
    assert changed["phone"] == "+14155550009"
    assert (changed["first_name"], changed["last_name"], changed["email"]) == (
        "Augusta",
        None,
        None,
    )
    assert changed["fields"] == {"tier": "2"}
    # b was kept (and stays the older membership), a left, c joined.
    assert changed["group_ids"] == [b["id"], c["id"]]
    status, read = await api_call(client, "GET", path, who)
    assert read == changed
    members = {}
    for group in (a, b, c):
        status, read = await api_call(client, "GET", f"/v1/groups/{group['id']}", who)
        members[group["id"]] = read["members"]
    assert members == {a["id"]: 0, b["id"]: 1, c["id"]: 1}

    status, changed = await api_call(
        client, "PATCH", path, who, json={"fields": None, "group_ids": None, "first_name": " "}
    )
    assert status == 200, changed
    assert (changed["fields"], changed["group_ids"], changed["first_name"]) == ({}, [], None)
    status, same = await api_call(client, "PATCH", path, who, json={})
    assert status == 200
    assert {k: v for k, v in same.items() if k != "updated_at"} == {
        k: v for k, v in changed.items() if k != "updated_at"
    }


async def test_patch_refusals_change_nothing(client: Client, pool: asyncpg.Pool) -> None:
    who, other = await api_account(pool), await api_account(pool)
    group = await add_group(client, who, "g")
    theirs = await add_group(client, other, "theirs")
    taken = await add_contact(client, who, phone=phone(1))
    mine = await add_contact(client, who, phone=phone(2), first_name="Ada", group_ids=[group["id"]])
    path = f"/v1/contacts/{mine['id']}"
    before = await snapshot(pool, who)
    refusals: list[tuple[dict[str, Any], int, str]] = [
        ({"phone": "415 555 0001", "first_name": "X"}, 409, "CONTACT_EXISTS"),
        ({"phone": None}, 400, "INVALID_PHONE_NUMBER"),
        ({"phone": "12"}, 400, "INVALID_PHONE_NUMBER"),
        ({"email": "nope", "first_name": "X"}, 400, "INVALID_EMAIL"),
        ({"fields": {"a": {}}}, 400, "INVALID_FIELDS"),
        ({"first_name": "X", "group_ids": [theirs["id"]]}, 404, "NOT_FOUND"),
        ({"first_name": "X", "group_ids": [str(uuid.uuid4())]}, 404, "NOT_FOUND"),
    ]
    for change, status, code in refusals:
        got, body = await api_call(client, "PATCH", path, who, json=change)
        assert (got, body["error"]["code"]) == (status, code), change
        if status == 409:
            assert taken["id"] in body["error"]["message"]
    assert await snapshot(pool, who) == before
    # Its own number again is no conflict.
    status, body = await api_call(client, "PATCH", path, who, json={"phone": phone(2)})
    assert (status, body["phone"]) == (200, phone(2))


async def test_delete_removes_the_contact_from_its_groups(
    client: Client, pool: asyncpg.Pool
) -> None:
    who = await api_account(pool)
    group = await add_group(client, who, "g")
    gone = await add_contact(client, who, phone=phone(1), group_ids=[group["id"]])
    stays = await add_contact(client, who, phone=phone(2), group_ids=[group["id"]])
    status, body = await api_call(client, "DELETE", f"/v1/contacts/{gone['id']}", who)
    assert (status, body) == (204, None)
    status, body = await api_call(client, "GET", f"/v1/contacts/{gone['id']}", who)
    assert status == 404
    status, body = await api_call(client, "DELETE", f"/v1/contacts/{gone['id']}", who)
    assert status == 404
    status, body = await api_call(client, "GET", f"/v1/groups/{group['id']}", who)
    assert body["members"] == 1
    status, body = await api_call(client, "GET", f"/v1/groups/{group['id']}/contacts", who)
    assert [c["id"] for c in body["data"]] == [stays["id"]]
    # The number is free again.
    await add_contact(client, who, phone=phone(1))


async def test_the_routes_are_in_the_openapi_document(client: Client) -> None:
    async with client.get("/openapi.json") as resp:
        doc = await resp.json()
    assert set(doc["paths"]["/v1/contacts"]) >= {"get", "post"}
    assert set(doc["paths"]["/v1/contacts/{id}"]) >= {"get", "patch", "delete"}
    assert "409" in doc["paths"]["/v1/contacts"]["post"]["responses"]
    assert "404" in doc["paths"]["/v1/contacts"]["post"]["responses"]


# Pure logic: the fields check and the LIKE escaping.

_KEY = st.text(
    st.characters(codec="utf-8", exclude_categories=("Cs", "Cc", "Cf", "Zl", "Zp", "Co", "Cn")),
    min_size=1,
    max_size=MAX_FIELD_KEY,
).filter(str.isprintable)
_VALUE = st.one_of(
    st.text(st.characters(codec="utf-8", exclude_characters="\x00"), max_size=MAX_FIELD_VALUE),
    st.booleans(),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=False, allow_infinity=False),
)


@given(st.dictionaries(_KEY, _VALUE, max_size=MAX_FIELDS))
def test_valid_fields_are_kept_as_text(raw: dict[str, Any]) -> None:
    fields = parse_fields(raw)
    assert list(fields) == list(raw)
    assert all(isinstance(v, str) for v in fields.values())
    assert fields == {k: field_text(v) for k, v in raw.items()}
    assert parse_fields(fields) == fields  # text stays as it is


@given(
    st.dictionaries(_KEY, _VALUE, max_size=MAX_FIELDS),
    st.sampled_from(
        [
            ("", "v"),
            ("x" * (MAX_FIELD_KEY + 1), "v"),
            ("tab\there", "v"),
            ("k", None),
            ("k", [1]),
            ("k", {"a": "b"}),
            ("k", float("nan")),
            ("k", float("inf")),
            ("k", "x" * (MAX_FIELD_VALUE + 1)),
            ("k", "nul\x00"),
        ]
    ),
)
def test_one_bad_field_refuses_them_all(raw: dict[str, Any], bad: tuple[str, Any]) -> None:
    key, value = bad
    with pytest.raises(InputError) as refused:
        parse_fields({**raw, key: value})
    assert (refused.value.code, refused.value.field) == ("INVALID_FIELDS", "fields")


@given(st.integers(min_value=MAX_FIELDS + 1, max_value=3 * MAX_FIELDS))
def test_more_than_the_most_fields_is_refused(n: int) -> None:
    with pytest.raises(InputError, match="at most"):
        parse_fields({f"k{i}": "v" for i in range(n)})


_LIKE_TEXT = st.text(
    st.one_of(st.sampled_from("%_\\aAbB'\"é"), st.characters(codec="utf-8", min_codepoint=1)),
    max_size=12,
)


@given(_LIKE_TEXT)
def test_like_prefix_escapes_exactly_the_special_characters(text: str) -> None:
    pattern = like_prefix(text)
    unescaped, i = [], 0
    while i < len(pattern):
        if pattern[i] == "\\":
            assert pattern[i + 1] in "%_\\"
            i += 1
        else:
            assert pattern[i] not in "%_"
        unescaped.append(pattern[i])
        i += 1
    assert "".join(unescaped) == text


@settings(max_examples=150, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(_LIKE_TEXT, _LIKE_TEXT, st.booleans())
async def test_like_prefix_matches_what_startswith_does_in_postgres(
    pool: asyncpg.Pool, q: str, rest: str, prefixed: bool
) -> None:
    name = q + rest if prefixed else rest
    matched = await pool.fetchval("SELECT $1::text LIKE $2::text || '%'", name, like_prefix(q))
    assert matched == name.startswith(q)
