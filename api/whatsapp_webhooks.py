"""Meta's webhooks for a WhatsApp connector: ``/webhooks/whatsapp/{connector}``.

Public (the auth middleware authenticates /v1/ paths only): a POST is trusted only when its
X-Hub-Signature-256 is the HMAC of its raw body with the connector's app secret; anything else
is answered 401 and nothing of it applied. Its statuses become receipts and its messages
inbound events on the events queue, exactly as a carrier's deliver_sm: the events worker
applies them (delivered, undelivered; message.status and message.inbound webhooks). The answer
is 200 only once RabbitMQ confirmed them, so Meta retries what was not made durable.
The GET is Meta's verification of the URL: hub.challenge echoed for the right verify token.
"""

from __future__ import annotations

import hmac
import json

from aiohttp import web

from api.context import AMQP, POOL, shared
from api.errors import ApiError
from broker import whatsapp
from broker.db import unavailable_as_error
from broker.queue_messages import CarrierEvents, InboundEvent, ReceiptEvent
from broker.store import connectors
from broker.store.connectors import WhatsAppConnector

PATH = "/webhooks/whatsapp/{connector}"
#: Meta's bodies are small; a larger one is no webhook of theirs.
MAX_BODY = 1024 * 1024


async def _connector(request: web.Request) -> WhatsAppConnector:
    async with unavailable_as_error():
        found = await connectors.whatsapp_connector(
            shared(request)[POOL], request.match_info["connector"]
        )
    if found is None:
        raise ApiError(404, "NOT_FOUND", "no WhatsApp connector of this name")
    return found


async def verify(request: web.Request) -> web.Response:
    """Meta's subscription check: the challenge back if the verify token is the connector's."""
    connector = await _connector(request)
    query = request.query
    offered = query.get("hub.verify_token", "")
    if query.get("hub.mode") != "subscribe" or not hmac.compare_digest(
        offered.encode(), connector.verify_token.encode()
    ):
        raise ApiError(403, "FORBIDDEN", "wrong hub.mode or hub.verify_token")
    return web.Response(text=query.get("hub.challenge", ""), content_type="text/plain")


def carrier_events(connector: WhatsAppConnector, doc: object) -> list[ReceiptEvent | InboundEvent]:
    """A webhook's statuses as receipts (sent ends nothing: left out) and its messages as
    inbound events of the connector."""
    statuses, inbound = whatsapp.parse_webhook(doc)
    events: list[ReceiptEvent | InboundEvent] = [
        ReceiptEvent(
            connector=connector.name,
            scope=connector.scope,
            carrier_id=s.wamid,
            state=state,
            error=s.error,
        )
        for s in statuses
        if (state := s.receipt_state) is not None
    ]
    events.extend(
        InboundEvent(
            id=m.id,
            connector=connector.name,
            from_number=m.from_number,
            to_number=m.to_number,
            text=m.text,
            received_at=m.received_at,
        )
        for m in inbound
    )
    return events


async def receive(request: web.Request) -> web.Response:
    connector = await _connector(request)
    if request.content_length is not None and request.content_length > MAX_BODY:
        raise ApiError(413, "PAYLOAD_TOO_LARGE", "a webhook body is at most 1 MiB")
    body = await request.read()
    header = request.headers.get(whatsapp.SIGNATURE_HEADER)
    if not whatsapp.signature_ok(connector.app_secret, body, header):
        raise ApiError(401, "INVALID_SIGNATURE", f"{whatsapp.SIGNATURE_HEADER} does not verify")
    try:
        doc = json.loads(body)
    except ValueError as exc:
        raise ApiError(400, "INVALID_JSON", "the body is not JSON") from exc
    events = carrier_events(connector, doc)
    if events:
        amqp = shared(request)[AMQP]
        await amqp.publish(amqp.names.events, CarrierEvents(events=events))
    return web.json_response({"received": len(events)})


def register(app: web.Application) -> None:
    app.router.add_get(PATH, verify)
    app.router.add_post(PATH, receive)
