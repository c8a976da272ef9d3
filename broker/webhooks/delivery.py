"""One signed POST of one event to one target, reduced to an outcome (never an exception)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from uuid import UUID

from broker.http_client import HttpClient
from broker.webhooks.destinations import refused_destination
from broker.webhooks.formats import JSON_TYPE, STANDARD, render
from broker.webhooks.payloads import Event
from broker.webhooks.signing import sign_all

USER_AGENT = "smsbroker-webhooks/1"
_MAX_ERROR = 300


@dataclass(frozen=True, slots=True)
class Delivery:
    event: Event
    webhook_id: UUID | None  # None: the event's per-message callback_url
    url: str
    secret: str
    attempt: int
    #: Secrets that sign beside ``secret`` (a rotated-out callback secret in its grace period).
    previous_secrets: tuple[str, ...] = ()
    #: The endpoint's body format (broker.webhooks.formats); callback_url deliveries: standard.
    format: str = STANDARD


@dataclass(frozen=True, slots=True)
class Outcome:
    status_code: int | None
    error: str | None
    duration_ms: int


def signed_headers(
    delivery: Delivery, body: bytes, timestamp: int, content_type: str = JSON_TYPE
) -> dict[str, str]:
    return {
        "content-type": content_type,
        "user-agent": USER_AGENT,
        "webhook-id": delivery.event.id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign_all(
            (delivery.secret, *delivery.previous_secrets), delivery.event.id, timestamp, body
        ),
    }


def _describe(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "timeout"
    text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    return text.replace("\x00", "")[:_MAX_ERROR]


async def post(
    client: HttpClient,
    delivery: Delivery,
    *,
    timeout: float,
    wall_clock: Callable[[], float] = time.time,
    allow_private: bool = True,
) -> Outcome:
    if not allow_private and (refusal := refused_destination(delivery.url)) is not None:
        return Outcome(None, refusal, 0)
    body, content_type = render(delivery.event, delivery.format)
    headers = signed_headers(delivery, body, int(wall_clock()), content_type)
    started = time.monotonic()
    status: int | None = None
    error: str | None = None
    try:
        status = (await client.post(delivery.url, body, headers, timeout=timeout)).status
    except (TimeoutError, OSError, ValueError) as exc:
        # ValueError: a URL that cannot be used (bad host, IDNA). Redirects are not followed:
        # a 3xx is the endpoint's answer.
        error = _describe(exc)
    duration_ms = int((time.monotonic() - started) * 1000)
    return Outcome(status, error, duration_ms)
