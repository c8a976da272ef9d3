"""POST /v1/messages/preview: a send's dry run, with the same body and the same checks as a send.

Each recipient's text is made as the send would make it (a template rendered with its contact's
values), its parts counted and priced with the connector its number routes to; nothing is
stored, published or charged. The totals cover every recipient, a group's too; the first 100
are listed.
"""

from __future__ import annotations

from decimal import Decimal

from aiohttp import web

from api import audience, sending
from api.context import POOL, ROUTES, shared
from api.contract import Endpoints, body_of
from api.schemas.messages import SendRequest
from api.schemas.previews import PreviewMessage, PreviewStatus, SendPreview
from broker.db import unavailable_as_error
from broker.long_mode import PartCounter
from broker.resources import number

endpoints = Endpoints("messages")

LISTED = 100


@endpoints.post(
    "/v1/messages/preview",
    body=SendRequest,
    response=SendPreview,
    errors=frozenset({403, 404}),
    summary="Dry-run a send: each recipient's text, encoding, segments and cost",
    description="Takes the same body as POST /v1/messages and refuses what it would refuse "
    "(a sender ID not approved, an unknown template or group, a missing variable), but sends "
    "and charges nothing. Totals cover every recipient; `messages` lists the first 100.",
)
async def preview_send(request: web.Request) -> SendPreview:
    send = body_of(request, SendRequest)
    await sending.checked_sender(request, send.channel, send.sender)
    reach = await audience.audience(request, send)
    routes = shared(request)[ROUTES]
    async with unavailable_as_error():
        await routes.refresh(shared(request)[POOL])
    count = PartCounter()
    listed: list[PreviewMessage] = []
    recipients = segments = opted_out = no_route = 0
    cost = Decimal(0)
    async for member in audience.members(request, reach):
        text = reach.personal.text(member.phone, member.values)
        priced = sending.price(routes, member.phone, text, count, send.channel)
        status: PreviewStatus = "ready"
        if member.opted_out:
            status, opted_out = "opted_out", opted_out + 1
        elif priced.cost is None:
            status, no_route = "no_route", no_route + 1
        else:
            segments += priced.segments
            cost += priced.cost
        recipients += 1
        if len(listed) < LISTED:
            listed.append(
                PreviewMessage(
                    to=member.phone,
                    text=text,
                    encoding=priced.encoding,
                    segments=priced.segments,
                    cost=number(priced.cost),
                    status=status,
                )
            )
    return SendPreview(
        recipients=recipients,
        segments=segments,
        cost=number(cost) or 0,
        opted_out=opted_out,
        no_route=no_route,
        messages=listed,
    )
