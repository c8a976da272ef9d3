"""The VavaSMS dialect (/compat/vavasms) end to end: every example request of the provider's
document sent as written (its base URL https://vavasms.com/api replaced with the gateway's
/compat/vavasms, its placeholders with a real login, sender ID and numbers), every numbered
error it documents provoked for real, and the inbound SMS notification received as a form POST
by a customer's HTTP server, with the same message_id on a retry.

The document's Côte d'Ivoire numbers (22509000001) predate the 2021 ten-digit plan and are no
longer valid numbers; the tests write current ones (2250709...) the same way. Its Python
example for text/single requests the path "api,v1,text,single", which no server can route; it
is sent here with the path the other examples use.
"""

from __future__ import annotations

import asyncio
import http.client
import re
import uuid
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qs, urlsplit

import asyncpg
import pytest

from broker import accounts, logins, sender_ids
from broker.config import Settings
from broker.status import SenderIdStatus
from tests.harness import SimStack, sim_stack, verify_standard_webhook, with_settings

FORM = {"Content-Type": "application/x-www-form-urlencoded"}
#: The PHP, Java, jQuery and Node examples' headers for text/single and the OTP routes.
EXAMPLE_HEADERS = {**FORM, "Accept": "*/*", "Host": "vavasms.com"}
SENDER = "VavaShop"
PASSWORD = "correct horse battery"
ESM_UDHI = 0x40

INVALID_CREDENTIALS = {
    "code": "901",
    "status": "INVALID_CREDENTIALS",
    "description": "Identifiant de connexion incorrect",
}
INVALID_SENDER_ID = {
    "code": "902",
    "status": "INVALID_SENDER_ID",
    "description": "Le sender_id n’existe pas",
}
INVALID_PHONE_NUMBER = {
    "code": "903",
    "status": "INVALID_PHONE_NUMBER",
    "description": "Le format du numéro de téléphone est invalide",
}
NO_SUCH_SEND = {
    "code": "709",
    "message": "EXECUTION_ERROR",
    "description": "Aucun envoi existe pour ce ID",
    "data": [],
}
INVALID_OTP = {
    "code": 913,
    "message": "INVALID_OTP",
    "description": "vavasms.INVALID_OTP",
    "data": [],
}


def ci_number() -> str:
    """A valid Côte d'Ivoire mobile number, international without a plus, clear of the
    simulator's outcome rules (numbers ending 0013, 0666, 0777)."""
    while True:
        number = f"2250709{uuid.uuid4().int % 1_000_000:06d}"
        if number[-4:] not in ("0013", "0666", "0777"):
            return number


class Vava:
    """An account as a VavaSMS customer knows it: a username and a password."""

    def __init__(self, account_id: uuid.UUID, username: str) -> None:
        self.account_id = account_id
        self.username = username
        self.password = PASSWORD

    def fill(self, example: str, **values: str) -> str:
        """A document example's body with its placeholders replaced."""
        body = example.replace("your_email", self.username).replace("your_password", self.password)
        for name, value in values.items():
            body = body.replace(name, value)
        return body

    def form(self, **values: str) -> dict[str, str]:
        return {"username": self.username, "password": self.password, **values}


class Stack(SimStack):
    @property
    def base(self) -> str:
        return f"{self.api}/compat/vavasms"

    async def vava(self, *, credits: int = 25540, currency: str = "XOF") -> Vava:
        """An account (region CI) with a login and the approved sender ID SENDER."""
        username = f"shop{uuid.uuid4().hex[:8]}@example.ci"
        async with self.pool.acquire() as conn:
            account_id = await accounts.create_account(
                conn, f"vava-{uuid.uuid4().hex[:8]}", Decimal(credits), "CI"
            )
            await accounts.update_account(conn, account_id, currency=currency)
            await logins.set_login(conn, account_id, username, PASSWORD)
            row = await sender_ids.register(conn, account_id, SENDER, "tests")
            await sender_ids.decide(conn, row.id, SenderIdStatus.APPROVED)
        return Vava(account_id, username)

    async def call(
        self, path: str, data: str | dict[str, str], headers: dict[str, str] | None = None
    ) -> tuple[int, Any, dict[str, str]]:
        """A POST as the examples make it: (HTTP status, JSON body, headers)."""
        async with self.http.post(
            f"{self.base}{path}", data=data, headers=headers if headers is not None else FORM
        ) as resp:
            return resp.status, await resp.json(), dict(resp.headers)

    async def ok(self, path: str, data: str | dict[str, str], **kw: Any) -> Any:
        status, body, _ = await self.call(path, data, **kw)
        assert status == 200, body
        assert body["code"] == 0 and body["message"] == "OPERATION_SUCCES", body
        return body["data"]

    async def status_until(self, who: Vava, message_id: str, state: str) -> list[Any]:
        """text/status of a message, asked until it reports ``state``."""
        for _ in range(200):
            lines: list[Any] = await self.ok("/v1/text/status", who.form(message_id=message_id))
            if lines[0]["status"] == state:
                return lines
            await asyncio.sleep(0.05)
        raise AssertionError(f"{message_id} never reached {state}: {lines}")


@pytest.fixture(scope="module")
async def stack(settings: Settings, pool: asyncpg.Pool) -> AsyncIterator[Stack]:
    async with sim_stack(with_settings(settings, dialects=("vavasms",)), pool, Stack, "vava") as s:
        yield s


# --- POST /v1/check/balance ----------------------------------------------------------------

BALANCE_EXAMPLE = "username=your_email&password=your_password"


async def test_balance_example_answers_the_documented_body(stack: Stack) -> None:
    who = await stack.vava()
    status, body, headers = await stack.call("/v1/check/balance", who.fill(BALANCE_EXAMPLE))
    assert status == 200
    assert body == {
        "code": 0,
        "message": "OPERATION_SUCCES",
        "data": {"amount": 25540, "currency": "XOF"},
    }
    assert headers["X-RateLimit-Limit"] == "60"
    # The jQuery, Node and C# examples send the same fields as a form.
    assert await stack.ok("/v1/check/balance", who.form()) == body["data"]


async def test_balance_python_example_as_written(stack: Stack) -> None:
    """The document's http.client code, with the gateway's host and /compat/vavasms."""
    who = await stack.vava(credits=12, currency="credits")
    gateway = urlsplit(stack.api)

    def example() -> tuple[int, str]:
        conn = http.client.HTTPConnection(gateway.netloc)
        payload = who.fill("username=your_email&password=your_password")
        headers = {"Content-Type": "application/x-www-form-urlencoded"}
        conn.request("POST", "/compat/vavasms/v1/check/balance", payload, headers)
        res = conn.getresponse()
        data = res.read()
        conn.close()
        return res.status, data.decode("utf-8")

    status, text = await asyncio.to_thread(example)
    assert status == 200
    assert text.startswith('{"code": 0, "message": "OPERATION_SUCCES"')
    assert '"data": {"amount": 12, "currency": "credits"}' in text


async def test_balance_901_wrong_or_missing_credentials(stack: Stack) -> None:
    who = await stack.vava()
    documented = {
        "code": 901,
        "message": "INVALID_CREDENTIALS",
        "description": "Identifiant de connexion incorrect",
        "data": [],
    }
    for data in (
        f"username={who.username}&password=wrong+password",
        "username=nobody%40example.ci&password=whatever+it+is",
        f"username={who.username}",
        "",
    ):
        status, body, _ = await stack.call("/v1/check/balance", data)
        assert (status, body) == (200, documented), data


# --- POST /v1/text/single ------------------------------------------------------------------

SEND_EXAMPLE = (
    "username=your_email&password=your_password&sender_id=your_sender_id"
    "&phone=your_receiver_phone_number&message=your_message_here"
)


async def test_send_example_to_one_number(stack: Stack) -> None:
    who = await stack.vava(credits=10)
    to = ci_number()
    body = who.fill(
        SEND_EXAMPLE,
        your_sender_id=SENDER,
        your_receiver_phone_number=to,
        your_message_here="Bonjour+de+VavaShop",
    )
    status, answer, _ = await stack.call("/v1/text/single", body, EXAMPLE_HEADERS)
    assert status == 200, answer
    assert answer["code"] == 0 and answer["message"] == "OPERATION_SUCCES"
    assert set(answer["data"]) == {"lot_id", "description", "message_id"}
    assert answer["data"]["description"] == "Message envoyé avec succès"
    [message_id] = answer["data"]["message_id"]
    assert answer["data"]["lot_id"] == message_id, "one recipient: the lot is the message"
    assert await stack.carrier_text(to) == "Bonjour de VavaShop"
    # The status call finds it by its message_id and by its lot_id alike.
    [line] = await stack.status_until(who, message_id, "delivered")
    assert line == {
        "lot_id": message_id,
        "message_id": message_id,
        "status": "delivered",
        "description": "Délivré",
    }
    assert await stack.ok("/v1/text/status", who.form(lot_id=message_id)) == [line]
    status, balance, _ = await stack.call("/v1/check/balance", who.form())
    assert balance["data"]["amount"] == 9


async def test_send_to_comma_separated_numbers_is_one_lot(stack: Stack) -> None:
    """The document's "22509000001,22509000002" form; the jQuery and Node examples' form."""
    who = await stack.vava(credits=10)
    first, second = ci_number(), "22377000010"
    data = await stack.ok(
        "/v1/text/single",
        who.form(sender_id=SENDER, phone=f"{first},{second}", message="Promo du jour"),
        headers=EXAMPLE_HEADERS,
    )
    ids = data["message_id"]
    assert len(ids) == 2 and data["lot_id"] not in ids
    assert await stack.carrier_text(first) == "Promo du jour"
    assert await stack.carrier_text(second) == "Promo du jour"
    for message_id in ids:
        await stack.status_until(who, message_id, "delivered")
    lines = await stack.ok("/v1/text/status", who.form(lot_id=data["lot_id"]))
    assert sorted(line["message_id"] for line in lines) == sorted(ids)
    assert {line["lot_id"] for line in lines} == {data["lot_id"]}
    # A message named with its own lot is found; with another lot, it is not.
    found = await stack.ok("/v1/text/status", who.form(message_id=ids[0], lot_id=data["lot_id"]))
    assert [line["message_id"] for line in found] == [ids[0]]
    status, body, _ = await stack.call(
        "/v1/text/status", who.form(message_id=ids[0], lot_id=ids[1])
    )
    assert (status, body) == (200, NO_SUCH_SEND)


async def test_send_python_example_with_its_path_corrected(stack: Stack) -> None:
    who = await stack.vava()
    gateway = urlsplit(stack.api)
    to = ci_number()

    def example() -> tuple[int, str]:
        conn = http.client.HTTPConnection(gateway.netloc)
        payload = who.fill(
            SEND_EXAMPLE,
            your_sender_id=SENDER,
            your_receiver_phone_number=to,
            your_message_here="Votre+colis+est+arriv%C3%A9",
        )
        headers = {
            "Content-Type": "application/x-www-form-urlencoded",
            "Accept": "*/*",
            "Host": "vavasms.com",
        }
        conn.request("POST", "/compat/vavasms/v1/text/single", payload, headers)
        res = conn.getresponse()
        data = res.read()
        conn.close()
        return res.status, data.decode("utf-8")

    status, text = await asyncio.to_thread(example)
    assert status == 200 and '"message": "OPERATION_SUCCES"' in text, text
    assert await stack.carrier_text(to) == "Votre colis est arrivé"


async def test_send_901_902_903(stack: Stack) -> None:
    who = await stack.vava()
    to = ci_number()
    cases: list[tuple[dict[str, str], dict[str, str]]] = [
        (
            who.form(password="wrong password", sender_id=SENDER, phone=to, message="x"),
            INVALID_CREDENTIALS,
        ),
        ({"sender_id": SENDER, "phone": to, "message": "x"}, INVALID_CREDENTIALS),
        (who.form(sender_id="NotMine", phone=to, message="x"), INVALID_SENDER_ID),
        (who.form(sender_id="ab", phone=to, message="x"), INVALID_SENDER_ID),
        (who.form(sender_id="TooLongSenderId", phone=to, message="x"), INVALID_SENDER_ID),
        (who.form(sender_id=SENDER, phone="12345", message="x"), INVALID_PHONE_NUMBER),
        (who.form(sender_id=SENDER, phone=f"{to},abc", message="x"), INVALID_PHONE_NUMBER),
        (who.form(sender_id=SENDER, message="x"), INVALID_PHONE_NUMBER),
        (who.form(sender_id=SENDER, phone="22509000001", message="x"), INVALID_PHONE_NUMBER),
    ]
    for data, expected in cases:
        status, body, _ = await stack.call("/v1/text/single", data, EXAMPLE_HEADERS)
        assert (status, body) == (200, expected), data
    assert (
        await stack.pool.fetchval(
            "SELECT count(*) FROM messages WHERE account_id = $1", who.account_id
        )
        == 0
    ), "a refused send sends nothing"


async def test_send_failures_without_a_number_are_709_with_the_gateway_s_reason(
    stack: Stack,
) -> None:
    who = await stack.vava(credits=0)
    to = ci_number()
    status, body, headers = await stack.call(
        "/v1/text/single", who.form(sender_id=SENDER, phone=to, message="x")
    )
    assert status == 402
    assert body == {
        "code": "709",
        "message": "EXECUTION_ERROR",
        "description": body["description"],
        "data": [],
        "error": "INSUFFICIENT_CREDITS",
    }
    status, body, _ = await stack.call(
        "/v1/text/single", who.form(sender_id=SENDER, phone=to, message="")
    )
    assert (status, body["code"], body["error"]) == (400, "709", "EMPTY_BODY")

    status, body, _ = await stack.call("/v1/no/such/route", who.form())
    assert (status, body["code"], body["error"]) == (404, "709", "NOT_FOUND")
    async with stack.http.get(f"{stack.base}/v1/check/balance") as resp:
        body = await resp.json()
        assert (resp.status, body["code"], resp.headers["Allow"]) == (405, "709", "POST")


async def test_the_login_s_rate_limit_is_a_429_with_retry_after(stack: Stack) -> None:
    who = await stack.vava()
    await stack.pool.execute(
        "UPDATE api_keys SET rate_limit = 2 WHERE id ="
        " (SELECT key_id FROM account_logins WHERE username = $1)",
        who.username,
    )
    for _ in range(2):
        await stack.ok("/v1/check/balance", who.form())
    status, body, headers = await stack.call("/v1/check/balance", who.form())
    assert status == 429
    assert (body["code"], body["error"]) == ("709", "RATE_LIMIT_EXCEEDED")
    assert body["retry_after"] == int(headers["Retry-After"]) > 0
    assert headers["X-RateLimit-Remaining"] == "0"


# --- POST /v1/text/status ------------------------------------------------------------------


async def test_status_of_a_message_awaiting_its_receipt_is_the_document_s_example(
    stack: Stack,
) -> None:
    who = await stack.vava()
    stack.sim.config.receipt_delay = (3.0, 3.0)
    try:
        sent = await stack.ok(
            "/v1/text/single", who.form(sender_id=SENDER, phone=ci_number(), message="x")
        )
        [message_id] = sent["message_id"]
        status, body, _ = await stack.call("/v1/text/status", who.form(message_id=message_id))
        assert status == 200 and body["data"][0]["status"] in ("pending", "sent"), body
        await stack.status_until(who, message_id, "sent")
        status, body, _ = await stack.call("/v1/text/status", who.form(message_id=message_id))
    finally:
        stack.sim.config.receipt_delay = (0.05, 0.1)
    assert body == {
        "code": 0,
        "message": "OPERATION_SUCCES",
        "data": [
            {
                "lot_id": message_id,
                "message_id": message_id,
                "status": "sent",
                "description": "Envoyé",
            }
        ],
    }


async def test_status_names_the_native_outcomes(stack: Stack) -> None:
    who = await stack.vava()
    undelivered, rejected = "2250709990666", "2250709990013"
    data = await stack.ok(
        "/v1/text/single",
        who.form(sender_id=SENDER, phone=f"{undelivered},{rejected}", message="x"),
    )
    first, second = data["message_id"]
    await stack.status_until(who, first, "undelivered")
    [line] = await stack.status_until(who, second, "failed")
    assert line["description"] == "Échec" and line["lot_id"] == data["lot_id"]


async def test_status_709_and_901(stack: Stack) -> None:
    who, other = await stack.vava(), await stack.vava()
    theirs = await stack.ok(
        "/v1/text/single", other.form(sender_id=SENDER, phone=ci_number(), message="x")
    )
    for data in (
        who.form(message_id=str(uuid.uuid4())),
        who.form(lot_id=str(uuid.uuid4())),
        who.form(message_id="SM-20190617-1445914"),
        who.form(lot_id="LOT-20190617-1445425"),
        who.form(message_id=theirs["message_id"][0]),
        who.form(lot_id=theirs["lot_id"]),
        who.form(),
    ):
        status, body, _ = await stack.call("/v1/text/status", data)
        assert (status, body) == (200, NO_SUCH_SEND), data
    status, body, _ = await stack.call(
        "/v1/text/status",
        {"username": who.username, "password": "nope nope", "message_id": str(uuid.uuid4())},
    )
    assert (status, body) == (200, INVALID_CREDENTIALS)


# --- POST /v1/otp/send and /v1/otp/verify --------------------------------------------------

OTP_SEND_EXAMPLE = (
    "username=your_email&password=your_password&sender_id=your_sender_id"
    "&phone=your_receiver_phone_number"
)
OTP_VERIFY_EXAMPLE = (
    "username=your_email&password=your_password&sender_id=your_sender_id"
    "&phone=your_receiver_phone_number&otp=otp_received"
)


async def test_otp_examples_send_then_verify(stack: Stack) -> None:
    who = await stack.vava()
    to = ci_number()
    body = who.fill(OTP_SEND_EXAMPLE, your_sender_id=SENDER, your_receiver_phone_number=to)
    status, answer, _ = await stack.call("/v1/otp/send", body, EXAMPLE_HEADERS)
    assert status == 200, answer
    assert answer["code"] == 0 and answer["message"] == "OPERATION_SUCCES"
    assert set(answer["data"]) == {"message_id", "description"}
    assert answer["data"]["description"] == "OTP envoyé avec succès"
    otp_id = answer["data"]["message_id"]
    text = await stack.carrier_text(to)
    found = re.fullmatch(r"Votre code OTP est : (\d{4})", text)
    assert found, text
    code = found.group(1)
    wrong = f"{(int(code) + 1) % 10000:04d}"

    verify = who.fill(OTP_VERIFY_EXAMPLE, your_sender_id=SENDER, your_receiver_phone_number=to)
    status, answer, _ = await stack.call(
        "/v1/otp/verify", verify.replace("otp_received", wrong), EXAMPLE_HEADERS
    )
    assert (status, answer) == (200, INVALID_OTP)
    status, answer, _ = await stack.call(
        "/v1/otp/verify", verify.replace("otp_received", code), EXAMPLE_HEADERS
    )
    assert (status, answer) == (
        200,
        {
            "code": 0,
            "message": "OPERATION_SUCCES",
            "data": {"message_id": otp_id, "status": "success"},
        },
    )
    status, answer, _ = await stack.call(
        "/v1/otp/verify", verify.replace("otp_received", code), EXAMPLE_HEADERS
    )
    assert (status, answer) == (200, INVALID_OTP), "a code verifies once"


async def test_otp_length_expiry_and_message(stack: Stack) -> None:
    who = await stack.vava()
    to = ci_number()
    sent = await stack.ok(
        "/v1/otp/send",
        who.form(
            sender_id=SENDER,
            phone=to,
            otp_length="9",
            otp_expiry="5",
            message="Code VavaShop ##OTP## (5 min)",
        ),
    )
    text = await stack.carrier_text(to)
    found = re.fullmatch(r"Code VavaShop (\d{9}) \(5 min\)", text)
    assert found, text
    expiry = await stack.pool.fetchval(
        "SELECT expires_at - created_at FROM otps WHERE id = $1", uuid.UUID(sent["message_id"])
    )
    assert 299 <= expiry.total_seconds() <= 301
    # JSON bodies are read too (params merges query, form and JSON).
    async with stack.http.post(
        f"{stack.base}/v1/otp/verify",
        json={**who.form(phone=to), "otp": int(found.group(1))},
    ) as resp:
        assert (await resp.json())["data"]["message_id"] == sent["message_id"]

    for bad in (
        {"otp_length": "3"},
        {"otp_length": "10"},
        {"otp_expiry": "0"},
        {"message": "no placeholder"},
    ):
        status, body, _ = await stack.call(
            "/v1/otp/send", who.form(sender_id=SENDER, phone=ci_number(), **bad)
        )
        assert (status, body["code"], body["message"]) == (400, "709", "EXECUTION_ERROR"), bad


async def test_otp_901_902_903_913(stack: Stack) -> None:
    who = await stack.vava()
    to = ci_number()
    await stack.ok("/v1/otp/send", who.form(sender_id=SENDER, phone=to))
    send_cases: list[tuple[dict[str, str], dict[str, Any]]] = [
        (who.form(password="wrong password", sender_id=SENDER, phone=to), INVALID_CREDENTIALS),
        (who.form(sender_id="NotMine", phone=to), INVALID_SENDER_ID),
        (who.form(sender_id="x", phone=to), INVALID_SENDER_ID),
        (who.form(sender_id=SENDER, phone="12"), INVALID_PHONE_NUMBER),
        (who.form(sender_id=SENDER, phone=f"{to},{ci_number()}"), INVALID_PHONE_NUMBER),
        (who.form(sender_id=SENDER), INVALID_PHONE_NUMBER),
    ]
    for data, expected in send_cases:
        status, body, _ = await stack.call("/v1/otp/send", data, EXAMPLE_HEADERS)
        assert (status, body) == (200, expected), data
    verify_cases: list[tuple[dict[str, str], dict[str, Any]]] = [
        (who.form(password="wrong password", phone=to, otp="1234"), INVALID_CREDENTIALS),
        (who.form(sender_id="NotMine", phone=to, otp="1234"), INVALID_SENDER_ID),
        (who.form(sender_id="x", phone=to, otp="1234"), INVALID_SENDER_ID),
        (who.form(sender_id=SENDER, phone="12", otp="1234"), INVALID_PHONE_NUMBER),
        (who.form(sender_id=SENDER, otp="1234"), INVALID_PHONE_NUMBER),
        (who.form(sender_id=SENDER, phone=to), INVALID_OTP),
        (who.form(sender_id=SENDER, phone=to, otp="abcd"), INVALID_OTP),
        (who.form(sender_id=SENDER, phone=ci_number(), otp="1234"), INVALID_OTP),
    ]
    for data, expected in verify_cases:
        status, body, _ = await stack.call("/v1/otp/verify", data, EXAMPLE_HEADERS)
        assert (status, body) == (200, expected), data


# --- The inbound SMS notification ----------------------------------------------------------


async def test_inbound_sms_is_posted_as_the_documented_form_with_one_message_id(
    stack: Stack,
) -> None:
    who = await stack.vava()
    number = f"225270{uuid.uuid4().int % 10_000_000:07d}"
    async with stack.pool.acquire() as conn:
        await accounts.add_number(conn, who.account_id, number, "")
        key = await accounts.create_key(conn, who.account_id, rate_limit=100_000)
    native = {"Authorization": f"Bearer {key.secret}"}
    path = f"/vava/{who.account_id}"
    standard_path = f"/std/{who.account_id}"

    async def register(body: dict[str, Any]) -> tuple[int, Any]:
        async with stack.http.post(f"{stack.api}/v1/webhooks", json=body, headers=native) as r:
            return r.status, await r.json()

    status, refused = await register(
        {"url": stack.receiver.url(path), "events": ["message.status"], "format": "vavasms"}
    )
    assert (status, refused["error"]["code"]) == (400, "INVALID_EVENTS")
    status, refused = await register({"url": stack.receiver.url(path), "format": "vava"})
    assert (status, refused["error"]["code"]) == (400, "INVALID_FORMAT")
    status, hook = await register({"url": stack.receiver.url(path), "format": "vavasms"})
    assert status == 201, hook
    assert (hook["format"], hook["events"]) == ("vavasms", ["message.inbound"])
    status, standard = await register({"url": stack.receiver.url(standard_path)})
    assert (status, standard["format"]) == (201, "standard")
    async with stack.http.get(f"{stack.api}/v1/webhooks", headers=native) as resp:
        listed = {w["id"]: w["format"] for w in (await resp.json())["data"]}
    assert listed == {hook["id"]: "vavasms", standard["id"]: "standard"}

    stack.receiver.fail_paths[path] = 1  # the first attempt fails: the sender retries
    await stack.sim.inject_mo("+22377000010", number, "Bonjour, je confirme la commande")
    first, retry = await stack.receiver.wait_for(lambda r: r.path == path, count=2)
    for hit in (first, retry):
        assert hit.headers["Content-Type"] == "application/x-www-form-urlencoded"
        verify_standard_webhook(hook["secret"], hit.headers, hit.body)
    fields = parse_qs(first.body.decode(), strict_parsing=True)
    assert set(fields) >= {"message_id", "from", "content", "sms_date"}
    assert fields["from"] == ["22377000010"] == fields["form"]
    assert fields["content"] == ["Bonjour, je confirme la commande"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", fields["sms_date"][0])
    assert parse_qs(retry.body.decode()) == fields, "a retry carries the same message_id"
    assert first.headers["webhook-id"] == retry.headers["webhook-id"]
    inbound_id = fields["message_id"][0]
    async with stack.http.get(f"{stack.api}/v1/inbound/{inbound_id}", headers=native) as resp:
        assert resp.status == 200 and (await resp.json())["id"] == inbound_id

    # A status event goes to the standard endpoint only, never as a vavasms notification.
    sent = await stack.ok(
        "/v1/text/single", who.form(sender_id=SENDER, phone=ci_number(), message="merci")
    )
    await stack.receiver.wait_for(
        lambda r: (
            r.path == standard_path
            and r.json["type"] == "message.status"
            and r.json["data"]["id"] == sent["message_id"][0]
            and r.json["data"]["status"] == "delivered"
        )
    )
    assert [r.body for r in stack.receiver.received if r.path == path] == [
        first.body,
        retry.body,
    ]
