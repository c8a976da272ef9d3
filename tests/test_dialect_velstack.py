"""Velstack's API at /compat/velstack on a whole gateway (simulated carrier, every worker): each
example of Velstack's document run as written (curl's form-posted `{ name : "value" }` bodies
byte for byte, base URL and key replaced, and the ids its examples name replaced by the test
account's own where an example is about an existing group or contact), and each documented
error answer provoked for real."""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

from broker import accounts, sender_ids
from broker.config import Settings
from broker.status import SenderIdStatus
from tests.harness import SimStack, api_client, sim_stack, with_settings
from tests.tcp_proxy import TcpProxy

BASE = "/compat/velstack"
#: The ids the document's examples name (another account's, here: no such group/contact).
DOC_GROUP = "a4a8da21-88f8-4395-a9df-f859f22c2dfa"
DOC_GROUP_2 = "d565d047-df83-4b33-a498-f9de2aca50e6"
DOC_CONTACT = "84358395-f1c7-441c-ba69-7b74f30363e5"

QUICK_BODY = (
    '{ sender : "Velstack", recipient: "0205550368", message: "sent from the velstack api" }'
)
GROUP_SMS_BODY = (
    '{ sender : "Velstack", group_id: "a4a8da21-88f8-4395-a9df-f859f22c2dfa",'
    ' message: "sent from the velstack api" }'
)
CREATE_GROUP_BODY = '{ group_name : "My Group"}'
RENAME_GROUP_BODY = '{ group_new_name : "Man City Supporters"}'
CREATE_CONTACT_BODY = """{ group_id : "a4a8da21-88f8-4395-a9df-f859f22c2dfa", first_name: "sammy", last_name: "fort",
phone_number: "0205550368", email_address: "example@example.com" }"""  # noqa: E501
UPDATE_CONTACT_BODY = """{first_name: "perpetual", last_name: "obeng",
phone_number: "050XXXXXX", email_address: "example@example.com" }"""
SENDER_ID_BODY = '{purpose: "Software Business", sender_id: "VELSTACK" }'

LARAVEL_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")


class Stack(SimStack):
    async def account(
        self, *, credits: int = 48, senders: tuple[str, ...] = ("Velstack",)
    ) -> tuple[uuid.UUID, str]:
        """(account id, key): a Ghanaian account whose sender IDs the operator approved."""
        async with self.pool.acquire() as conn:
            account_id = await accounts.create_account(
                conn, f"vel-{uuid.uuid4().hex[:8]}", Decimal(credits), "GH"
            )
            key = await accounts.create_key(conn, account_id, rate_limit=100_000)
            for sender in senders:
                row = await sender_ids.register(conn, account_id, sender, "tests")
                await sender_ids.decide(conn, row.id, SenderIdStatus.APPROVED)
        return account_id, key.secret

    async def curl(
        self, method: str, path: str, key: str | None, body: str | None = None, **kw: Any
    ) -> tuple[int, Any]:
        """What the document's curl line sends: Bearer key, Accept JSON, and `-d` as a form
        post (curl's default content type)."""
        return await velstack_call(self.http, self.api, method, path, key, body, **kw)

    async def final_status(self, key: str, message_id: str) -> dict[str, Any]:
        deadline = time.monotonic() + 20
        while True:
            async with self.http.get(
                f"{self.api}/v1/messages/{message_id}",
                headers={"Authorization": f"Bearer {key}"},
            ) as resp:
                body = await resp.json()
            assert resp.status in (200, 404), body  # 404: not recorded yet
            if resp.status == 200 and body["status"] in ("delivered", "undelivered", "failed"):
                return dict(body)
            assert time.monotonic() < deadline, body
            await asyncio.sleep(0.1)

    async def balance(self, account_id: uuid.UUID) -> Decimal:
        value: Decimal = await self.pool.fetchval(
            "SELECT balance FROM accounts WHERE id = $1", account_id
        )
        return value


async def velstack_call(
    http: Any,
    api: str,
    method: str,
    path: str,
    key: str | None,
    body: str | None = None,
    *,
    json: Any = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, Any]:
    sent = {"Accept": "application/json", **(headers or {})}
    if key is not None:
        sent["Authorization"] = f"Bearer {key}"
    if body is not None:
        sent.setdefault("Content-Type", "application/x-www-form-urlencoded")
    async with http.request(
        method, f"{api}{BASE}{path}", data=body, json=json, headers=sent
    ) as resp:
        return resp.status, await resp.json()


def only_velstack(settings: Settings) -> Settings:
    """The gateway serving this dialect (DIALECTS=velstack): the others are not under test."""
    return with_settings(settings, dialects=("velstack",))


@pytest.fixture(scope="module")
async def stack(settings: Settings, pool: asyncpg.Pool) -> AsyncIterator[Stack]:
    async with sim_stack(only_velstack(settings), pool, Stack, "vel") as s:
        yield s


def ok(status: int, body: Any, message: str) -> Any:
    """The success envelope: 200, status true, code 200, the sentence; its data."""
    assert status == 200, body
    assert (body["status"], body["code"], body["message"]) == (True, 200, message), body
    return body["data"]


def refused(status: int, body: Any, code: int, error: str, message: str | None = None) -> None:
    """The failure envelope: status false, the HTTP status as code, a sentence."""
    assert status == code, body
    assert body["status"] is False and body["code"] == code, body
    assert body["error"] == error, body
    assert isinstance(body["message"], str) and body["message"], body
    if message is not None:
        assert body["message"] == message, body


async def doc_group(stack: Stack, key: str, name: str = "V BANK") -> str:
    status, body = await stack.curl("POST", "/api/group", key, f'{{ group_name : "{name}"}}')
    group_id: str = ok(status, body, "Group created successfully")["id"]
    return group_id


# --- Sending --------------------------------------------------------------------------------


async def test_quick_sms_example(stack: Stack) -> None:
    account_id, key = await stack.account(credits=48)
    status, body = await stack.curl("POST", "/api/quick/sms", key, QUICK_BODY)
    data = ok(status, body, "Message sent Successfully")
    summary = data["summary"]
    assert summary == {
        "message_id": summary["message_id"],
        "type": "Quick SMS",
        "message": "sent from the velstack api",
        "sender": "Velstack",
        "total_contacts": 1,
        "recipients": ["0205550368"],
        "credit_used": 1,
        "credit_left": "47.00",
    }
    message = await stack.final_status(key, summary["message_id"])
    assert (message["to"], message["from"], message["status"]) == (
        "+233205550368",
        "Velstack",
        "delivered",
    )
    assert await stack.balance(account_id) == 47


async def test_quick_sms_to_several_numbers_in_json(stack: Stack) -> None:
    """A JSON body works as well; several recipients: the batch's id, each number once."""
    _, key = await stack.account(credits=10)
    status, body = await stack.curl(
        "POST",
        "/api/quick/sms",
        key,
        json={"recipient": "0205550368,0248297302", "message": "hi", "sender": "Velstack"},
    )
    summary = ok(status, body, "Message sent Successfully")["summary"]
    assert summary["recipients"] == ["0205550368", "0248297302"]
    assert (summary["total_contacts"], summary["credit_used"], summary["credit_left"]) == (
        2,
        2,
        "8.00",
    )
    deadline = time.monotonic() + 20
    while True:  # the batch is the native one (404 until the charge worker records it)
        async with stack.http.get(
            f"{stack.api}/v1/batches/{summary['message_id']}",
            headers={"Authorization": f"Bearer {key}"},
        ) as resp:
            batch = await resp.json()
        if resp.status == 200 and batch["expanded"] == 2:
            break
        assert resp.status == 404 and time.monotonic() < deadline, batch
        await asyncio.sleep(0.1)
    assert batch["total"] == 2 and batch["cost"] == 2, batch


async def test_group_sms_example(stack: Stack) -> None:
    """As written the example names another account's group (404); with the account's own
    group of one contact, the documented summary."""
    account_id, key = await stack.account(credits=48)
    status, body = await stack.curl("POST", "/api/group/sms", key, GROUP_SMS_BODY)
    refused(status, body, 404, "NOT_FOUND")

    group = await doc_group(stack, key)
    status, body = await stack.curl(
        "POST", "/api/contact", key, CREATE_CONTACT_BODY.replace(DOC_GROUP, group)
    )
    ok(status, body, "New contact created successfully")
    status, body = await stack.curl(
        "POST", "/api/group/sms", key, GROUP_SMS_BODY.replace(DOC_GROUP, group)
    )
    summary = ok(status, body, "Message sent Successfully")["summary"]
    assert summary == {
        "message_id": summary["message_id"],
        "type": "Group SMS",
        "message": "sent from the velstack api",
        "sender": "Velstack",
        "total_contacts": 1,
        "recipients": ["0205550368"],
        "credit_used": 1,
        "credit_left": "47.00",
    }
    message = await stack.final_status(key, summary["message_id"])
    assert (message["to"], message["status"]) == ("+233205550368", "delivered")


async def test_group_sms_merges_members_once(stack: Stack) -> None:
    _, key = await stack.account(credits=10)
    first, second = await doc_group(stack, key, "A"), await doc_group(stack, key, "B")
    for n, group in (("0205550368", first), ("0248297302", first), ("0248237302", second)):
        status, body = await stack.curl(
            "POST", "/api/contact", key, json={"phone_number": n, "group_id": group}
        )
        ok(status, body, "New contact created successfully")
    status, body = await stack.curl(
        "POST", "/api/group/sms", key, json={"group_id": first, "message": "hello"}
    )
    summary = ok(status, body, "Message sent Successfully")["summary"]
    assert sorted(summary["recipients"]) == ["0205550368", "0248297302"]
    assert summary["total_contacts"] == 2 and summary["sender"] is None


@pytest.mark.parametrize(
    ("path", "body"),
    [("/api/quick/sms", QUICK_BODY), ("/api/group/sms", GROUP_SMS_BODY)],
    ids=["quick", "group"],
)
async def test_insufficient_balance_is_velstacks_403(stack: Stack, path: str, body: str) -> None:
    account_id, key = await stack.account(credits=0)
    if path == "/api/group/sms":
        group = await doc_group(stack, key)
        status, answer = await stack.curl(
            "POST", "/api/contact", key, CREATE_CONTACT_BODY.replace(DOC_GROUP, group)
        )
        ok(status, answer, "New contact created successfully")
        body = body.replace(DOC_GROUP, group)
    status, answer = await stack.curl("POST", path, key, body)
    refused(
        status, answer, 403, "INSUFFICIENT_CREDITS", "Insufficient balance to complete this message"
    )
    assert (
        await stack.pool.fetchval("SELECT count(*) FROM messages WHERE account_id = $1", account_id)
        == 0
    )


def proxied(url: str, proxy: TcpProxy) -> str:
    parts = urlsplit(url)
    userinfo = parts.netloc.rpartition("@")[0]
    return urlunsplit(parts._replace(netloc=f"{userinfo}@{proxy.host}:{proxy.port}"))


async def test_service_unavailable_is_velstacks_503(stack: Stack, settings: Settings) -> None:
    """RabbitMQ out of the API's reach (a TCP proxy cut): both sends answer Velstack's 503."""
    _, key = await stack.account(credits=10)
    group = await doc_group(stack, key)
    status, answer = await stack.curl(
        "POST", "/api/contact", key, CREATE_CONTACT_BODY.replace(DOC_GROUP, group)
    )
    ok(status, answer, "New contact created successfully")
    parts = urlsplit(settings.amqp_url)
    assert parts.hostname is not None and parts.port is not None
    proxy = TcpProxy(parts.hostname, parts.port)
    await proxy.start()
    try:
        cut = with_settings(only_velstack(settings), amqp_url=proxied(settings.amqp_url, proxy))
        async with api_client(cut) as client:
            api = str(client.make_url("")).rstrip("/")
            await proxy.cut()
            for path, body in (
                ("/api/quick/sms", QUICK_BODY),
                ("/api/group/sms", GROUP_SMS_BODY.replace(DOC_GROUP, group)),
            ):
                status, answer = await asyncio.wait_for(
                    velstack_call(client.session, api, "POST", path, key, body), 30
                )
                assert status == 503, answer
                assert answer["status"] is False and answer["code"] == 503, answer
                assert answer["message"] == "Service unavailable", answer
    finally:
        await proxy.stop()


@pytest.mark.parametrize(
    ("body", "error", "field"),
    [
        ('{ sender : "Velstack", message: "hi" }', "MISSING_RECIPIENT", "recipient"),
        ('{ recipient: "12", message: "hi" }', "INVALID_PHONE_NUMBER", "recipient"),
        ('{ recipient: "0205550368" }', "EMPTY_BODY", "message"),
        (
            '{ sender: "NOPE", recipient: "0205550368", message: "hi" }',
            "INVALID_SENDER_ID",
            "sender",
        ),
        ('{ recipient: "0205550368", message: ', "INVALID_JSON", None),
    ],
    ids=["no-recipient", "bad-number", "no-message", "unapproved-sender", "broken-body"],
)
async def test_quick_sms_bad_input(stack: Stack, body: str, error: str, field: str | None) -> None:
    _, key = await stack.account()
    status, answer = await stack.curl("POST", "/api/quick/sms", key, body)
    refused(status, answer, 400, error)
    assert answer.get("field") == field


# --- Groups ---------------------------------------------------------------------------------


async def test_group_examples(stack: Stack) -> None:
    """Create, list, read (the example's GET carries a body, ignored), rename, delete."""
    _, key = await stack.account()
    vbank = await doc_group(stack, key)
    status, body = await stack.curl("POST", "/api/group", key, CREATE_GROUP_BODY)
    created = ok(status, body, "Group created successfully")
    assert created == {"id": created["id"], "name": "My Group", "members": 0}
    my_group = created["id"]
    status, body = await stack.curl(
        "POST", "/api/contact", key, CREATE_CONTACT_BODY.replace(DOC_GROUP, vbank)
    )
    ok(status, body, "New contact created successfully")

    status, body = await stack.curl("GET", "/api/group", key)
    data = ok(status, body, "Showing all groups")
    assert data == {
        "Summary": [
            {"id": vbank, "name": "V BANK", "members": 1},
            {"id": my_group, "name": "My Group", "members": 0},
        ],
        "collection": None,
    }

    status, body = await stack.curl("GET", f"/api/group/{my_group}", key, CREATE_GROUP_BODY)
    assert ok(status, body, "Showing a single group") == [
        {"id": my_group, "name": "My Group", "members": 0}
    ]

    status, body = await stack.curl("PUT", f"/api/group/{my_group}", key, RENAME_GROUP_BODY)
    assert ok(status, body, "Group updated to Man City Supporters") is None
    status, body = await stack.curl("GET", f"/api/group/{my_group}", key)
    assert ok(status, body, "Showing a single group")[0]["name"] == "Man City Supporters"

    status, body = await stack.curl("DELETE", f"/api/group/{my_group}", key)
    assert ok(status, body, "Group deleted successfully") is None
    status, body = await stack.curl("GET", f"/api/group/{my_group}", key)
    refused(status, body, 404, "NOT_FOUND")


async def test_group_examples_on_the_documents_ids(stack: Stack) -> None:
    """As written, the read, rename and delete examples name a group this account does not
    have: 404 in Velstack's envelope, nothing changed."""
    _, key = await stack.account()
    for method, body in (("GET", CREATE_GROUP_BODY), ("PUT", RENAME_GROUP_BODY), ("DELETE", None)):
        status, answer = await stack.curl(method, f"/api/group/{DOC_GROUP_2}", key, body)
        refused(status, answer, 404, "NOT_FOUND")


async def test_group_name_errors(stack: Stack) -> None:
    _, key = await stack.account()
    group = await doc_group(stack, key)
    status, body = await stack.curl("POST", "/api/group", key, '{ group_name : "V BANK"}')
    refused(status, body, 409, "GROUP_EXISTS")
    status, body = await stack.curl("POST", "/api/group", key, '{ group_name : "  "}')
    refused(status, body, 400, "INVALID_NAME")
    assert body["field"] == "group_name"
    status, body = await stack.curl("PUT", f"/api/group/{group}", key, "{}")
    refused(status, body, 400, "INVALID_NAME")
    assert body["field"] == "group_new_name"


# --- Contacts -------------------------------------------------------------------------------


async def test_contact_examples(stack: Stack) -> None:
    _, key = await stack.account()
    vbank = await doc_group(stack, key)
    status, body = await stack.curl(
        "POST", "/api/contact", key, CREATE_CONTACT_BODY.replace(DOC_GROUP, vbank)
    )
    sammy = ok(status, body, "New contact created successfully")
    assert sammy == {
        "id": sammy["id"],
        "first_name": "sammy",
        "last_name": "fort",
        "phone_number": "0205550368",
        "email_address": "example@example.com",
        "Group": "V BANK",
        "added_date": sammy["added_date"],
    }
    assert LARAVEL_TIME.match(sammy["added_date"]), sammy
    status, body = await stack.curl(
        "POST",
        "/api/contact",
        key,
        json={
            "group_id": vbank,
            "first_name": "michael",
            "last_name": "kyeremeh",
            "phone_number": "0248297302",
            "email_address": "example@example.com",
        },
    )
    michael = ok(status, body, "New contact created successfully")
    status, body = await stack.curl(
        "POST", "/api/contact", key, json={"phone_number": "0248237302"}
    )
    loner = ok(status, body, "New contact created successfully")
    assert loner["Group"] is None and loner["first_name"] is None

    status, body = await stack.curl("GET", "/api/contact", key)
    assert ok(status, body, "Showing all contacts") == [sammy, michael, loner]

    status, body = await stack.curl("GET", f"/api/contact/{vbank}", key)
    assert ok(status, body, "Showing contacts of V BANK") == {
        "results": [sammy, michael],
        "contacts": None,
    }

    # As written the update example's number is a placeholder (050XXXXXX): refused, unchanged.
    status, body = await stack.curl(
        "PUT", f"/api/contact/{michael['id']}", key, UPDATE_CONTACT_BODY
    )
    refused(status, body, 400, "INVALID_PHONE_NUMBER")
    assert body["field"] == "phone_number"
    status, body = await stack.curl(
        "PUT",
        f"/api/contact/{michael['id']}",
        key,
        UPDATE_CONTACT_BODY.replace("050XXXXXX", "0501234567"),
    )
    assert ok(status, body, "Contact updated successfully") is None
    status, body = await stack.curl("GET", f"/api/contact/{vbank}", key)
    updated = ok(status, body, "Showing contacts of V BANK")["results"][1]
    assert (updated["first_name"], updated["last_name"], updated["phone_number"]) == (
        "perpetual",
        "obeng",
        "0501234567",
    )
    assert updated["Group"] == "V BANK"  # not named in the update: kept

    status, body = await stack.curl("DELETE", f"/api/contact/{michael['id']}", key)
    assert ok(status, body, "Contact deleted successfully") is None
    status, body = await stack.curl("GET", "/api/contact", key)
    assert [c["id"] for c in ok(status, body, "Showing all contacts")] == [sammy["id"], loner["id"]]


async def test_contact_examples_on_the_documents_ids(stack: Stack) -> None:
    """As written, the examples name another account's group and contact: 404, nothing made."""
    account_id, key = await stack.account()
    status, body = await stack.curl("POST", "/api/contact", key, CREATE_CONTACT_BODY)
    refused(status, body, 404, "NOT_FOUND")
    status, body = await stack.curl("GET", f"/api/contact/{DOC_GROUP}", key)
    refused(status, body, 404, "NOT_FOUND")
    fixed = UPDATE_CONTACT_BODY.replace("050XXXXXX", "0501234567")
    status, body = await stack.curl("PUT", f"/api/contact/{DOC_CONTACT}", key, fixed)
    refused(status, body, 404, "NOT_FOUND")
    status, body = await stack.curl("DELETE", f"/api/contact/{DOC_CONTACT}", key)
    refused(status, body, 404, "NOT_FOUND")
    assert (
        await stack.pool.fetchval("SELECT count(*) FROM contacts WHERE account_id = $1", account_id)
        == 0
    )


async def test_contact_errors(stack: Stack) -> None:
    _, key = await stack.account()
    status, body = await stack.curl(
        "POST", "/api/contact", key, json={"phone_number": "0205550368"}
    )
    ok(status, body, "New contact created successfully")
    status, body = await stack.curl(
        "POST", "/api/contact", key, json={"phone_number": "0205550368"}
    )
    refused(status, body, 409, "CONTACT_EXISTS")
    status, body = await stack.curl(
        "POST", "/api/contact", key, json={"phone_number": "0248297302", "email_address": "nope"}
    )
    refused(status, body, 400, "INVALID_EMAIL")
    assert body["field"] == "email_address"
    status, body = await stack.curl("POST", "/api/contact", key, json={"first_name": "x"})
    refused(status, body, 400, "INVALID_PHONE_NUMBER")
    assert body["field"] == "phone_number"


# --- Sender IDs and authentication ----------------------------------------------------------


async def test_sender_id_example(stack: Stack) -> None:
    _, key = await stack.account(senders=())
    status, body = await stack.curl("POST", "/api/sender/id", key, SENDER_ID_BODY)
    data = ok(status, body, "Id registered successfully")
    assert data == [
        {
            "id": "VELSTACK",
            "purpose": "Software Business",
            "status": "pending",
            "date": data[0]["date"],
        }
    ]
    assert LARAVEL_TIME.match(data[0]["date"])
    status, body = await stack.curl("POST", "/api/sender/id", key, SENDER_ID_BODY)
    refused(status, body, 409, "SENDER_ID_EXISTS")
    status, body = await stack.curl(
        "POST", "/api/sender/id", key, '{purpose: "x", sender_id: "TOO-LONG-SENDER" }'
    )
    refused(status, body, 400, "INVALID_SENDER_ID")
    # Pending is not approved: it cannot be sent from yet.
    status, body = await stack.curl(
        "POST", "/api/quick/sms", key, QUICK_BODY.replace('"Velstack"', '"VELSTACK"')
    )
    refused(status, body, 400, "INVALID_SENDER_ID")


@pytest.mark.parametrize(
    ("key", "code", "error"),
    [(None, 401, "UNAUTHORIZED"), ("YOUR_API_KEY", 401, "INVALID_API_KEY")],
    ids=["no-key", "unknown-key"],
)
async def test_authentication_in_velstacks_envelope(
    stack: Stack, key: str | None, code: int, error: str
) -> None:
    for method, path, body in (
        ("POST", "/api/quick/sms", QUICK_BODY),
        ("GET", "/api/group", None),
        ("GET", "/api/contact", None),
        ("POST", "/api/sender/id", SENDER_ID_BODY),
    ):
        status, answer = await stack.curl(method, path, key, body)
        refused(status, answer, code, error)


async def test_unknown_route_in_velstacks_envelope(stack: Stack) -> None:
    _, key = await stack.account()
    status, body = await stack.curl("GET", "/api/nothing", key)
    refused(status, body, 404, "NOT_FOUND")
