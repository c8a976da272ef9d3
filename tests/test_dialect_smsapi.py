"""The smsapi dialect (/compat/smsapi) end to end: every example request of the provider's
document run as written (its base URL replaced by the gateway's, its credentials by a test
account's), every error it documents provoked for real, and the messages seen at the simulated
carrier."""

from __future__ import annotations

import asyncio
import random
import re
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import asyncpg
import pytest
from aiohttp import web
from multidict import CIMultiDictProxy

from broker import accounts, logins
from broker.config import Settings
from tests.harness import Customer, SimStack, sim_stack

BASE = "/compat/smsapi"
#: The document's example request headers.
DOC_HEADERS = {"Content-Type": "application/json", "Accept": "application/json"}
KEY_REQUIRED = {
    "error": "API key is required",
    "help": "Provide X-API-Key header or api_key parameter",
}
PASSWORD = "pass123-long-enough"


@dataclass
class Answer:
    status: int
    headers: CIMultiDictProxy[str]
    body: Any
    text: str


@dataclass
class Login:
    customer: Customer
    username: str
    password: str


def loopback_session() -> aiohttp.ClientSession:
    """A client calling from an address of its own in 127.0.0.0/8: requests made before a key
    is known are counted per address, so no other run or test shares this one's count."""
    octets = (random.randint(1, 250), random.randint(1, 250), random.randint(2, 250))
    address = "127.{}.{}.{}".format(*octets)
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(local_addr=(address, 0)))


class Stack(SimStack):
    #: The module's client (see loopback_session).
    client: aiohttp.ClientSession | None = None

    async def call(
        self, method: str, path: str, *, session: aiohttp.ClientSession | None = None, **kw: Any
    ) -> Answer:
        http = session or self.client or self.http
        async with http.request(method, f"{self.api}{BASE}{path}", **kw) as resp:
            text = await resp.text()
            body = await resp.json() if resp.content_type == "application/json" else None
            return Answer(resp.status, resp.headers, body, text)

    async def login(self, credits: int = 100) -> Login:
        """A Kenyan account (so 07... numbers are local) with a login made as the operator
        makes one."""
        customer = await self.customer(region="KE", credits=credits)
        username = f"user-{uuid.uuid4().hex[:8]}"
        async with self.pool.acquire() as conn:
            await logins.set_login(conn, customer.account_id, username, PASSWORD)
        return Login(customer, username, PASSWORD)

    async def key(self, customer: Customer, **kw: Any) -> str:
        async with self.pool.acquire() as conn:
            made = await accounts.create_key(conn, customer.account_id, **kw)
        return made.secret

    async def delivered_to(self, numbers: set[str], within: float = 20.0) -> None:
        """Wait until the simulated carrier got a submit for every number (E.164)."""
        deadline = time.monotonic() + within
        while True:
            seen = {"+" + r.destination_addr for r in list(self.sim.submitted)}
            if numbers <= seen:
                return
            assert time.monotonic() < deadline, numbers - seen
            await asyncio.sleep(0.1)

    async def messages_of(self, customer: Customer) -> int:
        found: int = await self.pool.fetchval(
            "SELECT count(*) FROM messages WHERE account_id = $1", customer.account_id
        )
        return found

    async def keys_of(self, customer: Customer) -> int:
        found: int = await self.pool.fetchval(
            "SELECT count(*) FROM api_keys WHERE account_id = $1", customer.account_id
        )
        return found


@pytest.fixture(scope="module")
async def stack(settings: Settings, pool: asyncpg.Pool) -> AsyncIterator[Stack]:
    async with sim_stack(settings, pool, Stack, "smsapi") as s, loopback_session() as client:
        s.client = client
        yield s


def limited(answer: Answer, limit: int) -> None:
    """x-ratelimit-limit and x-ratelimit-remaining, as on every answer of the provider, and
    the other headers its examples show."""
    assert answer.headers["access-control-allow-origin"] == "*"
    assert answer.headers["cache-control"] == "no-cache, private"
    assert answer.headers["x-ratelimit-limit"] == str(limit), dict(answer.headers)
    assert int(answer.headers["x-ratelimit-remaining"]) >= 0


def sent(answer: Answer, numbers: list[str]) -> None:
    assert answer.status == 200, answer.text
    body = answer.body
    assert body["message"] == "SMS sent successfully."
    assert body["recipients"] == len(numbers)
    assert body["cost"] == len(numbers)
    assert [m["number"] for m in body["messages"]] == numbers
    assert all(m["status"] == "queued" and m["segments"] == 1 for m in body["messages"])


def soon(days: int, stamp: str) -> None:
    expires = datetime.fromisoformat(stamp)
    assert abs(expires - (datetime.now(UTC) + timedelta(days=days))) < timedelta(minutes=1)


KE = ["+254701234567", "+254712345678"]
DOC_SEND = {"numbers": "0701234567, 0712345678", "message_body": "Hello, this is a test message."}


# --- v1: POST /v1/sms/send with a login ----------------------------------------------------


async def test_v1_send_with_form_parameters(stack: Stack) -> None:
    """The document's parameters as form parameters: both local numbers read with the
    account's region, sent, and at the carrier."""
    who = await stack.login()
    answer = await stack.call(
        "POST",
        "/v1/sms/send",
        data={**DOC_SEND, "username": who.username, "password": who.password},
    )
    sent(answer, KE)
    limited(answer, 60)  # the login's key
    await stack.delivered_to(set(KE))


async def test_v1_send_with_url_parameters(stack: Stack) -> None:
    who = await stack.login()
    answer = await stack.call(
        "POST",
        "/v1/sms/send",
        params={**DOC_SEND, "username": who.username, "password": who.password},
    )
    sent(answer, KE)
    assert answer.body["batch_id"] is not None
    await stack.delivered_to(set(KE))


async def test_v1_invalid_phone_number(stack: Stack) -> None:
    who = await stack.login()
    answer = await stack.call(
        "POST",
        "/v1/sms/send",
        data={**DOC_SEND, "numbers": "0701234567, 12345", "username": who.username,
              "password": who.password},
    )  # fmt: skip
    assert answer.status == 400
    assert answer.body == {"error": "Invalid phone number format."}
    limited(answer, 60)
    assert await stack.messages_of(who.customer) == 0


@pytest.mark.parametrize(
    "credentials",
    [
        {"password": "wrong-password"},
        {"username": "nobody-at-all"},
        {"password": ""},
        {"username": None, "password": None},
    ],
    ids=["wrong-password", "unknown-user", "empty-password", "none"],
)
async def test_v1_unauthorized(stack: Stack, credentials: dict[str, str | None]) -> None:
    who = await stack.login()
    given = {"username": who.username, "password": who.password, **credentials}
    form = {**DOC_SEND, **{k: v for k, v in given.items() if v is not None}}
    answer = await stack.call("POST", "/v1/sms/send", data=form)
    assert answer.status == 401
    assert answer.body == {"error": "Unauthorized."}
    limited(answer, 60)  # counted by address: no key answered for it
    assert await stack.messages_of(who.customer) == 0


async def test_v1_missing_parameters_are_laravel_422(stack: Stack) -> None:
    who = await stack.login()
    answer = await stack.call(
        "POST",
        "/v1/sms/send",
        data={"numbers": " ", "username": who.username, "password": who.password},
    )
    assert answer.status == 422
    assert answer.body == {
        "message": "The numbers field is required. (and 1 more error)",
        "errors": {
            "numbers": ["The numbers field is required."],
            "message_body": ["The message body field is required."],
        },
    }


async def test_v1_insufficient_credits(stack: Stack) -> None:
    who = await stack.login(credits=1)
    answer = await stack.call(
        "POST",
        "/v1/sms/send",
        data={**DOC_SEND, "username": who.username, "password": who.password},
    )
    assert answer.status == 402
    assert set(answer.body) == {"error"} and "credit" in answer.body["error"]
    assert await stack.messages_of(who.customer) == 0


# --- v2: /api/v2/sms/send and /api/v2/account/balance with a key ---------------------------


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/v2/sms/send"),
        ("POST", "/api/v2/sms/send"),
        ("GET", "/api/v2/account/balance"),
    ],
)
async def test_v2_examples_as_written_need_a_key(stack: Stack, method: str, path: str) -> None:
    """The document's examples carry no key: its 401 body, with the rate-limit headers (60 a
    minute per address before a key is known), the remaining count going down."""
    first = await stack.call(method, path, headers=DOC_HEADERS)
    second = await stack.call(method, path, headers=DOC_HEADERS)
    for answer in (first, second):
        assert answer.status == 401
        assert answer.body == KEY_REQUIRED
        limited(answer, 60)
    assert int(second.headers["x-ratelimit-remaining"]) <= int(
        first.headers["x-ratelimit-remaining"]
    )


async def test_v2_send_get_with_the_key_header(stack: Stack) -> None:
    who = await stack.login()
    headers = {**DOC_HEADERS, "X-API-Key": who.customer.key}
    answer = await stack.call("GET", "/api/v2/sms/send", params=DOC_SEND, headers=headers)
    sent(answer, KE)
    limited(answer, 100_000)  # the key's own limit
    await stack.delivered_to(set(KE))


async def test_v2_send_post_with_the_api_key_parameter(stack: Stack) -> None:
    who = await stack.login()
    form = await stack.call(
        "POST", "/api/v2/sms/send", data={**DOC_SEND, "api_key": who.customer.key}
    )
    sent(form, KE)
    query = await stack.call(
        "POST", "/api/v2/sms/send", params={"api_key": who.customer.key}, json=DOC_SEND
    )
    sent(query, KE)
    one = await stack.call(
        "POST",
        "/api/v2/sms/send",
        json={"numbers": "0701234567", "message_body": "Hi", "api_key": who.customer.key},
    )
    assert one.status == 200 and one.body["batch_id"] is None
    assert [m["number"] for m in one.body["messages"]] == ["+254701234567"]


async def test_v2_errors(stack: Stack) -> None:
    who = await stack.login()
    headers = {"X-API-Key": who.customer.key}
    bad_number = await stack.call(
        "POST", "/api/v2/sms/send", json={**DOC_SEND, "numbers": "not-a-number"}, headers=headers
    )
    assert bad_number.status == 400
    assert bad_number.body == {"error": "Invalid phone number format."}
    limited(bad_number, 100_000)
    missing = await stack.call(
        "POST", "/api/v2/sms/send", json={"numbers": "0701234567"}, headers=headers
    )
    assert missing.status == 422
    assert missing.body["errors"] == {"message_body": ["The message body field is required."]}
    unknown = await stack.call(
        "GET", "/api/v2/account/balance", headers={"X-API-Key": "sk_live_not-a-key"}
    )
    assert unknown.status == 401
    assert unknown.body == {"error": "Invalid API key."}
    limited(unknown, 60)
    assert await stack.messages_of(who.customer) == 0


async def test_v2_balance(stack: Stack) -> None:
    who = await stack.login(credits=250)
    answer = await stack.call(
        "GET", "/api/v2/account/balance", headers={**DOC_HEADERS, "X-API-Key": who.customer.key}
    )
    assert answer.status == 200, answer.text
    assert answer.body == {"balance": 250, "currency": answer.body["currency"]}
    assert isinstance(answer.body["currency"], str) and answer.body["currency"]
    limited(answer, 100_000)
    by_param = await stack.call(
        "GET", "/api/v2/account/balance", params={"api_key": who.customer.key}
    )
    assert by_param.status == 200 and by_param.body["balance"] == 250


async def test_the_key_rate_limit(stack: Stack) -> None:
    who = await stack.login()
    key = await stack.key(who.customer, rate_limit=2)
    answers = [
        await stack.call("GET", "/api/v2/account/balance", headers={"X-API-Key": key})
        for _ in range(3)
    ]
    assert [a.status for a in answers] == [200, 200, 429]
    assert [a.headers["x-ratelimit-remaining"] for a in answers] == ["1", "0", "0"]
    over = answers[2]
    assert over.body == {"message": "Too Many Attempts.", "retry_after": over.body["retry_after"]}
    assert int(over.headers["Retry-After"]) == over.body["retry_after"] >= 1
    limited(over, 2)


# --- keys: /api/generate-key, /api/revoke-key, /api/regenerate-key -------------------------


async def balance_with(stack: Stack, key: str) -> Answer:
    return await stack.call("GET", "/api/v2/account/balance", headers={"X-API-Key": key})


async def test_generate_key_example(stack: Stack) -> None:
    """The document's example ({"expiry_days": 3}), with the account's key: a new key that
    works and expires in 3 days."""
    who = await stack.login()
    answer = await stack.call(
        "POST",
        "/api/generate-key",
        json={"expiry_days": 3},
        headers={**DOC_HEADERS, "X-API-Key": who.customer.key},
    )
    assert answer.status == 200, answer.text
    assert answer.body["message"] == "API key generated successfully."
    assert set(answer.body) == {"message", "api_key", "expires_at"}
    soon(3, answer.body["expires_at"])
    limited(answer, 100_000)
    made = await balance_with(stack, answer.body["api_key"])
    assert made.status == 200
    limited(made, 60)  # no broader than the default a key makes


async def test_generate_key_without_expiry_and_by_login(stack: Stack) -> None:
    who = await stack.login()
    by_key = await stack.call(
        "POST", "/api/generate-key", headers={**DOC_HEADERS, "X-API-Key": who.customer.key}
    )
    assert by_key.status == 200 and by_key.body["expires_at"] is None
    by_login = await stack.call(
        "POST",
        "/api/generate-key",
        data={"username": who.username, "password": who.password, "expiry_days": "30"},
    )
    assert by_login.status == 200, by_login.text
    soon(30, by_login.body["expires_at"])
    assert (await balance_with(stack, by_login.body["api_key"])).status == 200
    wrong = await stack.call(
        "POST", "/api/generate-key", data={"username": who.username, "password": "not-it-at-all"}
    )
    assert wrong.status == 401 and wrong.body == {"error": "Unauthorized."}


async def test_a_key_never_makes_a_key_that_outlives_it(stack: Stack) -> None:
    who = await stack.login()
    headers = {"X-API-Key": who.customer.key}
    short = await stack.call("POST", "/api/generate-key", json={"expiry_days": 3}, headers=headers)
    key = short.body["api_key"]
    before = await stack.keys_of(who.customer)
    for path in ("/api/generate-key", "/api/regenerate-key"):
        answer = await stack.call("POST", path, json={"expiry_days": 9}, headers={"X-API-Key": key})
        assert answer.status == 403, answer.text
        assert set(answer.body) == {"error"} and "outlive" in answer.body["error"]
    assert await stack.keys_of(who.customer) == before
    assert (await balance_with(stack, key)).status == 200, "the refused regenerate kept it"


async def test_revoke_key_example(stack: Stack) -> None:
    """The document's example (no body) with a key: that key is refused from then on."""
    who = await stack.login()
    key = await stack.key(who.customer, rate_limit=500)
    answer = await stack.call("POST", "/api/revoke-key", headers={**DOC_HEADERS, "X-API-Key": key})
    assert answer.status == 200, answer.text
    assert answer.body == {"message": "API key revoked successfully."}
    limited(answer, 500)
    refused = await balance_with(stack, key)
    assert refused.status == 403
    assert refused.body == {"error": "this API key has been revoked"}
    again = await stack.call("POST", "/api/revoke-key", params={"api_key": key})
    assert again.status == 403
    assert (await balance_with(stack, who.customer.key)).status == 200, "only that key"
    missing = await stack.call("POST", "/api/revoke-key", headers=DOC_HEADERS)
    assert missing.status == 401 and missing.body == KEY_REQUIRED


async def test_regenerate_key_example(stack: Stack) -> None:
    """The document's example ({"expiry_days": 9}) with a key that never expires: a new key,
    same rate limit, expiring in 9 days; the old one refused."""
    who = await stack.login()
    old = await stack.key(who.customer, rate_limit=500)
    answer = await stack.call(
        "POST",
        "/api/regenerate-key",
        json={"expiry_days": 9},
        headers={**DOC_HEADERS, "X-API-Key": old},
    )
    assert answer.status == 200, answer.text
    assert answer.body["message"] == "API key regenerated successfully."
    soon(9, answer.body["expires_at"])
    new = answer.body["api_key"]
    assert new != old
    assert (await balance_with(stack, old)).status == 403
    works = await balance_with(stack, new)
    assert works.status == 200
    limited(works, 500)
    again = await stack.call("POST", "/api/regenerate-key", headers={"X-API-Key": new})
    assert again.status == 200
    soon(9, again.body["expires_at"])  # no expiry_days: the old key's expiry is kept


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        (0, "The expiry days field must be at least 1."),
        (-5, "The expiry days field must be at least 1."),
        (366, "The expiry days field must not be greater than 365."),
        ("abc", "The expiry days field must be an integer."),
        (2.5, "The expiry days field must be an integer."),
        (True, "The expiry days field must be an integer."),
    ],
)
@pytest.mark.parametrize("path", ["/api/generate-key", "/api/regenerate-key"])
async def test_expiry_days_is_1_to_365(stack: Stack, path: str, value: Any, problem: str) -> None:
    who = await stack.login()
    key = await stack.key(who.customer)
    before = await stack.keys_of(who.customer)
    answer = await stack.call("POST", path, json={"expiry_days": value}, headers={"X-API-Key": key})
    assert answer.status == 422
    assert answer.body == {"message": problem, "errors": {"expiry_days": [problem]}}
    assert await stack.keys_of(who.customer) == before
    assert (await balance_with(stack, key)).status == 200


# --- the Swagger page, the OAuth 2 callback, Laravel's own answers -------------------------


OPERATIONS = [
    ("POST", "/v1/sms/send"),
    ("GET", "/api/v2/sms/send"),
    ("POST", "/api/v2/sms/send"),
    ("GET", "/api/v2/account/balance"),
    ("POST", "/api/generate-key"),
    ("POST", "/api/revoke-key"),
    ("POST", "/api/regenerate-key"),
    ("GET", "/api/v2"),
    ("GET", "/api/oauth2-callback"),
]


async def test_swagger_page_example(stack: Stack) -> None:
    """GET /api/v2 as written: a page listing every operation of the dialect, which fetches
    nothing from anywhere (no script, no external stylesheet, image or font)."""
    answer = await stack.call("GET", "/api/v2", headers=DOC_HEADERS)
    assert answer.status == 200
    assert answer.headers["Content-Type"].startswith("text/html")
    limited(answer, 60)
    page = answer.text
    for method, path in OPERATIONS:
        assert re.search(rf">{method}<.*?<code class=\"path\">{re.escape(path)}</code>", page), (
            method,
            path,
        )
    assert "<script" not in page.lower()
    assert not re.search(r"(src|href)\s*=\s*[\"'](?!#)", page), "only in-page links"
    assert "url(" not in page and "@import" not in page
    assert "default-src 'none'" in answer.headers["Content-Security-Policy"]


async def test_the_page_documents_exactly_the_served_routes(stack: Stack) -> None:
    from api.dialects import smsapi, smsapi_docs

    served = {(r.method, r.path) for r in smsapi.routes if isinstance(r, web.RouteDef)}
    documented = {
        (method.upper(), path)
        for path, item in smsapi_docs.document()["paths"].items()
        for method in item
    }
    assert documented == set(OPERATIONS) == served


async def test_oauth2_callback_example(stack: Stack) -> None:
    answer = await stack.call("GET", "/api/oauth2-callback", headers=DOC_HEADERS)
    assert answer.status == 200
    assert answer.headers["Content-Type"] == "text/html; charset=utf-8"
    assert answer.text.startswith("<!doctype html>") and "<script" not in answer.text
    limited(answer, 60)


async def test_laravel_answers_for_unknown_routes_and_methods(stack: Stack) -> None:
    missing = await stack.call("GET", "/api/v3/nothing", headers=DOC_HEADERS)
    assert missing.status == 404 and missing.body == {"message": "Not Found"}
    limited(missing, 60)
    wrong = await stack.call("DELETE", "/api/v2/sms/send", headers=DOC_HEADERS)
    assert wrong.status == 405 and wrong.body == {"message": "Method Not Allowed"}


async def test_before_a_key_is_known_the_address_is_throttled(stack: Stack) -> None:
    """60 requests a minute per client address, as Laravel's throttle: from an address of
    its own, so no other test shares the count."""
    async with loopback_session() as own:
        answers = [
            await stack.call("GET", "/api/v2/sms/send", session=own, headers=DOC_HEADERS)
            for _ in range(61)
        ]
    assert [a.status for a in answers] == [401] * 60 + [429]
    assert answers[0].headers["x-ratelimit-remaining"] == "59"
    assert answers[1].headers["x-ratelimit-remaining"] == "58"
    assert answers[60].body["message"] == "Too Many Attempts."
    assert int(answers[60].headers["Retry-After"]) >= 1
