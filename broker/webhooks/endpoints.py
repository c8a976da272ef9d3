"""Validation of a customer's webhook endpoint (what POST /v1/webhooks accepts)."""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from typing import Any

from yarl import URL

from broker.errors import InputError
from broker.webhooks.events import EVENT_TYPES
from broker.webhooks.formats import FORMATS, STANDARD, carried_events

MAX_URL_LENGTH = 2000
_LABEL = re.compile(r"^(?!-)[A-Za-z0-9-]{1,63}(?<!-)$")


@dataclass(frozen=True, slots=True)
class EndpointSpec:
    url: str
    events: tuple[str, ...]
    #: The body the endpoint receives (broker.webhooks.formats).
    format: str = STANDARD


def _bad_url(message: str) -> InputError:
    return InputError(message, code="INVALID_URL", field="url")


def _valid_host(host: str) -> bool:
    """An IP address, or a DNS name whose labels are 1-63 letters, digits or inner hyphens."""
    try:
        ipaddress.ip_address(host.strip("[]"))
        return True
    except ValueError:
        pass
    name = host.rstrip(".")
    if not name or len(name) > 253:
        return False
    return all(_LABEL.match(label) for label in name.split("."))


def parse_url(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise _bad_url("url is required and must be a string")
    url_text = value.strip()
    if len(url_text) > MAX_URL_LENGTH:
        raise _bad_url(f"url must be at most {MAX_URL_LENGTH} characters")
    if not url_text.isprintable() or " " in url_text:
        raise _bad_url("url must not contain spaces or control characters")
    try:
        url = URL(url_text)
    except (ValueError, TypeError) as exc:
        raise _bad_url("url is not a valid URL") from exc
    if url.scheme not in ("http", "https") or not url_text.lower().startswith(url.scheme + "://"):
        raise _bad_url("url must start with http:// or https://")
    if not url.raw_host or not _valid_host(url.raw_host):
        raise _bad_url("url must name a valid host (a DNS name or an IP address)")
    try:
        url.port  # noqa: B018 - yarl checks the port's range when it is read
    except ValueError as exc:
        raise _bad_url("url has a port out of range 1-65535") from exc
    if url.explicit_port == 0:
        raise _bad_url("url has a port out of range 1-65535")
    if url.fragment:
        raise _bad_url("url must not contain a #fragment")
    # The scheme is stored lower-case, as the schema's check (and every client) expects.
    return url.scheme + url_text[len(url.scheme) :]


def parse_events(value: Any) -> tuple[str, ...]:
    if value is None:
        return EVENT_TYPES
    if not isinstance(value, list) or not value:
        raise InputError("events must be a non-empty list", code="INVALID_EVENTS", field="events")
    unknown = [v for v in value if v not in EVENT_TYPES]
    if unknown:
        raise InputError(
            f"unknown event type {unknown[0]!r}; known: {', '.join(EVENT_TYPES)}",
            code="INVALID_EVENTS",
            field="events",
        )
    return tuple(t for t in EVENT_TYPES if t in value)


def parse_format(value: Any) -> str:
    if value is None:
        return STANDARD
    if value not in FORMATS:
        raise InputError(
            f"unknown webhook format; known: {', '.join(FORMATS)}",
            code="INVALID_FORMAT",
            field="format",
        )
    return str(value)


def events_for(format_name: str, events: tuple[str, ...] | None) -> tuple[str, ...]:
    """The events of an endpoint of this format: those asked (default: all the format
    carries); InputError if the format cannot carry one of them."""
    carried = carried_events(format_name)
    if events is None:
        return EVENT_TYPES if carried is None else tuple(t for t in EVENT_TYPES if t in carried)
    refused = [] if carried is None else [t for t in events if t not in carried]
    if refused:
        raise InputError(
            f"a {format_name} webhook carries only {', '.join(sorted(carried or ()))}, "
            f"not {refused[0]}",
            code="INVALID_EVENTS",
            field="events",
        )
    return events


def parse_endpoint(doc: Any) -> EndpointSpec:
    if not isinstance(doc, dict):
        raise InputError("the request body must be a JSON object", code="INVALID_JSON")
    format_name = parse_format(doc.get("format"))
    asked = None if doc.get("events") is None else parse_events(doc.get("events"))
    return EndpointSpec(
        url=parse_url(doc.get("url")),
        events=events_for(format_name, asked),
        format=format_name,
    )
