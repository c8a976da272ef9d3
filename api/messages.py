"""POST /v1/messages and reading messages and batches back.

The handler validates, estimates the cost against the balance read at authentication, and
answers 202 only once RabbitMQ has confirmed the request to the durable ingest queue: from
then on the workers own it. Charging happens exactly once, in the charge worker.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from aiohttp import web

from api import idempotency
from api.context import INGEST, POOL, ROUTES, SETTINGS, Caller, caller
from api.errors import ApiError
from api.metrics import MESSAGES_ACCEPTED
from broker.accounts import parse_uuid
from broker.config import Settings
from broker.db import unavailable_as_error
from broker.errors import BrokerError, InputError, InsufficientCredits, NotFound
from broker.packing import PackedPublisher
from broker.phone import check_sender, parse_recipients
from broker.resources import MESSAGE_COLUMNS, iso, message_resource, number, part_resource
from broker.segmentation import Segmentation, split
from broker.webhooks.destinations import refused_destination

_URL = re.compile(r"^https?://[^\s/$.?#][^\s]*$", re.IGNORECASE)
_STATUSES = frozenset(
    ["scheduled", "queued", "sending", "sent", "delivered", "undelivered", "failed", "canceled"]
)


async def read_json_object(request: web.Request) -> dict[str, Any]:
    if request.content_type == "application/x-www-form-urlencoded":
        return dict(await request.post())
    raw = await request.read()
    try:
        data = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError("the request body is not valid JSON", code="INVALID_JSON") from exc
    if not isinstance(data, dict):
        raise InputError("the request body must be a JSON object", code="INVALID_JSON")
    return data


def _optional_str(data: dict[str, Any], name: str, max_len: int) -> str | None:
    value = data.get(name)
    if value is None or value == "":
        return None
    if not isinstance(value, str) or len(value) > max_len:
        raise InputError(f"`{name}` must be a string of at most {max_len} characters", field=name)
    return value


def _callback_url(data: dict[str, Any]) -> str | None:
    url = _optional_str(data, "callback_url", 2000)
    if url is None:
        return None
    scheme, sep, rest = url.partition("://")
    url = scheme.lower() + sep + rest  # the schema and the sender expect a lower-case scheme
    if not _URL.match(url):
        raise InputError(
            "`callback_url` must be an http(s) URL", code="INVALID_URL", field="callback_url"
        )
    return url


def _channel(data: dict[str, Any], allowed: tuple[str, ...]) -> str:
    channel = data.get("channel", "sms")
    if channel not in ("sms", "whatsapp"):
        raise InputError("`channel` must be 'sms' or 'whatsapp'", field="channel")
    if channel not in allowed:
        raise ApiError(
            403, "CHANNEL_NOT_ALLOWED", f"this API key may not use the {channel} channel"
        )
    if channel != "sms":
        raise InputError(
            "no WhatsApp connector is configured on this gateway",
            code="CHANNEL_UNAVAILABLE",
            field="channel",
        )
    return str(channel)


@dataclass(frozen=True, slots=True)
class SendRequest:
    """A validated POST /v1/messages."""

    body: str
    seg: Segmentation
    recipients: list[str]
    sender: str | None
    client_ref: str | None
    callback_url: str | None


def _allowed_callback(url: str | None, settings: Settings) -> str | None:
    if url is not None and not settings.webhook_allow_private:
        refusal = refused_destination(url)
        if refusal is not None:
            raise InputError(refusal, code="INVALID_URL", field="callback_url")
    return url


def validate_send(data: dict[str, Any], who: Caller, settings: Settings) -> SendRequest:
    _channel(data, who.channels)
    body = data.get("body", data.get("message"))
    if not isinstance(body, str):
        raise InputError("`body` is required and must be a string", code="EMPTY_BODY", field="body")
    return SendRequest(
        body=body,
        seg=split(body, max_chars=settings.max_body_chars),
        recipients=parse_recipients(data.get("to"), who.region, limit=settings.max_recipients),
        sender=check_sender(data.get("from")),
        client_ref=_optional_str(data, "client_ref", 200),
        callback_url=_allowed_callback(_callback_url(data), settings),
    )


async def estimate_cost(request: web.Request, send: SendRequest) -> Decimal:
    """Segments × the price of each recipient's route; the 402 check uses it."""
    routes = request.app[ROUTES]
    async with unavailable_as_error():
        await routes.refresh(request.app[POOL])
    estimate = Decimal(0)
    for to in send.recipients:
        route = routes.match(to)
        if route is not None:
            estimate += route.price * send.seg.segments
    return estimate


async def send_messages(request: web.Request) -> web.Response:
    who = caller(request)
    data = await read_json_object(request)
    send = validate_send(data, who, request.app[SETTINGS])
    estimate = await estimate_cost(request, send)
    if Decimal(str(who.balance_at_auth)) < estimate:
        raise InsufficientCredits(
            f"this send costs {estimate} credits and the balance is {who.balance_at_auth}"
        )
    pool = request.app[POOL]
    key = idempotency.check_key(request.headers.get(idempotency.HEADER))
    if key is not None:
        earlier = await idempotency.claim(pool, who.account_id, key, idempotency.request_hash(data))
        if earlier is not None:
            return web.json_response(
                earlier[1], status=earlier[0], headers={"Idempotent-Replayed": "true"}
            )
    try:
        answer = await accept(request.app[INGEST], who, send)
    except BrokerError:
        if key is not None:
            await idempotency.release(pool, who.account_id, key)
        raise
    MESSAGES_ACCEPTED.inc(len(send.recipients))
    answer["estimated_cost"] = number(estimate)
    if key is not None:
        await idempotency.store(pool, who.account_id, key, 202, answer)
    return web.json_response(answer, status=202)


async def accept(ingest: PackedPublisher, who: Caller, send: SendRequest) -> dict[str, Any]:
    """Hand the request to the ingest queue; from the broker's confirm on, it is accepted."""
    batch_id = str(uuid.uuid4()) if len(send.recipients) > 1 else None
    ids = [str(uuid.uuid4()) for _ in send.recipients]
    pairs = list(zip(ids, send.recipients, strict=True))
    await ingest.publish(
        {
            "account_id": str(who.account_id),
            "batch_id": batch_id,
            "body": send.body,
            "sender": send.sender,
            "client_ref": send.client_ref,
            "callback_url": send.callback_url,
            "encoding": send.seg.encoding.value,
            "segments": send.seg.segments,
            "accepted_at": datetime.now(UTC).isoformat(),
            "recipients": [[mid, to] for mid, to in pairs],
        },
    )
    encoding, segments = send.seg.encoding.value, send.seg.segments
    messages = [
        {"id": mid, "to": to, "status": "queued", "encoding": encoding, "segments": segments}
        for mid, to in pairs
    ]
    return {"batch_id": batch_id, "messages": messages}


async def get_message(request: web.Request) -> web.Response:
    who = caller(request)
    message_id = parse_uuid(request.match_info["id"], what="message")
    pool = request.app[POOL]
    async with unavailable_as_error():
        row = await pool.fetchrow(
            f"SELECT {MESSAGE_COLUMNS} FROM messages WHERE id = $1 AND account_id = $2",
            message_id,
            who.account_id,
        )
        if row is None:
            raise NotFound(f"message {message_id} not found")
        parts = await pool.fetch(
            "SELECT * FROM message_parts WHERE message_id = $1 ORDER BY seq", message_id
        )
        history = await pool.fetch(
            "SELECT status, detail, at FROM message_events WHERE message_id = $1 ORDER BY id",
            message_id,
        )
    resource = message_resource(row)
    resource["parts"] = [part_resource(p) for p in parts]
    resource["history"] = [
        {"status": h["status"], "detail": h["detail"], "at": iso(h["at"])} for h in history
    ]
    return web.json_response(resource)


def _cursor_decode(raw: str) -> tuple[datetime, uuid.UUID]:
    try:
        stamp, _, mid = base64.urlsafe_b64decode(raw.encode()).decode().partition("|")
        return datetime.fromisoformat(stamp), uuid.UUID(mid)
    except (ValueError, binascii.Error, UnicodeDecodeError) as exc:
        raise InputError("`cursor` is not a cursor this API gave", field="cursor") from exc


def _cursor_encode(created_at: datetime, mid: uuid.UUID) -> str:
    return base64.urlsafe_b64encode(f"{created_at.isoformat()}|{mid}".encode()).decode()


def _limit(request: web.Request) -> int:
    raw = request.query.get("limit", "50")
    if not raw.isdigit() or not 1 <= int(raw) <= 200:
        raise InputError("`limit` must be 1–200", field="limit")
    return int(raw)


async def list_messages(request: web.Request) -> web.Response:
    who = caller(request)
    limit = _limit(request)
    clauses = ["account_id = $1"]
    args: list[Any] = [who.account_id]
    status = request.query.get("status")
    if status is not None:
        if status not in _STATUSES:
            raise InputError(f"unknown status {status!r}", field="status")
        args.append(status)
        clauses.append(f"status = ${len(args)}")
    if "batch_id" in request.query:
        args.append(parse_uuid(request.query["batch_id"], what="batch"))
        clauses.append(f"batch_id = ${len(args)}")
    if "cursor" in request.query:
        created_at, mid = _cursor_decode(request.query["cursor"])
        args.extend([created_at, mid])
        clauses.append(f"(created_at, id) < (${len(args) - 1}, ${len(args)})")
    args.append(limit + 1)
    query = (
        f"SELECT {MESSAGE_COLUMNS} FROM messages WHERE {' AND '.join(clauses)}"
        f" ORDER BY created_at DESC, id DESC LIMIT ${len(args)}"
    )
    async with unavailable_as_error():
        rows = await request.app[POOL].fetch(query, *args)
    more = len(rows) > limit
    rows = rows[:limit]
    next_cursor = _cursor_encode(rows[-1]["created_at"], rows[-1]["id"]) if more else None
    return web.json_response(
        {"data": [message_resource(r) for r in rows], "next_cursor": next_cursor}
    )


async def get_batch(request: web.Request) -> web.Response:
    who = caller(request)
    batch_id = parse_uuid(request.match_info["id"], what="batch")
    async with unavailable_as_error():
        rows = await request.app[POOL].fetch(
            "SELECT status, count(*) AS n, sum(cost) AS cost FROM messages"
            " WHERE batch_id = $1 AND account_id = $2 GROUP BY status",
            batch_id,
            who.account_id,
        )
        total = await request.app[POOL].fetchval(
            "SELECT total FROM batches WHERE id = $1 AND account_id = $2", batch_id, who.account_id
        )
    if total is None:
        raise NotFound(f"batch {batch_id} not found")
    return web.json_response(
        {
            "id": str(batch_id),
            "total": total,
            "statuses": {r["status"]: r["n"] for r in rows},
            "cost": float(sum((r["cost"] for r in rows), Decimal(0))),
        }
    )


def register(app: web.Application) -> None:
    app.router.add_post("/v1/messages", send_messages)
    app.router.add_get("/v1/messages", list_messages)
    app.router.add_get("/v1/messages/{id}", get_message)
    app.router.add_get("/v1/batches/{id}", get_batch)
