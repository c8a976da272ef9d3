"""The WhatsApp channel's pure parts: the Cloud API formats and signature, routes per channel,
prices per message, the webhook → queue events mapping; and the operator's guard rails."""

from __future__ import annotations

import hashlib
import hmac
import uuid
from datetime import UTC, datetime
from decimal import Decimal

import asyncpg
import pytest

from api.sending import price
from api.whatsapp_webhooks import carrier_events
from broker import accounts, whatsapp
from broker.errors import Conflict, InputError
from broker.long_mode import LongMode
from broker.queue_messages import InboundEvent, ReceiptEvent
from broker.routing import Route, RouteTable
from broker.store.connectors import WhatsAppConnector, WhatsAppSpec
from whatsapp_sim.server import _invalid

CONNECTOR = WhatsAppConnector("wa", "http://x/v21.0", "106540352242922", "t", "s", "v", "scope")


def test_signature_is_hmac_sha256_of_the_raw_body() -> None:
    body = b'{"object":"whatsapp_business_account"}'
    expected = "sha256=" + hmac.new(b"app-secret", body, hashlib.sha256).hexdigest()
    assert whatsapp.signature("app-secret", body) == expected
    assert whatsapp.signature_ok("app-secret", body, expected)
    assert not whatsapp.signature_ok("other", body, expected)
    assert not whatsapp.signature_ok("app-secret", body + b" ", expected)
    assert not whatsapp.signature_ok("app-secret", body, None)
    assert not whatsapp.signature_ok("app-secret", body, expected.removeprefix("sha256="))


def test_send_request_and_answers() -> None:
    assert whatsapp.send_url("https://graph.facebook.com/v21.0/", "123") == (
        "https://graph.facebook.com/v21.0/123/messages"
    )
    message = whatsapp.text_message("+233205550111", "hi")
    assert message["to"] == "233205550111" and message["type"] == "text"
    assert message["messaging_product"] == "whatsapp" and message["text"]["body"] == "hi"
    assert _invalid(message) is None
    assert whatsapp.sent_id({"messages": [{"id": "wamid.X"}]}) == "wamid.X"
    answers: list[object] = [None, {}, {"messages": []}, {"messages": [{"id": ""}]}, [1]]
    for answer in answers:
        assert whatsapp.sent_id(answer) is None
    error = {"error": {"message": "(#131030) not allowed", "code": 131030, "type": "OAuth"}}
    assert whatsapp.refusal(error, 400) == ("WA131030", "(#131030) not allowed")
    assert whatsapp.refusal("<html>", 404) == ("HTTP404", "the WhatsApp API answered 404")


def test_parse_webhook_statuses_and_messages() -> None:
    doc = whatsapp.status_webhook("1", "15550000001", "wamid.A", "233205550111", "delivered", 0)
    failed = whatsapp.status_webhook("1", "15550000001", "wamid.B", "233205550111", "failed", 0)
    doc["entry"][0]["changes"].extend(failed["entry"][0]["changes"])
    statuses, inbound = whatsapp.parse_webhook(doc)
    assert statuses == [
        whatsapp.StatusUpdate("wamid.A", "delivered"),
        whatsapp.StatusUpdate("wamid.B", "failed", "131026"),
    ]
    assert [s.receipt_state for s in statuses] == ["DELIVRD", "UNDELIV"]
    assert whatsapp.StatusUpdate("w", "sent").receipt_state is None
    assert whatsapp.StatusUpdate("w", "read").receipt_state == "DELIVRD"
    assert inbound == []

    mo = whatsapp.inbound_webhook(
        "1", "+1 555-000-0001", "wamid.M", "233205550111", "yo", 1700000000
    )
    image = {"from": "233205550112", "id": "wamid.I", "type": "image", "image": {"caption": "c"}}
    sticker = {"from": "233205550113", "id": "wamid.S", "type": "sticker"}
    mo["entry"][0]["changes"][0]["value"]["messages"].extend([image, sticker])
    statuses, inbound = whatsapp.parse_webhook(mo)
    assert statuses == []
    assert [(m.from_number, m.to_number, m.text) for m in inbound] == [
        ("233205550111", "15550000001", "yo"),
        ("233205550112", "15550000001", "c"),
        ("233205550113", "15550000001", "[sticker]"),
    ]
    assert inbound[0].received_at == datetime.fromtimestamp(1700000000, UTC)
    # The id is the wamid's: a webhook delivered twice is one message.
    assert inbound[0].id == whatsapp.parse_webhook(mo)[1][0].id


@pytest.mark.parametrize(
    "junk",
    [None, [], "x", {"entry": "x"}, {"entry": [{"changes": [{"value": "x"}]}]},
     {"entry": [{"changes": [{"value": {"statuses": [{"id": 1}], "messages": [{}]}}]}]}],
)  # fmt: skip
def test_parse_webhook_leaves_out_what_is_not_a_status_or_message(junk: object) -> None:
    assert whatsapp.parse_webhook(junk) == ([], [])


def test_webhook_becomes_receipts_and_inbound_events() -> None:
    doc = whatsapp.status_webhook("1", "15550000001", "wamid.A", "2332", "sent", 0)
    for status in ("delivered", "read", "failed"):
        more = whatsapp.status_webhook("1", "15550000001", "wamid.A", "2332", status, 0)
        doc["entry"].extend(more["entry"])
    mo = whatsapp.inbound_webhook("1", "15550000001", "wamid.M", "233205550111", "yo", 0)
    doc["entry"].extend(mo["entry"])
    events = carrier_events(CONNECTOR, doc)
    receipts = [e for e in events if isinstance(e, ReceiptEvent)]
    assert [(e.connector, e.scope, e.carrier_id, e.state) for e in receipts] == [
        ("wa", "scope", "wamid.A", "DELIVRD"),
        ("wa", "scope", "wamid.A", "DELIVRD"),
        ("wa", "scope", "wamid.A", "UNDELIV"),
    ]
    [inbound] = [e for e in events if isinstance(e, InboundEvent)]
    assert (inbound.from_number, inbound.to_number, inbound.text) == (
        "233205550111",
        "15550000001",
        "yo",
    )


def test_routes_are_per_channel_and_whatsapp_is_priced_per_message() -> None:
    table = RouteTable(
        [
            Route("", "sms-default", Decimal(1)),
            Route("233", "sms-gh", Decimal(2), LongMode()),
            Route("", "wa", Decimal("0.5"), channel="whatsapp"),
        ]
    )
    assert table.match("+233205550111").connector == "sms-gh"  # type: ignore[union-attr]
    assert table.match("+233205550111", "whatsapp").connector == "wa"  # type: ignore[union-attr]
    assert table.has_channel("whatsapp") and not RouteTable([]).has_channel("whatsapp")
    text = "x" * 400  # three SMS parts
    assert price(table, "+233205550111", text).segments == 3
    assert price(table, "+233205550111", text).cost == 6
    whats = price(table, "+233205550111", text, channel="whatsapp")
    assert (whats.segments, whats.cost) == (1, Decimal("0.5"))
    sms_only = RouteTable([Route("", "sms-default", Decimal(1))])
    assert price(sms_only, "+233205550111", text, channel="whatsapp").cost is None


def test_fake_refuses_what_the_cloud_api_refuses() -> None:
    good = whatsapp.text_message("+1", "hi")
    assert _invalid({**good, "messaging_product": "sms"}) is not None
    assert _invalid({**good, "to": "+1"}) is not None
    assert _invalid({**good, "text": {"body": ""}}) is not None
    assert _invalid({**good, "type": "image"}) is not None
    assert _invalid([good]) is not None


async def test_routes_must_lead_to_a_connector_of_their_channel(conn: asyncpg.Connection) -> None:
    name = f"wa-{uuid.uuid4().hex[:6]}"
    spec = WhatsAppSpec(name, "https://graph.facebook.com/v21.0", "123", "t", "s", "v")
    await accounts.add_whatsapp_connector(conn, spec)
    # Each refusal in a savepoint of its own: the test's transaction goes on.
    with pytest.raises(Conflict):
        async with conn.transaction():
            await accounts.add_whatsapp_connector(conn, spec)
    with pytest.raises(InputError):
        async with conn.transaction():
            await accounts.add_whatsapp_connector(
                conn, WhatsAppSpec(f"{name}x", "ftp://nope", "123", "t", "s", "v")
            )
    with pytest.raises(InputError, match="cannot carry the sms channel"):
        await accounts.add_route(conn, "999", name, Decimal(1))
    await accounts.add_route(conn, "999", name, Decimal(1), "whatsapp")
    scope = await conn.fetchval("SELECT scope FROM connectors WHERE name = $1", name)
    assert scope == "whatsapp/123"
    # An SMPP connector keeps its scope, and cannot carry WhatsApp.
    smpp = f"sm-{uuid.uuid4().hex[:6]}"
    await accounts.add_connector(
        conn, {"name": smpp, "host": "h", "port": 1, "system_id": "s", "password": "p"}
    )
    assert await conn.fetchval("SELECT scope FROM connectors WHERE name = $1", smpp) == "h:1/s"
    with pytest.raises(InputError, match="cannot carry the whatsapp channel"):
        await accounts.add_route(conn, "999", smpp, Decimal(1), "whatsapp")
    # The same prefix has a route per channel.
    await accounts.add_route(conn, "999", smpp, Decimal(1))
    rows = await conn.fetch("SELECT channel, connector FROM routes WHERE prefix = '999'")
    assert {(r["channel"], r["connector"]) for r in rows} == {("whatsapp", name), ("sms", smpp)}
