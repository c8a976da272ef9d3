"""The Vendel dialect (seed 003) on the whole gateway: every example request of its document run
as written (base URL → /compat/vendel, key and ids → a test account's, the placeholder number
+1234567890, which is not a valid number, → a real one), and every documented error provoked."""

from __future__ import annotations

import asyncio
import base64
import json
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest
import requests

from api.dialects.vendel_shapes import STATUSES
from broker import accounts, jwt_tokens
from broker.config import Settings
from broker.segmentation import decode_short_message
from broker.status import MessageStatus
from broker.store import connectors as connectors_store
from broker.store import gateway_secrets
from broker.store import keys as keys_store
from tests.harness import Customer, SimStack, add_connector, sim_stack

PLACEHOLDER = "+1234567890"


def number(i: int) -> str:
    return f"+1650254{1000 + i:04d}"


class Stack(SimStack):
    @property
    def base(self) -> str:
        return f"{self.api}/compat/vendel"

    async def vendel(
        self, path: str, payload: Any, headers: dict[str, str]
    ) -> tuple[int, Any, dict[str, str]]:
        async with self.http.post(f"{self.base}{path}", json=payload, headers=headers) as r:
            return r.status, await r.json(), dict(r.headers)

    async def native(self, who: Customer, path: str, payload: dict[str, Any]) -> Any:
        async with self.http.post(f"{self.api}{path}", json=payload, headers=who.headers) as r:
            assert r.status in (200, 201), await r.text()
            return await r.json()

    async def connector(self) -> str:
        """The connector the default route names (this module's simulated carrier)."""
        rows = await connectors_store.routes(self.pool)
        return next(r.connector for r in rows if not r.prefix and r.channel == "sms")

    async def texts_to(self, phone: str, count: int = 1) -> list[str]:
        deadline = time.monotonic() + 20
        while True:
            texts = [
                decode_short_message(
                    r.short_message, r.data_coding, udhi=bool(r.esm_class & 0x40)
                ).text
                for r in list(self.sim.submitted)
                if "+" + r.destination_addr == phone
            ]
            if len(texts) >= count:
                return texts
            assert time.monotonic() < deadline, texts
            await asyncio.sleep(0.05)

    async def count(self, who: Customer) -> int:
        n: int = await self.pool.fetchval(
            "SELECT count(*) FROM messages WHERE account_id = $1", who.account_id
        )
        return n


def key_headers(who: Customer) -> dict[str, str]:
    return {"X-API-Key": who.key, "Content-Type": "application/json"}


@pytest.fixture(scope="module")
async def stack(settings: Settings, pool: asyncpg.Pool) -> AsyncIterator[Stack]:
    async with sim_stack(settings, pool, Stack, "vendel") as s:
        yield s


# --- POST /api/sms/send ------------------------------------------------------------------


async def test_curl_example_with_groups(stack: Stack) -> None:
    """The curl example: a number and two groups, members merged once; as written, its
    placeholder number is refused as not E.164-valid."""
    who = await stack.customer(credits=50)
    members = [number(1), number(2), number(3)]
    contacts = [(await stack.native(who, "/v1/contacts", {"phone": p}))["id"] for p in members]
    groups = []
    for name, ids in (("g1", contacts[:2]), ("g2", contacts[1:])):
        group = await stack.native(who, "/v1/groups", {"name": name})
        await stack.native(who, f"/v1/groups/{group['id']}/contacts", {"contact_ids": ids})
        groups.append(group["id"])
    example = {
        "recipients": [PLACEHOLDER],
        "group_ids": ["GROUP_ID_1", "GROUP_ID_2"],
        "body": "Your verification code is 123456",
    }
    status, body, _ = await stack.vendel("/api/sms/send", example, key_headers(who))
    assert (status, body) == (
        400,
        {"error": "invalid_phone_number", "message": "Phone number must be in E.164 format"},
    )
    example |= {"recipients": [members[0]], "group_ids": groups}
    status, body, headers = await stack.vendel("/api/sms/send", example, key_headers(who))
    assert status == 200, body
    assert set(body) == {"batch_id", "message_ids", "recipients_count", "status"}
    assert body["status"] == "accepted" and body["recipients_count"] == 3
    assert len(set(body["message_ids"])) == 3
    assert "X-RateLimit-Limit" in headers
    for phone in members:
        assert await stack.texts_to(phone) == ["Your verification code is 123456"]


async def test_one_recipient_has_no_batch_id_two_have_one(stack: Stack) -> None:
    who = await stack.customer(credits=10)
    status, body, _ = await stack.vendel(
        "/api/sms/send", {"recipients": [number(10)], "body": "hi"}, key_headers(who)
    )
    assert status == 200, body
    assert set(body) == {"message_ids", "recipients_count", "status"}
    assert body["recipients_count"] == 1 and len(body["message_ids"]) == 1
    status, body, _ = await stack.vendel(
        "/api/sms/send", {"recipients": [number(11), number(12)], "body": "hi"}, key_headers(who)
    )
    assert status == 200, body
    uuid.UUID(body["batch_id"])
    assert body["recipients_count"] == 2 and len(body["message_ids"]) == 2


async def test_python_example_as_written(stack: Stack) -> None:
    who = await stack.customer(credits=10)
    base, key, to = stack.base, who.key, number(20)

    def example() -> Any:
        response = requests.post(
            f"{base}/api/sms/send",
            headers={"X-API-Key": key, "Content-Type": "application/json"},
            json={"recipients": [to], "body": "Hello from Python!"},
        )
        return response.status_code, response.json()

    status, data = await asyncio.to_thread(example)
    assert status == 200, data
    assert data["status"] == "accepted" and data["recipients_count"] == 1
    assert await stack.texts_to(to) == ["Hello from Python!"]


async def test_javascript_example_as_written(stack: Stack, tmp_path: Any) -> None:
    who = await stack.customer(credits=10)
    to = number(21)
    script = tmp_path / "example.mjs"
    script.write_text(
        f"""const response = await fetch("{stack.base}/api/sms/send", {{
  method: "POST",
  headers: {{
    "X-API-Key": "{who.key}",
    "Content-Type": "application/json"
  }},
  body: JSON.stringify({{
    recipients: ["{to}"],
    body: "Hello from JavaScript!"
  }})
}});

const data = await response.json();
console.log(data);
"""
    )
    proc = await asyncio.create_subprocess_exec(
        "node", str(script), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await proc.communicate()
    assert proc.returncode == 0, err.decode()
    printed = out.decode()
    assert "status: 'accepted'" in printed and "recipients_count: 1" in printed, printed
    assert await stack.texts_to(to) == ["Hello from JavaScript!"]


async def test_body_up_to_1600_characters(stack: Stack) -> None:
    who = await stack.customer(credits=100)
    status, body, _ = await stack.vendel(
        "/api/sms/send", {"recipients": [number(30)], "body": "a" * 1600}, key_headers(who)
    )
    assert status == 200, body
    status, body, _ = await stack.vendel(
        "/api/sms/send", {"recipients": [number(30)], "body": "a" * 1601}, key_headers(who)
    )
    assert status == 400, body
    assert body["message"] == "Message body exceeds 1600 character limit"


async def test_invalid_phone_number(stack: Stack) -> None:
    who = await stack.customer(credits=10)
    for bad in (PLACEHOLDER, "6502541000", "+1 650 254 1000", "not a number"):
        status, body, _ = await stack.vendel(
            "/api/sms/send", {"recipients": [bad], "body": "x"}, key_headers(who)
        )
        assert status == 400, (bad, body)
        assert body == {
            "error": "invalid_phone_number",
            "message": "Phone number must be in E.164 format",
        }
    assert await stack.count(who) == 0


async def test_unauthorized(stack: Stack) -> None:
    who = await stack.customer(credits=10)
    expected = {"error": "unauthorized", "message": "Authentication required"}
    payload = {"recipients": [number(40)], "body": "x"}
    for headers in (
        {},
        {"X-API-Key": "vk_your_api_key"},
        {"Authorization": "Bearer not.a.token"},
    ):
        status, body, _ = await stack.vendel("/api/sms/send", payload, headers)
        assert (status, body) == (401, expected), headers
    await keys_store.revoke(stack.pool, await own_key_id(stack, who), None)
    await asyncio.sleep(stack.settings.auth_cache_seconds + 0.1)
    status, body, _ = await stack.vendel("/api/sms/send", payload, key_headers(who))
    assert (status, body) == (401, expected)
    assert await stack.count(who) == 0


async def test_quota_exceeded(stack: Stack) -> None:
    who = await stack.customer(credits=1)
    status, body, _ = await stack.vendel(
        "/api/sms/send", {"recipients": [number(50), number(51)], "body": "x"}, key_headers(who)
    )
    assert (status, body) == (
        402,
        {"error": "quota_exceeded", "message": "Monthly message quota exceeded"},
    )
    assert await stack.count(who) == 0


# --- device_id -----------------------------------------------------------------------------


async def test_device_id_names_a_connector(stack: Stack) -> None:
    who = await stack.customer(credits=10)
    own = await stack.connector()
    status, body, _ = await stack.vendel(
        "/api/sms/send",
        {"recipients": [number(60)], "body": "via device", "device_id": own},
        key_headers(who),
    )
    assert status == 200, body
    assert await stack.texts_to(number(60)) == ["via device"]
    status, body, _ = await stack.vendel(
        "/api/sms/send",
        {"recipients": [number(61)], "body": "x", "device_id": "no-such-device"},
        key_headers(who),
    )
    assert (status, body) == (400, {"message": "Device not found."})
    other = f"vendel-other-{uuid.uuid4().hex[:6]}"
    await add_connector(stack.pool, other, stack.sim.port)
    status, body, _ = await stack.vendel(
        "/api/sms/send",
        {"recipients": [number(62)], "body": "x", "device_id": other},
        key_headers(who),
    )
    assert (status, body) == (400, {"message": f"Device {other} cannot send to {number(62)}."})
    assert await stack.count(who) == 1


# --- POST /api/sms/send-template -------------------------------------------------------------


async def test_template_example_gives_alice_her_text(stack: Stack) -> None:
    who = await stack.customer(credits=10)
    alice = number(70)
    await stack.native(who, "/v1/contacts", {"phone": alice, "first_name": "Alice"})
    template = await stack.native(
        who, "/v1/templates", {"name": "otp", "body": "Hi {{name}}, your code is {{code}}"}
    )
    example = {
        "recipients": [alice],
        "template_id": template["id"],
        "variables": {"code": "123456", "minutes": "10"},
    }
    status, body, _ = await stack.vendel("/api/sms/send-template", example, key_headers(who))
    assert status == 200, body
    assert set(body) == {"message_ids", "recipients_count", "status"}
    assert body["recipients_count"] == 1 and body["status"] == "accepted"
    assert await stack.texts_to(alice) == ["Hi Alice, your code is 123456"]


async def test_template_errors(stack: Stack) -> None:
    who, other = await stack.customer(credits=10), await stack.customer(credits=10)
    mine = await stack.native(who, "/v1/templates", {"name": "c", "body": "Code {{code}}"})
    theirs = await stack.native(other, "/v1/templates", {"name": "c", "body": "Code {{code}}"})
    to = [number(80)]
    not_found = {"message": "Template not found."}
    for template_id in ("TEMPLATE_RECORD_ID", str(uuid.uuid4())):
        status, body, _ = await stack.vendel(
            "/api/sms/send-template",
            {"recipients": to, "template_id": template_id, "variables": {"code": "1"}},
            key_headers(who),
        )
        assert (status, body) == (400, not_found), template_id
    status, body, _ = await stack.vendel(
        "/api/sms/send-template",
        {"recipients": to, "template_id": theirs["id"], "variables": {"code": "1"}},
        key_headers(who),
    )
    assert (status, body) == (400, {"message": "Template does not belong to user."})
    status, body, _ = await stack.vendel(
        "/api/sms/send-template", {"recipients": to, "template_id": mine["id"]}, key_headers(who)
    )
    assert (status, body) == (400, {"message": "Missing variable: code."})
    assert await stack.count(who) == 0


# --- JWT -------------------------------------------------------------------------------------


async def own_key_id(stack: Stack, who: Customer) -> uuid.UUID:
    async with stack.http.get(f"{stack.api}/v1/keys", headers=who.headers) as r:
        keys = (await r.json())["data"]
    return uuid.UUID(next(k["id"] for k in keys if who.key.startswith(k["prefix"])))


async def test_jwt_bearer_stands_for_its_key(stack: Stack) -> None:
    who = await stack.customer(credits=10)
    status, minted, _ = await stack.vendel("/api/auth/token", None, {"X-API-Key": who.key})
    assert status == 200, minted
    assert minted["token_type"] == "Bearer" and 0 < minted["expires_in"] <= 3600
    token = minted["token"]
    bearer = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    status, body, _ = await stack.vendel(
        "/api/sms/send", {"recipients": [number(90)], "body": "by token"}, bearer
    )
    assert status == 200, body
    assert await stack.texts_to(number(90)) == ["by token"]
    # A token does not mint tokens; a tampered or expired one is refused.
    status, body, _ = await stack.vendel("/api/auth/token", None, bearer)
    assert status == 401, body
    head, payload, sig = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    forged = base64.urlsafe_b64encode(
        json.dumps({**claims, "exp": claims["exp"] + 10**6}).encode()
    ).rstrip(b"=")
    unauthorized = {"error": "unauthorized", "message": "Authentication required"}
    send = {"recipients": [number(91)], "body": "x"}
    status, body, _ = await stack.vendel(
        "/api/sms/send", send, {"Authorization": f"Bearer {head}.{forged.decode()}.{sig}"}
    )
    assert (status, body) == (401, unauthorized)
    secret = await gateway_secrets.ensure(stack.pool, "vendel_jwt", bytes(32))
    now = int(time.time())
    expired = jwt_tokens.mint(
        jwt_tokens.TokenClaims(
            uuid.UUID(claims["kid"]), uuid.UUID(claims["sub"]), now - 7200, now - 3600
        ),
        secret,
    )
    status, body, _ = await stack.vendel(
        "/api/sms/send", send, {"Authorization": f"Bearer {expired}"}
    )
    assert (status, body) == (401, unauthorized)
    # Revoking the key ends its tokens.
    await keys_store.revoke(stack.pool, uuid.UUID(claims["kid"]), None)
    status, body, _ = await stack.vendel("/api/sms/send", send, bearer)
    assert (status, body) == (401, unauthorized)
    assert await stack.count(who) == 1


# --- statuses --------------------------------------------------------------------------------


def test_every_status_has_a_vendel_name() -> None:
    assert set(STATUSES) == set(MessageStatus)
    assert set(STATUSES.values()) == {
        "pending",
        "assigned",
        "sending",
        "sent",
        "delivered",
        "failed",
    }


async def test_a_message_reads_back_with_vendel_status(stack: Stack) -> None:
    who = await stack.customer(credits=10)
    status, body, _ = await stack.vendel(
        "/api/sms/send", {"recipients": [number(95)], "body": "track me"}, key_headers(who)
    )
    assert status == 200, body
    url = f"{stack.base}/api/collections/sms_messages/records/{body['message_ids'][0]}"
    deadline = time.monotonic() + 20
    while True:
        async with stack.http.get(url, headers={"X-API-Key": who.key}) as r:
            # 404 until the charge worker has written the accepted message.
            assert r.status in (200, 404)
            record = await r.json()
        if record.get("status") == "delivered":
            break
        assert r.status == 404 or record["status"] in ("assigned", "sending", "sent"), record
        assert time.monotonic() < deadline, record
        await asyncio.sleep(0.1)
    assert record["to"] == number(95) and record["id"] == body["message_ids"][0]
    async with stack.http.get(url, headers={"X-API-Key": (await stack.customer()).key}) as r:
        assert r.status == 404


# --- 503 no_devices (last: it takes the default route away for a moment) -------------------


async def test_no_devices_when_no_route_carries_a_recipient(stack: Stack) -> None:
    who = await stack.customer(credits=10)
    rows = [
        r for r in await connectors_store.routes(stack.pool) if not r.prefix and r.channel == "sms"
    ]
    await stack.pool.execute("DELETE FROM routes WHERE prefix = '' AND channel = 'sms'")
    try:
        await asyncio.sleep(5.2)  # the API reloads its routes every 5 seconds
        status, body, _ = await stack.vendel(
            "/api/sms/send", {"recipients": [number(99)], "body": "x"}, key_headers(who)
        )
        assert (status, body) == (
            503,
            {"error": "no_devices", "message": "No devices available to send messages"},
        )
        assert await stack.count(who) == 0
    finally:
        async with stack.pool.acquire() as conn:
            for r in rows:
                await accounts.add_route(conn, r.prefix, r.connector, r.price)
